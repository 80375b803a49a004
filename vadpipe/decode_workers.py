"""Decode workers for the folder driver: videos -> uint8 snippet chunks, streamed across processes.

Workers (a torch DataLoader over an IterableDataset) pull the next video from a
shared counter, so long and short videos balance, and ship uint8 chunks of a
few snippets, already resized to the recipe's short side. ``Batcher`` cuts the
chunks into batches of exactly n snippets, possibly from several videos.
"""
from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import re
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch

from .claims import Owner, release_claim, try_claim
from .encode import reader_for, to_model_size
from .errors import VadpipeError, printable
from .recipe import Recipe


@dataclass(frozen=True)
class VideoJob:
    index: int              # position in the full sorted list (stable across ranks)
    id: str
    path: str               # as given: root joined with the relative path
    file: str               # .npy name inside the feature folder
    label: Optional[int]
    cls: Optional[str]


@dataclass(frozen=True)
class VideoEnd:
    """What a worker knows once a video is decoded (or given up)."""

    snippets: int = 0
    frames: int = 0
    fps: float = 0.0
    error: Optional[str] = None      # the video failed: one line
    damaged: bool = False            # decoded, but short of its claim or with decoder errors
    damage: str = ""
    rotation: int = 0
    vfr: bool = False
    taken_by: Optional[str] = None   # another process claimed or finished it: not ours to write
    source_size: Optional[int] = None       # the file's bytes and mtime (ns) as decoding began
    source_mtime_ns: Optional[int] = None
    source_frames: Optional[int] = None     # a resampling recipe's source: its own decoded frames and rate
    source_fps: Optional[float] = None      # (frames and fps above are the resampled ones); None otherwise
    decoder: Optional[str] = None           # "decord" or "pyav": the one that decoded the video's last frames


@dataclass(frozen=True)
class Claims:
    """Per-video claims in the feature folder (see ``claims.try_claim``), made by the worker before
    decoding and released by the main process once the video is written or given up."""

    folder: str
    owner: Owner
    since: float                     # this run's start: a file newer than that was made by another writer

    def take(self, job: VideoJob) -> Optional[str]:
        """None when the video is ours now, else why not (one phrase)."""
        holder = try_claim(Path(self.folder), job.file, self.owner)
        if holder is not None:
            return f"claimed by process {holder.pid} on {holder.host}"
        final = Path(self.folder) / job.file
        if final.exists() and final.stat().st_mtime >= self.since:
            release_claim(Path(self.folder), job.file, self.owner)
            return "written by another process during this run"
        return None


# Items a decode worker yields (plain tuples: cheap to pass between processes).
#   ("start", job_index, unix_time)
#   ("chunk", job_index, first_snippet, uint8 tensor (k, L, h, w, 3))
#   ("end",   job_index, VideoEnd)

def one_line(exc: BaseException, limit: int = 500) -> str:
    """The whole message on one line: a newline (in a quoted file name, say) is escaped, never a cut
    that leaves a piece of the name in place of the cause; very long messages end in '...'."""
    message = printable(str(exc).strip())
    if len(message) > limit:
        message = message[:limit] + "..."
    return message if isinstance(exc, VadpipeError) else f"{type(exc).__name__}: {message}"


def decode_job(job: VideoJob, recipe: Recipe, chunk: int, claims: Optional[Claims] = None) -> Iterator[tuple]:
    from .extractors.transforms import light_snippets

    yield ("start", job.index, time.time())
    sent = 0
    try:
        taken = claims.take(job) if claims is not None else None
        if taken is not None:
            yield ("end", job.index, VideoEnd(taken_by=taken))
            return
        st = os.stat(job.path)          # before decoding: a file replaced meanwhile is redone next run
        reader = reader_for(job.path, recipe)
        buffer: List[np.ndarray] = []
        for snippet in light_snippets(reader.snippets(recipe.snippet_len, recipe.stride), recipe):
            buffer.append(snippet.frames)
            if len(buffer) == chunk:
                yield ("chunk", job.index, sent, to_model_size(buffer, recipe))
                sent += len(buffer)
                buffer = []
        if buffer:
            yield ("chunk", job.index, sent, to_model_size(buffer, recipe))
            sent += len(buffer)
        info = reader.info
        yield ("end", job.index, VideoEnd(sent, info.frames, info.fps, damaged=info.damaged, damage=info.damage,
                                          rotation=info.rotation, vfr=info.vfr, source_size=st.st_size,
                                          source_mtime_ns=st.st_mtime_ns, source_frames=info.source_frames,
                                          source_fps=info.source_fps, decoder=info.decoder or None))
    except Exception as exc:  # any failure of one video is recorded, never fatal to the run
        yield ("end", job.index, VideoEnd(sent, error=one_line(exc)))


class DecodeStream(torch.utils.data.IterableDataset):
    """Workers take the next video from a shared counter (dynamic balance) and stream its chunks.

    Each worker also notes, in shared memory, its pid, the video it is decoding and since when it has been
    working on its next item, so that when one dies (a decoder that segfaults) ``decoding`` names that
    worker's video and no other (``crashed_pids``), and when the stream stalls ``stalled`` names the videos
    whose decoders have been at one item that long."""

    def __init__(self, jobs: Sequence[VideoJob], recipe: Recipe, chunk: int, claims: Optional[Claims] = None,
                 workers: int = 1):
        self.jobs = list(jobs)
        self.recipe = recipe
        self.chunk = chunk
        self.claims = claims
        self.next_job = multiprocessing.Value("l", 0)
        slots = max(1, workers)
        self.worker_pids = multiprocessing.Array("l", slots, lock=False)          # worker id -> pid
        self.positions = multiprocessing.Array("l", [-1] * slots, lock=False)    # worker id -> video, -1: none
        self.busy_since = multiprocessing.Array("d", slots, lock=False)          # worker id -> time, 0: idle

    def _claim(self, slot: int) -> Optional[VideoJob]:
        with self.next_job.get_lock():
            position = self.next_job.value
            self.next_job.value += 1
            self.positions[slot] = position if position < len(self.jobs) else -1
        return self.jobs[position] if position < len(self.jobs) else None

    def __iter__(self) -> Iterator[tuple]:
        info = torch.utils.data.get_worker_info()
        slot = info.id if info is not None else 0
        self.worker_pids[slot] = os.getpid()
        while (job := self._claim(slot)) is not None:
            items = decode_job(job, self.recipe, self.chunk, self.claims)
            while True:
                self.busy_since[slot] = time.time()     # resumed: working towards the next item
                item = next(items, None)
                self.busy_since[slot] = 0.0
                if item is None:
                    break
                yield item

    def decoding(self, pids: Optional[Set[int]] = None) -> List[VideoJob]:
        """The videos the workers of ``pids`` (None: every worker) were decoding."""
        return [self.jobs[position] for pid, position in zip(self.worker_pids, self.positions)
                if position >= 0 and (pids is None or pid in pids)]

    def stalled(self, seconds: float, now: Optional[float] = None) -> List[VideoJob]:
        """The videos whose workers have been at one item for ``seconds`` or more."""
        now = time.time() if now is None else now
        return [self.jobs[position] for since, position in zip(self.busy_since, self.positions)
                if position >= 0 and since > 0 and now - since >= seconds]


def stall_reason(seconds: float) -> str:
    """Why a video failed when its decoder gave nothing for ``seconds`` (the CLI's --decode-timeout)."""
    return f"decoding stalled: no frames from its decoder in {seconds:g} s (--decode-timeout)"


def exit_reason(code: Optional[int]) -> str:
    """How a child process ended, from its exit code: "killed by SIGSEGV", "exit status 3"."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def identity(item):
    return item


PR_SET_PDEATHSIG = 1       # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """On Linux, have the kernel SIGKILL this process when the thread that forked it ends (with its process,
    a ``kill -9`` included): a decoder stuck in C code never reaches torch's own parent check, which runs
    between items, and would live on holding the clip and the feature folder's lock. Elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        if ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:       # it died before the prctl: no signal will come
        os._exit(1)


def worker_init(_worker_id: int, parent: int) -> None:
    """Start of a decode process forked by ``parent`` (a loader's worker, watch's decode child)."""
    torch.set_num_threads(1)  # a decode worker is one core; the model gets the others
    die_with_parent(parent)


def decode_worker_init() -> functools.partial:
    """``worker_init`` for loaders started by this process: its workers end with it."""
    return functools.partial(worker_init, parent=os.getpid())


def is_worker_crash(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "DataLoader worker" in str(exc)


def is_stall(exc: BaseException) -> bool:
    """The loader's ``timeout`` passed with no item from any worker."""
    return isinstance(exc, RuntimeError) and str(exc).startswith("DataLoader timed out after")


def crashed_pids(exc: BaseException) -> Set[int]:
    """The pids a DataLoader worker-crash error names ("DataLoader worker (pid(s) 12, 34) exited
    unexpectedly", "DataLoader worker (pid 12) is killed by signal: ..."); empty when it names none."""
    found = re.search(r"DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\)", str(exc))
    return {int(pid) for pid in re.findall(r"\d+", found.group(1))} if found else set()



class Batcher:
    """A queue of (job index, first snippet, uint8 chunk) cut into batches of exactly n snippets."""

    def __init__(self):
        self.queue: Deque[Tuple[int, int, torch.Tensor]] = deque()
        self.size = 0

    def add(self, job: int, first: int, chunk: torch.Tensor) -> None:
        self.queue.append((job, first, chunk))
        self.size += chunk.shape[0]

    def drop(self, job: int) -> None:
        self.queue = deque(item for item in self.queue if item[0] != job)
        self.size = sum(item[2].shape[0] for item in self.queue)

    def take(self, n: int) -> List[Tuple[int, int, torch.Tensor]]:
        out = []
        while n > 0 and self.queue:
            job, first, chunk = self.queue.popleft()
            if chunk.shape[0] > n:
                self.queue.appendleft((job, first + n, chunk[n:]))
                chunk = chunk[:n]
            out.append((job, first, chunk))
            n -= chunk.shape[0]
            self.size -= chunk.shape[0]
        return out

