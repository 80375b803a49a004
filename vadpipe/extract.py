"""The extraction driver: a folder of videos → a feature folder (format in ``vadpipe.features``).

Pipeline. Decode workers (``vadpipe.decode_workers``) stream each video as
snippets resized to the recipe's short side. The main process cuts them into
batches of ``batch_size`` snippets — possibly from several videos — and runs
them through the encoder (``vadpipe.encode.SnippetEncoder``: crop, normalise,
backbone under ``torch.inference_mode`` and the recipe's autocast), then
appends each video's features to a spool file as they come; a finished video
becomes its ``.npy`` through an atomic rename. Decode (workers) and compute
(main) overlap, and memory stays flat in video length.

Distribution (``vadpipe.ranks``): ``--shard i/n`` or torchrun's RANK/WORLD_SIZE
deal the sorted videos round-robin; every rank writes into the same folder (see
``features`` for how the per-rank journals merge into one manifest).
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import resume
from .claims import Owner, release_claim, writer_lock
from .decode_workers import (Batcher, Claims, DecodeStream, VideoEnd, VideoJob, crashed_pids, decode_worker_init,
                             identity, is_stall, is_worker_crash, one_line, stall_reason)
from .encode import SnippetEncoder, build_recipe, release_freed_memory
from .errors import DECODE_TIMEOUT_S, ConfigError, OutputWriteError, VadpipeError, printable
from .features import (FeatureStore, KeyIndex, ManifestRecord, feature_filename, label_from_folders, read_labels_csv,
                       unmatched_rows_warning, video_ids, walk_videos)
from .progress import progress_bar
from .ranks import Shard, default_workers, resolve_extract_device, resolve_shard, torchrun_group
from .recipe import Recipe, check_compatible
from .spool import FeatureSpool
from .video import VIDEO_EXTENSIONS, check_readable

Log = Callable[[str], None]


def discover(root: str | os.PathLike, labels_csv: Optional[str | os.PathLike] = None,
             log: Log = lambda msg: None) -> List[VideoJob]:
    """Every video under ``root`` (or ``root`` itself when it is a file), sorted by id, labelled."""
    root_path = Path(root)
    if root_path.is_file():
        paths = [root_path]
    else:
        check_readable(root_path)
        paths, skipped = walk_videos(root_path, VIDEO_EXTENSIONS)
        for where, why in skipped:
            log(f"skipped: {printable(where)}: {printable(why)}")
    base = root_path.parent if root_path.is_file() else root_path
    rels = [PurePosixPath(p.relative_to(base).as_posix()) for p in paths]
    ids = video_ids(rels)
    labels = [label_from_folders(rel) if not root_path.is_file() else (None, None) for rel in rels]
    if labels_csv is not None:
        rows = read_labels_csv(labels_csv)
        matched, unmatched = KeyIndex(ids, [str(r) for r in rels]).match(rows)
        position = {vid: i for i, vid in enumerate(ids)}
        for vid, row in matched.items():
            labels[position[vid]] = (row.label, row.cls)
        if unmatched:
            log(unmatched_rows_warning(unmatched, len(rows), labels_csv))
    jobs = [VideoJob(0, vid, str(path), feature_filename(vid), label, cls)
            for vid, path, (label, cls) in zip(ids, paths, labels)]
    jobs.sort(key=lambda j: j.id)
    return [replace(j, index=i) for i, j in enumerate(jobs)]


# --- per-video state -----------------------------------------------------------------------------

@dataclass
class _VideoState:
    job: VideoJob
    started: float
    spool: Optional[FeatureSpool] = None
    done: int = 0                                  # snippets written, in order
    parked: Dict[int, np.ndarray] = field(default_factory=dict)   # out-of-order blocks by first index
    total: Optional[int] = None                    # known once the worker says "end"
    end: VideoEnd = VideoEnd()
    closed: bool = False


# --- the run -------------------------------------------------------------------------------------

@dataclass
class ExtractOptions:
    batch_size: int = 16          # snippets per step (x crops clips), cut into passes by ForwardSizer
    workers: int = 1              # decode processes; 0 decodes in the main process (no overlap)
    chunk: int = 4                # snippets per item a worker sends (bounds shared memory per item)
    clips_per_forward: Optional[int | str] = None   # None: whole batch on CUDA, the backbone's size on CPU;
    # "auto": tuned on the first batches' timing (encode.ForwardSizer)
    overwrite: bool = False
    progress: bool = True
    shard: Shard = Shard()
    max_crash_retries: int = 1    # a video whose decoder kills its worker twice is recorded as failed
    # seconds with no item from any decode worker before the video a worker has been at that long is given up
    # (a decoder that hangs); 0: wait for ever. Decode workers only (workers >= 1)
    decode_timeout: float = DECODE_TIMEOUT_S
    accept_damaged: bool = False  # keep the features of damaged clips (status "damaged"), else "failed"


@dataclass
class ExtractSummary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    damaged: int = 0               # kept with --accept-damaged (also counted in ok)
    taken: List[Tuple[str, str]] = field(default_factory=list)      # (id, why): another writer's
    snippets: int = 0
    frames: int = 0
    seconds: float = 0.0
    failures: List[Tuple[str, str]] = field(default_factory=list)   # (id, reason)
    videos: int = 0                # found in the root (all shards)
    shard: Shard = Shard()
    clips_per_forward: Optional[int] = None   # the pass size used (None: whole batches)

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
        if self.damaged:
            lines.append(f"{self.damaged} of the ok videos are damaged, kept with --accept-damaged "
                         f"(status 'damaged' in the manifest)")
        lines += [f"skipped: {printable(vid)}: {printable(why)}" for vid, why in self.taken]
        lines += [f"failed: {printable(vid)}: {printable(reason)}" for vid, reason in self.failures]
        return "\n".join(lines)


def prepare_store(store: FeatureStore, recipe: Recipe, overwrite: bool) -> None:
    """Refuse a folder made with another recipe (unless ``overwrite``); write recipe.json when needed.
    Under the folder's recipe lock: each shard holds only its own lock, and two shards starting on an empty
    folder with different recipes would otherwise both find no recipe.json and the second overwrite the
    first's, leaving features of two recipes under one."""
    with writer_lock(store.folder, "recipe"):
        _prepare_store_locked(store, recipe, overwrite)


def _prepare_store_locked(store: FeatureStore, recipe: Recipe, overwrite: bool) -> None:
    old = store.recipe()
    if old is not None and not overwrite:
        check_compatible(old, recipe, f"the features in {store.folder}", "this run",
                         "pass --overwrite to replace them or choose another output folder")
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
        self.owner = Owner.me()
        self.started = time.time()
        self.bar = None
        self._window: Deque[Tuple[float, int]] = deque(maxlen=64)   # (time, snippets) for the rate

    # journal
    def _record(self, job: VideoJob, **fields) -> None:
        record = ManifestRecord(id=job.id, path=job.path, label=job.label, cls=job.cls,
                                recipe_id=self.recipe.recipe_id, crops=self.recipe.num_crops, **fields)
        self.store.append(record, self.options.shard.index, self.options.shard.count)

    def _finish(self, state: _VideoState) -> None:
        state.spool.finish()      # a failed write (full disk) leaves the state open: abandon removes spool and claim
        state.closed = True
        self._release(state)
        end = state.end
        seconds = time.time() - state.started
        self._record(state.job, status="damaged" if end.damaged else "ok", frames=end.frames, fps=end.fps,
                     T=state.total, file=state.job.file, seconds=round(seconds, 3), damage=end.damage or None,
                     rotation=end.rotation, vfr=end.vfr, source_size=end.source_size,
                     source_mtime_ns=end.source_mtime_ns, source_frames=end.source_frames,
                     source_fps=end.source_fps, decoder=end.decoder)
        self.summary.ok += 1
        self.summary.damaged += end.damaged
        self.summary.snippets += state.total
        self.summary.frames += end.frames
        self._tick()

    def _release(self, state: _VideoState) -> None:
        release_claim(self.store.folder, state.job.file, self.owner)

    def _taken(self, state: _VideoState, why: str) -> None:
        """Another writer has this video: nothing of ours to write or record."""
        state.closed = True
        self.summary.skipped += 1
        self.summary.taken.append((state.job.id, why))
        self._tick()

    def _fail(self, state: _VideoState, reason: str) -> None:
        state.closed = True
        if state.spool is not None:
            state.spool.discard()
        self._release(state)
        end = state.end
        self._record(state.job, status="failed", error=reason, seconds=round(time.time() - state.started, 3),
                     damage=end.damage or None, rotation=end.rotation if end.frames else None,
                     vfr=end.vfr if end.frames else None)
        self.summary.failed += 1
        self.summary.failures.append((state.job.id, reason))
        if self.bar is not None and not self.bar.disable:
            self.bar.write(f"failed: {printable(state.job.id)}: {printable(reason)}")
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

    def _run_batch(self, batcher: Batcher, n: int, states: Dict[int, _VideoState]) -> None:
        parts = batcher.take(n)
        features = self.encoder([chunk for _, _, chunk in parts])
        offset = 0
        for job, first, chunk in parts:
            k = chunk.shape[0]
            self._add_features(states[job], first, features[offset:offset + k])
            offset += k
        self._window.append((time.time(), (self._window[-1][1] if self._window else 0) + offset))
        release_freed_memory()

    def _consume(self, jobs: List[VideoJob], states: Dict[int, _VideoState]) -> None:
        by_index = {job.index: job for job in jobs}
        workers = self.options.workers
        stream = DecodeStream(jobs, self.recipe, max(1, min(self.options.chunk, self.options.batch_size)),
                              Claims(str(self.store.folder), self.owner, self.started), workers)
        self._stream = stream
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, collate_fn=identity,
            pin_memory=self.encoder.device.type == "cuda",
            worker_init_fn=decode_worker_init() if workers else None,
            prefetch_factor=2 if workers else None, in_order=False,
            timeout=self.options.decode_timeout if workers else 0)
        items = iter(loader)
        try:
            self._consume_items(items, by_index, states)
        finally:
            # the loader's workers are shut down (one that hangs is terminated) now, not whenever the
            # exception that holds this frame is freed
            del items

    def _consume_items(self, items, by_index: Dict[int, VideoJob], states: Dict[int, _VideoState]) -> None:
        batcher = Batcher()
        bs = self.options.batch_size
        self._window.append((time.time(), self._window[-1][1] if self._window else 0))
        for item in items:
            kind, index = item[0], item[1]
            if kind == "start":
                states[index] = _VideoState(by_index[index], started=item[2])
            elif kind == "chunk":
                batcher.add(index, item[2], item[3])
                while batcher.size >= bs:
                    self._run_batch(batcher, bs, states)
            else:
                self._end(states[index], item[2], batcher)
        while batcher.size:
            self._run_batch(batcher, min(bs, batcher.size), states)
        for state in states.values():
            if not state.closed:  # cannot happen unless a worker lost items; never leave it silent
                self._fail(state, "internal error: the decoder stream ended early")

    def _end(self, state: _VideoState, end: VideoEnd, batcher: Batcher) -> None:
        state.end = end
        if end.taken_by is not None:
            self._taken(state, end.taken_by)
        elif end.error is not None or (end.damaged and not self.options.accept_damaged):
            batcher.drop(state.job.index)
            self._fail(state, end.error or f"damaged: {end.damage} (pass --accept-damaged to keep its features)")
        else:
            state.total = end.snippets
            self._maybe_finish(state)

    def abandon(self, states: Dict[int, _VideoState]) -> None:
        """Interrupted: no spool or claim of an unfinished video outlives the run."""
        for state in states.values():
            if not state.closed:
                if state.spool is not None:
                    state.spool.discard()
                self._release(state)

    def run(self, jobs: List[VideoJob]) -> None:
        crashes: Dict[int, int] = {}
        unexplained = 0
        remaining = jobs
        while remaining:
            states: Dict[int, _VideoState] = {}
            try:
                self._consume(remaining, states)
                return
            except BaseException as exc:
                stall = is_stall(exc)
                if not (stall or is_worker_crash(exc)):
                    self.abandon(states)
                    raise
                # A decoder that crashes its process (segfault on a corrupt file) is retried once and then
                # recorded as failed. The crash counts against the video the dead worker was decoding only
                # (its pid in the error; every worker's video when the error names none); the other videos
                # in flight are redone from scratch.
                for state in states.values():
                    if not state.closed:
                        if state.spool is not None:
                            state.spool.discard()
                            state.spool = None
                        self._release(state)
                timeout = self.options.decode_timeout
                if stall:   # every worker was at one item for at least about the timeout: the hung one longest
                    decoding = self._stream.stalled(timeout / 2)
                else:
                    pids = crashed_pids(exc)
                    decoding = (self._stream.decoding(pids) if pids else []) or self._stream.decoding()
                suspects = [job for job in decoding
                            if job.index not in states or (not states[job.index].closed
                                                           and states[job.index].total is None)]
                if not suspects:
                    unexplained += 1
                    if unexplained > self.options.max_crash_retries:
                        what = "stop sending frames" if stall else "keep dying"
                        raise VadpipeError(f"decode workers {what} outside any video ({one_line(exc)})") from exc
                reason = stall_reason(timeout) if stall else f"the decoder crashed its worker process ({one_line(exc)})"
                for job in suspects:
                    crashes[job.index] = crashes.get(job.index, 0) + 1
                    # a decoder that hangs is not given a second timeout's wait: a later run redoes the video
                    if stall or crashes[job.index] > self.options.max_crash_retries:
                        self._fail(states.setdefault(job.index, _VideoState(job, started=time.time())), reason)
                closed = {i for i, s in states.items() if s.closed}
                names = ", ".join(printable(job.id) for job in suspects) or "no video"
                event = f"decoding {names} stalled for {timeout:g} s" if stall else \
                    f"a decode worker died decoding {names}"
                self.log(f"warning: {event}; retrying {len(remaining) - len(closed)} videos")
                remaining = [job for job in remaining if job.index not in closed]


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
    if not options.decode_timeout >= 0:
        raise ConfigError(f"--decode-timeout must be >= 0 seconds (0: wait for ever), got {options.decode_timeout}")
    t0 = time.time()
    jobs = discover(root, labels_csv, log)
    if not jobs:
        raise ConfigError(f"{root}: no video files found")
    store = FeatureStore(out)
    store.folder.mkdir(parents=True, exist_ok=True)
    shard = options.shard
    with writer_lock(store.folder, f"shard-{shard.index}-of-{shard.count}", log):
        return _run_locked(store, jobs, recipe, backbone, device, options, log, t0)


def _run_locked(store: FeatureStore, jobs: List[VideoJob], recipe: Recipe, backbone, device, options: ExtractOptions,
                log: Log, t0: float) -> ExtractSummary:
    """``run_extract`` once this process is the folder's only writer of its shard."""
    prepare_store(store, recipe, options.overwrite)
    encoder = SnippetEncoder(backbone, recipe, device, options.clips_per_forward)
    extractor = Extractor(store, recipe, encoder, options, log)

    todo, skipped = resume.plan(store, jobs, options.shard.take(jobs), recipe, options.overwrite, extractor.owner,
                                options.shard)
    extractor.summary.skipped = skipped
    extractor.summary.videos = len(jobs)
    if todo:
        extractor.bar = progress_bar(total=len(todo), unit="video", enabled=options.progress, desc="extract" + (f" {options.shard}" if options.shard.count > 1 else ""))
        try:
            extractor.run(todo)
        except BaseException:
            extractor.bar.close()
            try:
                store.merge(options.shard.index, options.shard.count)
            except OutputWriteError as exc:   # a full disk: the run's own error goes up; the journal stays
                log(f"warning: {exc}")
            raise
        extractor.bar.close()
    store.merge(options.shard.index, options.shard.count)
    extractor.summary.seconds = time.time() - t0
    extractor.summary.clips_per_forward = encoder.sizer.chosen
    return extractor.summary


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
        total.damaged += s.damaged
        total.taken += s.taken
    return total


def extract_folder(root: str | os.PathLike, out: str | os.PathLike = "features", backbone: str = "i3d-r50",
                   preset: str = "rtfm", weights: Optional[str] = None, fps: str = "native",
                   batch_size: int = 16, workers: Optional[int] = None, device: str = "auto",
                   dtype: str = "float32", compute_dtype: str = "auto", labels: Optional[str] = None,
                   shard: Optional[str] = None, overwrite: bool = False, progress: bool = True,
                   clips_per_forward: Optional[int | str] = None, short_side: Optional[int] = None,
                   accept_damaged: bool = False, regions: str = "", layers: str = "",
                   stride: Optional[int] = None, mirror: bool = False, light: str = "",
                   decode_timeout: float = ExtractOptions.decode_timeout,
                   log: Log = lambda msg: None) -> Tuple[ExtractSummary, Optional[ExtractSummary]]:
    """``vadpipe extract`` as a function: resolve shard and device, build backbone and recipe, run.

    Returns (this rank's summary, all ranks' summary under torchrun else None).
    """
    from .extractors import create_backbone

    the_shard = resolve_shard(shard)
    the_device = resolve_extract_device(device)
    model = create_backbone(backbone, weights=weights, device=the_device)
    recipe = build_recipe(model, preset, fps=fps, storage_dtype=dtype, compute_dtype=compute_dtype,
                          device=the_device, short_side=short_side, regions=regions,
                          layers=layers, stride=stride, mirror=mirror, light=light)
    options = ExtractOptions(batch_size=batch_size, workers=default_workers() if workers is None else workers,
                             overwrite=overwrite, progress=progress, shard=the_shard,
                             clips_per_forward=clips_per_forward, accept_damaged=accept_damaged,
                             decode_timeout=decode_timeout)
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
