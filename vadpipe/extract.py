"""The extraction driver: a folder of videos → a feature folder (format in ``vadpipe.features``).

Pipeline. Decode workers (a torch DataLoader over an IterableDataset; workers
pull the next video from a shared counter, so long and short videos balance)
stream each video as 16-frame snippets, resize them to the recipe's short side
with the recipe's own resize (``extractors.transforms.resize_short_side``) and
ship uint8 chunks of a few snippets. The main process cuts them into batches of
``batch_size`` snippets — possibly from several videos — crops and normalises
them on the device, runs the backbone under ``torch.inference_mode`` (and
autocast when the recipe's compute dtype asks for it) and appends each video's
features to a spool file as they come; a finished video becomes its ``.npy``
through an atomic rename. Decode (workers) and compute (main) overlap, and
memory stays flat in video length.

Distribution. ``--shard i/n`` (0-based) or torchrun's RANK/WORLD_SIZE: the
videos, sorted by id, are dealt round-robin, so shares are deterministic and
disjoint; every rank writes into the same folder (see ``features`` for how the
per-rank journals merge into one manifest).

``extract_video`` is the in-memory path for a single clip (used by ``score``):
the same decode, resize, crop, normalisation and backbone call, without the
store.
"""
from __future__ import annotations

import glob
import multiprocessing
import os
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import atomic
from .errors import ConfigError, RecipeMismatchError, VadpipeError
from .features import (FeatureStore, KeyIndex, ManifestRecord, feature_filename, label_from_folders,
                       read_labels_csv, video_ids)
from .recipe import Recipe
from .video import VideoInfo, VideoReader, find_videos

Log = Callable[[str], None]


# --- sharding ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (0-based): items ``index``, ``index + count``, ... of a sorted list."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= i < n (0-based)")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4 (0-based)") from None
        return cls(index, count)

    @classmethod
    def from_env(cls, environ=os.environ) -> Optional["Shard"]:
        """RANK/WORLD_SIZE as set by torchrun (or any launcher that follows it)."""
        if "RANK" in environ and "WORLD_SIZE" in environ:
            return cls(int(environ["RANK"]), int(environ["WORLD_SIZE"]))
        return None

    def take(self, items: Sequence) -> list:
        return list(items[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_shard(option: Optional[str], environ=os.environ) -> Shard:
    """``--shard`` when given, else torchrun's environment, else everything."""
    explicit = Shard.parse(option) if option else None
    env = Shard.from_env(environ)
    if explicit is not None and env is not None and env.count > 1 and explicit != env:
        raise ConfigError(f"--shard {explicit} contradicts RANK/WORLD_SIZE {env} from the launcher; give one")
    return explicit or env or Shard()


def resolve_extract_device(name: str, environ=os.environ) -> torch.device:
    """``resolve_device`` plus torchrun's LOCAL_RANK: each local rank gets its own GPU."""
    from .device import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in environ:
        device = torch.device("cuda", int(environ["LOCAL_RANK"]) % max(1, torch.cuda.device_count()))
    return device


# --- the videos to do ----------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoJob:
    index: int              # position in the full sorted list (stable across ranks)
    id: str
    path: str               # as given: root joined with the relative path
    file: str               # .npy name inside the feature folder
    label: Optional[int]
    cls: Optional[str]


def discover(root: str | os.PathLike, labels_csv: Optional[str | os.PathLike] = None,
             log: Log = lambda msg: None) -> List[VideoJob]:
    """Every video under ``root`` (or ``root`` itself when it is a file), sorted by id, labelled."""
    root_path = Path(root)
    paths = find_videos(root_path)
    base = root_path.parent if root_path.is_file() else root_path
    rels = [PurePosixPath(p.relative_to(base).as_posix()) for p in paths]
    ids = video_ids(rels)
    labels = [label_from_folders(rel) if not root_path.is_file() else (None, None) for rel in rels]
    if labels_csv is not None:
        rows = read_labels_csv(labels_csv)
        index = KeyIndex(ids, [str(r) for r in rels])
        position = {vid: i for i, vid in enumerate(ids)}
        unmatched = []
        for key, row in rows.items():
            vid = index.find(key)
            if vid is None:
                unmatched.append(key)
            else:
                labels[position[vid]] = (row.label, row.cls)
        if unmatched:
            log(f"warning: {len(unmatched)} of {len(rows)} rows of {labels_csv} match no video "
                f"(first: {unmatched[0]!r})")
    jobs = [VideoJob(0, vid, str(path), feature_filename(vid), label, cls)
            for vid, path, (label, cls) in zip(ids, paths, labels)]
    jobs.sort(key=lambda j: j.id)
    return [replace(j, index=i) for i, j in enumerate(jobs)]


# --- snippets → features -------------------------------------------------------------------------

def check_backbone(backbone, recipe: Recipe) -> None:
    """The backbone must be the one the recipe names, with the same weights and feature size."""
    name = backbone.config.name
    if name != recipe.backbone or backbone.weights_sha256 != recipe.weights_sha256 \
            or backbone.config.feature_dim != recipe.feature_dim:
        raise RecipeMismatchError(
            f"the recipe asks for {recipe.backbone} (weights {recipe.weights_sha256 or 'random'}, "
            f"{recipe.feature_dim}-d) but the backbone is {name} (weights {backbone.weights_sha256 or 'random'}, "
            f"{backbone.config.feature_dim}-d)")


# Extraction streams every frame once, in order: PyAV's sequential decode fits that best. Measured
# here on 10-minute 320x240 clips, it decoded ~2x faster than decord and its process stayed ~600 MB
# smaller; the RGB frames of both were identical (no decoder-side resize is used).
DECODER = "pyav"


def reader_for(path: str, recipe: Recipe) -> VideoReader:
    """A native-resolution reader at the recipe's frame rate (the resize happens in ``to_model_size``,
    so it is the recipe's documented resize whatever the decoder)."""
    fps = None if str(recipe.fps) == "native" else float(recipe.fps)
    return VideoReader(path, fps=fps, backend=DECODER)


def to_model_size(snippets: Sequence[np.ndarray], recipe: Recipe) -> torch.Tensor:
    """uint8 (L, H, W, 3) snippets → one uint8 (N, L, h, w, 3) tensor, short side resized per the recipe."""
    from .extractors.transforms import resize_short_side

    frames = torch.from_numpy(np.stack(snippets))                     # (N, L, H, W, 3)
    resized = resize_short_side(frames.permute(0, 1, 4, 2, 3), recipe.resize_short_side)
    return resized.permute(0, 1, 3, 4, 2).contiguous()


class ForwardSizer:
    """How many clips go through the backbone per forward pass.

    On CUDA: the whole batch. On CPU, big passes are slower per clip and the best size depends on
    backbone and dtype (measured here, 2 threads, frames/s at 1/2/4/8 clips per pass: I3D-R50 fp32
    32/24/22/21, bf16 58/43/39/36; Inception fp32 56/96/81/76, bf16 170/136/113/99). So on CPU
    the first batches try each candidate (their features are kept: nothing is wasted), after one
    warm-up pass, and the fastest per clip is used from then on. ``fixed`` skips the trial.
    """

    CANDIDATES = (1, 2, 4, 8)

    def __init__(self, device: torch.device, fixed: Optional[int] = None):
        if fixed is not None and fixed < 1:
            raise ConfigError(f"clips per forward pass must be >= 1, got {fixed}")
        self.fixed = fixed
        self.tuning = fixed is None and device.type != "cuda"
        self.warm = False
        self.seconds_per_clip: Dict[int, float] = {}

    def size(self, clips: int) -> Optional[int]:
        """Clips per pass for a batch of ``clips`` (None: all at once)."""
        if self.fixed is not None:
            return self.fixed
        if not self.tuning:
            return None
        untried = [c for c in self.CANDIDATES if c not in self.seconds_per_clip and c <= clips]
        return untried[0] if untried else self.chosen  # the very first pass is a warm-up (see record)

    def record(self, size: Optional[int], seconds: float, clips: int) -> None:
        if not self.tuning or size is None or size in self.seconds_per_clip:
            return
        if not self.warm:  # the first pass also builds the CPU kernels: not a fair time
            self.warm = True
            return
        self.seconds_per_clip[size] = seconds / clips

    @property
    def chosen(self) -> Optional[int]:
        if self.fixed is not None or not self.seconds_per_clip:
            return self.fixed
        return min(self.seconds_per_clip, key=self.seconds_per_clip.get)


class SnippetEncoder:
    """uint8 snippets (N, L, h, w, 3) → features (N, C, D) in the recipe's storage dtype.

    Crop and normalisation run on ``device``; the forward pass runs under
    ``torch.inference_mode`` with autocast for the recipe's compute dtype, in
    passes of ``ForwardSizer`` clips (all of them on CUDA; groups of different
    frame sizes from several videos are concatenated into one pass).
    """

    def __init__(self, backbone, recipe: Recipe, device: torch.device | str,
                 clips_per_forward: Optional[int] = None):
        check_backbone(backbone, recipe)
        self.module = backbone.module
        self.recipe = recipe
        self.device = torch.device(device)
        self.storage = np.dtype(recipe.storage_dtype)
        self.sizer = ForwardSizer(self.device, clips_per_forward)

    def __call__(self, groups: Sequence[torch.Tensor]) -> np.ndarray:
        from .device import autocast
        from .extractors.transforms import preprocess

        crops = self.recipe.num_crops
        snippets = sum(g.shape[0] for g in groups)
        size = self.sizer.size(snippets * crops)
        outputs: List[torch.Tensor] = []
        started = time.perf_counter()

        def forward(clips: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.recipe.compute_dtype):
                return self.module(clips).float()

        with torch.inference_mode():
            if size is None:
                inputs = [preprocess(g.to(self.device, non_blocking=True), self.recipe) for g in groups]
                for same in _runs_of_equal_shape(inputs):   # whole-frame recipes: one pass per frame size
                    outputs.append(forward(same[0] if len(same) == 1 else torch.cat(same)))
            else:
                # Every pass gets exactly ``size`` clips (across video boundaries; the last one padded
                # with copies of its last clip, whose outputs are dropped): one input shape, so the CPU
                # kernels are built once, and no odd-sized pass hits a slow convolution path.
                step = max(1, size // crops)  # snippets preprocessed at a time: memory stays small
                pending: List[torch.Tensor] = []

                def flush_padded() -> None:
                    clips = torch.cat(pending) if len(pending) > 1 else pending[0]
                    real = len(clips)
                    padded = torch.cat([clips, clips[-1:].expand(size - real, *clips.shape[1:])])
                    outputs.append(forward(padded)[:real])
                    pending.clear()

                for group in groups:
                    for first in range(0, group.shape[0], step):
                        clips = preprocess(group[first:first + step].to(self.device), self.recipe)
                        if pending and pending[0].shape[1:] != clips.shape[1:]:
                            flush_padded()          # another frame size (crop "none"): never mixed in a pass
                        pending.append(clips)
                        while sum(len(p) for p in pending) >= size:
                            clips = torch.cat(pending) if len(pending) > 1 else pending[0]
                            outputs.append(forward(clips[:size]))
                            pending[:] = [clips[size:]] if len(clips) > size else []
                if pending:
                    flush_padded()
            out = torch.cat(outputs).reshape(snippets, crops, -1).cpu().numpy()
        self.sizer.record(size, time.perf_counter() - started, snippets * crops)
        return out.astype(self.storage, copy=False)


def _runs_of_equal_shape(inputs: Sequence[torch.Tensor]) -> List[List[torch.Tensor]]:
    """Consecutive inputs grouped while their clip shape stays the same (order kept)."""
    runs: List[List[torch.Tensor]] = []
    for x in inputs:
        if runs and runs[-1][0].shape[1:] == x.shape[1:]:
            runs[-1].append(x)
        else:
            runs.append([x])
    return runs


def extract_video(path: str | os.PathLike, recipe: Recipe, backbone, device: torch.device | str = "cpu",
                  batch_size: int = 16, progress: Optional[Callable[[int], None]] = None,
                  clips_per_forward: Optional[int] = None) -> Tuple[np.ndarray, VideoInfo]:
    """Features of ONE video, in memory, exactly as ``vadpipe extract`` makes them with ``recipe``.

    Returns ``(features, info)``: features (T, C, D) in ``recipe.storage_dtype``
    with T = ceil(frames / snippet_len) (the tail padded by repeating the last
    frame), and the decoder's VideoInfo (``info.frames`` is the decoded count
    at the recipe's fps). ``progress(n)`` is called with the number of snippets
    of each finished batch; ``clips_per_forward`` as in ``SnippetEncoder``. Raises
    VideoDecodeError for unreadable videos and RecipeMismatchError when ``backbone``
    is not the recipe's.
    """
    encoder = SnippetEncoder(backbone, recipe, device, clips_per_forward)
    reader = reader_for(str(path), recipe)
    parts: List[np.ndarray] = []
    pending: List[np.ndarray] = []

    def flush() -> None:
        parts.append(encoder([to_model_size(pending, recipe)]))
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for snippet in reader.snippets(recipe.snippet_len, recipe.stride):
        pending.append(snippet.frames)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return np.concatenate(parts), reader.info


# --- decode workers ------------------------------------------------------------------------------

# Items a decode worker yields (plain tuples: cheap to pass between processes).
#   ("start", job_index, unix_time)
#   ("chunk", job_index, first_snippet, uint8 tensor (k, L, h, w, 3))
#   ("end",   job_index, snippets, frames, fps, error or None)

def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, VadpipeError) else f"{type(exc).__name__}: {message}"


def decode_job(job: VideoJob, recipe: Recipe, chunk: int) -> Iterator[tuple]:
    yield ("start", job.index, time.time())
    sent = 0
    try:
        reader = reader_for(job.path, recipe)
        buffer: List[np.ndarray] = []
        for snippet in reader.snippets(recipe.snippet_len, recipe.stride):
            buffer.append(snippet.frames)
            if len(buffer) == chunk:
                yield ("chunk", job.index, sent, to_model_size(buffer, recipe))
                sent += len(buffer)
                buffer = []
        if buffer:
            yield ("chunk", job.index, sent, to_model_size(buffer, recipe))
            sent += len(buffer)
        yield ("end", job.index, sent, reader.info.frames, reader.info.fps, None)
    except Exception as exc:  # any failure of one video is recorded, never fatal to the run
        yield ("end", job.index, sent, 0, 0.0, one_line(exc))


class DecodeStream(torch.utils.data.IterableDataset):
    """Workers take the next video from a shared counter (dynamic balance) and stream its chunks."""

    def __init__(self, jobs: Sequence[VideoJob], recipe: Recipe, chunk: int):
        self.jobs = list(jobs)
        self.recipe = recipe
        self.chunk = chunk
        self.next_job = multiprocessing.Value("l", 0)

    def _claim(self) -> Optional[VideoJob]:
        with self.next_job.get_lock():
            position = self.next_job.value
            self.next_job.value += 1
        return self.jobs[position] if position < len(self.jobs) else None

    def __iter__(self) -> Iterator[tuple]:
        while (job := self._claim()) is not None:
            yield from decode_job(job, self.recipe, self.chunk)


def _identity(item):
    return item


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # a decode worker is one core; the model gets the others


def _load_malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim, or a no-op. Batches allocate and free many ~20 MB blocks; glibc keeps
    freed heap memory, so without trimming the main process grew by ~0.5 GB over a 10-minute clip
    (measured); trimming after each batch keeps it flat."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


_release_freed_memory = _load_malloc_trim()


def _is_worker_crash(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "DataLoader worker" in str(exc)


# --- per-video output ----------------------------------------------------------------------------

class FeatureSpool:
    """Appends (n, C, D) blocks to a hidden raw file; ``finish`` turns it into the final .npy atomically."""

    def __init__(self, final_path: Path, dtype: np.dtype, crops: int, dim: int):
        self.final_path = final_path
        self.part_path = final_path.with_name(f".{final_path.name}.part")
        self.dtype, self.crops, self.dim = np.dtype(dtype), crops, dim
        self.rows = 0
        self._fh = open(self.part_path, "wb")

    def append(self, block: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def finish(self) -> None:
        self._fh.close()
        row_bytes = self.crops * self.dim * self.dtype.itemsize
        step = max(1, (64 << 20) // row_bytes)
        with atomic.atomic_path(self.final_path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=(self.rows, self.crops, self.dim))
            with open(self.part_path, "rb") as raw:
                for start in range(0, self.rows, step):
                    n = min(step, self.rows - start)
                    out[start:start + n] = np.frombuffer(raw.read(n * row_bytes), dtype=self.dtype).reshape(
                        n, self.crops, self.dim)
            out.flush()
            del out
        self.part_path.unlink(missing_ok=True)

    def discard(self) -> None:
        self._fh.close()
        self.part_path.unlink(missing_ok=True)


@dataclass
class _VideoState:
    job: VideoJob
    started: float
    spool: Optional[FeatureSpool] = None
    done: int = 0                                  # snippets written, in order
    parked: Dict[int, np.ndarray] = field(default_factory=dict)   # out-of-order blocks by first index
    total: Optional[int] = None                    # known once the worker says "end"
    frames: int = 0
    fps: float = 0.0
    closed: bool = False


class _Batcher:
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


# --- the run -------------------------------------------------------------------------------------

@dataclass
class ExtractOptions:
    batch_size: int = 16          # snippets per step (x crops clips), cut into passes by ForwardSizer
    workers: int = 1              # decode processes; 0 decodes in the main process (no overlap)
    chunk: int = 4                # snippets per item a worker sends (bounds shared memory per item)
    clips_per_forward: Optional[int] = None   # None: whole batch on CUDA, tuned on CPU (ForwardSizer)
    overwrite: bool = False
    progress: bool = True
    shard: Shard = Shard()
    max_crash_retries: int = 1    # a video whose decoder kills its worker twice is recorded as failed


@dataclass
class ExtractSummary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    snippets: int = 0
    frames: int = 0
    seconds: float = 0.0
    failures: List[Tuple[str, str]] = field(default_factory=list)   # (id, reason)
    videos: int = 0                # found in the root (all shards)
    shard: Shard = Shard()
    clips_per_forward: Optional[int] = None   # what the CPU tuning chose (None: whole batches)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def format(self) -> str:
        share = f" (shard {self.shard})" if self.shard.count > 1 else ""
        lines = [f"videos{share}: {self.ok} ok, {self.failed} failed, {self.skipped} skipped (already done); "
                 f"{self.snippets} snippets, {self.frames} frames in {self.seconds:.1f} s "
                 f"({self.frames_per_second:.1f} frames/s, "
                 f"{self.snippets / self.seconds if self.seconds > 0 else 0.0:.2f} snippets/s"
                 + (f"; {self.clips_per_forward} clips per forward pass" if self.clips_per_forward else "")
                 + ")"]
        lines += [f"failed: {vid}: {reason}" for vid, reason in self.failures]
        return "\n".join(lines)


def prepare_store(store: FeatureStore, recipe: Recipe, overwrite: bool) -> None:
    """Refuse a folder made with another recipe (unless ``overwrite``); write recipe.json when needed."""
    old = store.recipe()
    if old is not None and not overwrite:
        if old.differences(recipe):
            raise RecipeMismatchError(
                f"{store.folder} holds features made with recipe {old.recipe_id}, this run would use "
                f"{recipe.recipe_id} ({'; '.join(old.differences(recipe))}); pass --overwrite to replace them "
                "or choose another output folder")
        if old.storage_dtype != recipe.storage_dtype:
            raise ConfigError(f"{store.folder} stores {old.storage_dtype} features, this run asks for "
                              f"{recipe.storage_dtype}; pass --overwrite to replace them or choose another folder")
        return
    if old is None or old.to_dict() != recipe.to_dict():
        store.write_recipe(recipe)


class Extractor:
    """One rank's run: resume check, decode/compute loop, journal, merge. Use ``run_extract``."""

    def __init__(self, store: FeatureStore, recipe: Recipe, encoder: SnippetEncoder, options: ExtractOptions,
                 log: Log):
        self.store, self.recipe, self.encoder, self.options, self.log = store, recipe, encoder, options, log
        self.summary = ExtractSummary(shard=options.shard)
        self.bar = None
        self._window: Deque[Tuple[float, int]] = deque(maxlen=64)   # (time, snippets) for the rate

    # journal
    def _record(self, job: VideoJob, **fields) -> None:
        record = ManifestRecord(id=job.id, path=job.path, label=job.label, cls=job.cls,
                                recipe_id=self.recipe.recipe_id, crops=self.recipe.num_crops, **fields)
        self.store.append(record, self.options.shard.index, self.options.shard.count)

    def _finish(self, state: _VideoState) -> None:
        state.closed = True
        state.spool.finish()
        seconds = time.time() - state.started
        self._record(state.job, status="ok", frames=state.frames, fps=state.fps, T=state.total,
                     file=state.job.file, seconds=round(seconds, 3))
        self.summary.ok += 1
        self.summary.snippets += state.total
        self.summary.frames += state.frames
        self._tick()

    def _fail(self, state: _VideoState, reason: str) -> None:
        state.closed = True
        if state.spool is not None:
            state.spool.discard()
        self._record(state.job, status="failed", error=reason, seconds=round(time.time() - state.started, 3))
        self.summary.failed += 1
        self.summary.failures.append((state.job.id, reason))
        if self.bar is not None and not self.bar.disable:
            self.bar.write(f"failed: {state.job.id}: {reason}")
        self._tick()

    def _tick(self) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        self.bar.set_postfix_str(f"{self._rate():.1f} snippets/s, {self.summary.failed} failed", refresh=False)

    def _rate(self) -> float:
        if len(self._window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    # compute
    def _add_features(self, state: _VideoState, first: int, block: np.ndarray) -> None:
        if state.closed:
            return
        if state.spool is None:
            state.spool = FeatureSpool(self.store.folder / state.job.file, self.encoder.storage,
                                       self.recipe.num_crops, block.shape[-1])
        state.parked[first] = block
        while state.done in state.parked:
            part = state.parked.pop(state.done)
            state.spool.append(part)
            state.done += part.shape[0]
        self._maybe_finish(state)

    def _maybe_finish(self, state: _VideoState) -> None:
        if not state.closed and state.total is not None and state.done == state.total:
            self._finish(state)

    def _run_batch(self, batcher: _Batcher, n: int, states: Dict[int, _VideoState]) -> None:
        parts = batcher.take(n)
        features = self.encoder([chunk for _, _, chunk in parts])
        offset = 0
        for job, first, chunk in parts:
            k = chunk.shape[0]
            self._add_features(states[job], first, features[offset:offset + k])
            offset += k
        self._window.append((time.time(), (self._window[-1][1] if self._window else 0) + offset))
        _release_freed_memory()

    def _consume(self, jobs: List[VideoJob], states: Dict[int, _VideoState]) -> None:
        by_index = {job.index: job for job in jobs}
        stream = DecodeStream(jobs, self.recipe, max(1, min(self.options.chunk, self.options.batch_size)))
        workers = self.options.workers
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, collate_fn=_identity,
            pin_memory=self.encoder.device.type == "cuda", worker_init_fn=_worker_init if workers else None,
            prefetch_factor=2 if workers else None, in_order=False)
        batcher = _Batcher()
        bs = self.options.batch_size
        self._window.append((time.time(), self._window[-1][1] if self._window else 0))
        for item in loader:
            kind, index = item[0], item[1]
            if kind == "start":
                states[index] = _VideoState(by_index[index], started=item[2])
            elif kind == "chunk":
                batcher.add(index, item[2], item[3])
                while batcher.size >= bs:
                    self._run_batch(batcher, bs, states)
            else:
                state = states[index]
                _, _, total, frames, fps, error = item
                if error is not None:
                    batcher.drop(index)
                    self._fail(state, error)
                else:
                    state.total, state.frames, state.fps = total, frames, fps
                    self._maybe_finish(state)
        while batcher.size:
            self._run_batch(batcher, min(bs, batcher.size), states)
        for state in states.values():
            if not state.closed:  # cannot happen unless a worker lost items; never leave it silent
                self._fail(state, "internal error: the decoder stream ended early")

    def run(self, jobs: List[VideoJob]) -> None:
        crashes: Dict[int, int] = {}
        remaining = jobs
        while remaining:
            states: Dict[int, _VideoState] = {}
            try:
                self._consume(remaining, states)
                return
            except BaseException as exc:
                if not _is_worker_crash(exc):
                    for state in states.values():  # interrupted: no spool outlives the run
                        if not state.closed and state.spool is not None:
                            state.spool.discard()
                    raise
                # A decoder that crashes its process (segfault on a corrupt file) is retried once
                # and then recorded as failed; videos that were in flight are redone from scratch.
                suspects = []
                for state in states.values():
                    if state.closed:
                        continue
                    if state.spool is not None:
                        state.spool.discard()
                        state.spool = None
                    if state.total is None:
                        suspects.append(state)
                for state in suspects:
                    crashes[state.job.index] = crashes.get(state.job.index, 0) + 1
                    if crashes[state.job.index] > self.options.max_crash_retries:
                        self._fail(state, f"the decoder crashed its worker process ({one_line(exc)})")
                closed = {i for i, s in states.items() if s.closed}
                self.log(f"warning: a decode worker died; retrying {len(remaining) - len(closed)} videos")
                remaining = [job for job in remaining if job.index not in closed]


def _clean_temporaries(folder: Path, file: str) -> None:
    """Remove a killed run's leftovers for one video (its spool and atomic-write temp files)."""
    for leftover in folder.glob(glob.escape(f".{file}.") + "*"):
        leftover.unlink(missing_ok=True)


def run_extract(root: str | os.PathLike, out: str | os.PathLike, recipe: Recipe, backbone,
                device: torch.device | str = "cpu", options: Optional[ExtractOptions] = None,
                labels_csv: Optional[str | os.PathLike] = None, log: Log = lambda msg: None) -> ExtractSummary:
    """Extract features for every video under ``root`` (this rank's share) into ``out``.

    Resumes: videos with an ok manifest record of the same recipe and a file of
    the right shape are skipped (their label/path are refreshed if changed).
    Raises RecipeMismatchError when ``out`` holds another recipe and
    ``options.overwrite`` is false. Failed videos are recorded, not raised.
    """
    options = options or ExtractOptions()
    if options.batch_size < 1 or options.workers < 0:
        raise ConfigError("--batch-size must be >= 1 and --workers >= 0")
    t0 = time.time()
    jobs = discover(root, labels_csv, log)
    if not jobs:
        raise ConfigError(f"{root}: no video files found")
    store = FeatureStore(out)
    store.folder.mkdir(parents=True, exist_ok=True)
    prepare_store(store, recipe, options.overwrite)
    encoder = SnippetEncoder(backbone, recipe, device, options.clips_per_forward)

    mine = options.shard.take(jobs)
    known = store.all_records()
    todo: List[VideoJob] = []
    skipped = 0
    for job in mine:
        record = known.get(job.id)
        if not options.overwrite and store.is_complete(record, recipe) and record.file == job.file:
            skipped += 1
            if (record.label, record.cls, record.path) != (job.label, job.cls, job.path):
                store.append(replace(record, label=job.label, cls=job.cls, path=job.path, finished=time.time()),
                             options.shard.index, options.shard.count)
        else:
            todo.append(job)
            _clean_temporaries(store.folder, job.file)

    extractor = Extractor(store, recipe, encoder, options, log)
    extractor.summary.skipped = skipped
    extractor.summary.videos = len(jobs)
    if todo:
        from tqdm.auto import tqdm

        extractor.bar = tqdm(total=len(todo), unit="video", disable=not options.progress, dynamic_ncols=True,
                             file=sys.stderr, desc="extract" + (f" {options.shard}" if options.shard.count > 1 else ""))
        try:
            extractor.run(todo)
        finally:
            extractor.bar.close()
            store.merge(options.shard.index, options.shard.count)
    else:
        store.merge(options.shard.index, options.shard.count)
    extractor.summary.seconds = time.time() - t0
    extractor.summary.clips_per_forward = encoder.sizer.chosen
    return extractor.summary


def _cores_per_rank(environ=os.environ) -> int:
    """This process's share of the cores: all of them, or 1/LOCAL_WORLD_SIZE under torchrun."""
    return max(1, (os.cpu_count() or 1) // max(1, int(environ.get("LOCAL_WORLD_SIZE", "1"))))


def default_workers(environ=os.environ) -> int:
    """One decode process per spare core, at most 8 (the main process runs the model)."""
    return max(1, min(8, _cores_per_rank(environ) - 1))


def default_threads(device: str, workers: int, environ=os.environ) -> int:
    """Model threads for the main process. On CPU the 3D CNN is the bottleneck by far (a decode
    worker needs a few percent of a core to keep up), so the model gets every core; on a GPU the
    main process only feeds the device and leaves the cores to the decoders."""
    cores = _cores_per_rank(environ)
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return cores if on_cpu else max(1, cores - workers)


def build_recipe(backbone, preset: str, fps: str = "native", storage_dtype: str = "float32",
                 compute_dtype: str = "auto", device: torch.device | str = "cpu",
                 short_side: Optional[int] = None) -> Recipe:
    """The recipe of a run: the preset's choices for ``backbone`` plus the command-line overrides
    (``short_side`` replaces the preset's resize; it must stay >= its crop).

    ``compute_dtype="auto"`` is bfloat16 autocast on CUDA and float32 elsewhere; the choice is
    recorded in the recipe (it changes the features slightly), so features made on a GPU with
    bf16 are refused by a CPU float32 run and vice versa: pass the same dtype on both.
    """
    from .extractors.presets import make_recipe

    if storage_dtype not in ("float32", "float16"):
        raise ConfigError(f"--dtype {storage_dtype!r}: expected float32 or float16")
    if compute_dtype == "auto":
        compute_dtype = "bfloat16" if torch.device(device).type == "cuda" else "float32"
    if str(fps) != "native":
        try:
            if float(fps) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--fps {fps!r}: expected 'native' or a positive number") from None
        fps = f"{float(fps):g}"
    sizes = {} if short_side is None else {"resize_short_side": int(short_side)}
    return make_recipe(backbone.config.name, preset, weights_sha256=backbone.weights_sha256, fps=str(fps),
                       storage_dtype=storage_dtype, compute_dtype=compute_dtype, **sizes)


@contextmanager
def torchrun_group(shard: Shard, environ=os.environ):
    """Under torchrun, a gloo process group (CPU collectives, on GPU ranks too) so that every rank
    waits for the others at the end and all exit with the same code: torchrun tears down the
    remaining ranks as soon as one exits non-zero, which would cut off ranks still extracting
    when another merely had a failed video. Yields None outside torchrun."""
    import torch.distributed as dist

    wanted = shard.count > 1 and "MASTER_ADDR" in environ and Shard.from_env(environ) == shard
    if not wanted or not dist.is_available() or dist.is_initialized():
        yield None
        return
    # the long timeout lets a fast rank wait for the slowest one at the final rendezvous
    dist.init_process_group("gloo", rank=shard.index, world_size=shard.count, timeout=timedelta(days=7))
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def combine(summaries: Sequence[ExtractSummary]) -> ExtractSummary:
    """One summary for all ranks (wall time: the slowest rank's)."""
    total = ExtractSummary(videos=max(s.videos for s in summaries), shard=Shard())
    for s in summaries:
        total.ok += s.ok
        total.failed += s.failed
        total.skipped += s.skipped
        total.snippets += s.snippets
        total.frames += s.frames
        total.seconds = max(total.seconds, s.seconds)
        total.failures += s.failures
    return total


def extract_folder(root: str | os.PathLike, out: str | os.PathLike = "features", backbone: str = "i3d-r50",
                   preset: str = "rtfm", weights: Optional[str] = None, fps: str = "native",
                   batch_size: int = 16, workers: Optional[int] = None, device: str = "auto",
                   dtype: str = "float32", compute_dtype: str = "auto", labels: Optional[str] = None,
                   shard: Optional[str] = None, overwrite: bool = False, progress: bool = True,
                   clips_per_forward: Optional[int] = None, short_side: Optional[int] = None,
                   log: Log = lambda msg: None) -> Tuple[ExtractSummary, Optional[ExtractSummary]]:
    """``vadpipe extract`` as a function: resolve shard and device, build backbone and recipe, run.

    Returns (this rank's summary, all ranks' summary under torchrun else None).
    """
    from .extractors import create_backbone

    the_shard = resolve_shard(shard)
    the_device = resolve_extract_device(device)
    model = create_backbone(backbone, weights=weights, device=the_device)
    recipe = build_recipe(model, preset, fps=fps, storage_dtype=dtype, compute_dtype=compute_dtype,
                          device=the_device, short_side=short_side)
    options = ExtractOptions(batch_size=batch_size, workers=default_workers() if workers is None else workers,
                             overwrite=overwrite, progress=progress, shard=the_shard,
                             clips_per_forward=clips_per_forward)
    log(f"extract: {backbone} preset {preset} (recipe {recipe.recipe_id}, {recipe.compute_dtype} compute, "
        f"{recipe.storage_dtype} storage) on {the_device}, decode workers: {options.workers}"
        + (f", shard {the_shard}" if the_shard.count > 1 else ""))
    with torchrun_group(the_shard) as dist:
        summary = run_extract(root, out, recipe, model, the_device, options, labels_csv=labels, log=log)
        if dist is None:
            return summary, None
        gathered: List[Optional[ExtractSummary]] = [None] * the_shard.count
        dist.all_gather_object(gathered, summary)
        return summary, combine(gathered)
