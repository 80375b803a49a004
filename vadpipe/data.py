"""Training data: feature sets, 32-segment bags, stratified hold-out, balanced batches.

Two sources, read without conversion (:func:`open_features`):

- a vadpipe feature folder (``recipe.json`` + ``manifest.jsonl`` + ``.npy``
  arrays (T, C, D); see vadpipe.features). Only ``status == "ok"`` videos of the
  folder's recipe are used; labels/classes/frames come from the manifest.
- an RTFM-style list file: one ``.npy`` path per line, each (T, 10, D) or
  (T, D). A path that does not exist as written is looked up relative to the
  list's folder, then by file name in that folder (so a moved set still
  reads). Video id = file stem without a ``_i3d``/``_rgb`` suffix. Labels
  (``list_anomalous``): ``first:N`` — the first N lines are anomalous, the rest
  normal (what RTFM's code does for both of its training lists: UCF-Crime
  ``ucf-i3d.list`` first:810, ShanghaiTech ``shanghai-i3d-train-10crop.list``
  first:63); ``last:N`` — the reverse order; ``name`` — a file name containing
  "normal" (any case) is normal, any other anomalous (UCF-Crime names:
  ``Normal_Videos308_3_x264_i3d.npy``); ``auto`` — ``name`` when any line
  contains "normal", otherwise unknown; ``none`` — unknown (test lists).
  Lists carry no recipe; snippets are taken to be 16 frames (RTFM).

Training bags (:func:`resample_segments`): a video's T snippets are split into
32 contiguous near-equal chunks [⌊iT/32⌋, ⌊(i+1)T/32⌋) and each chunk is
averaged; when T < 32 a chunk is the single snippet ⌊iT/32⌋, so snippets
repeat. Every crop is resampled separately: bags are (C, 32, D).

With ``bags: real`` (:func:`load_real_bags`, :func:`pad_windows`) a video trains on its own
snippets instead: a batch is padded to its longest video (at most ``max_segments``, a random
window of a longer one) with a validity mask, so short videos are not runs of repeated segments.

Batches (:class:`BalancedSampler`) are deterministic functions of (seed,
iteration), so a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ConfigError, FeatureStoreError
from .features import MANIFEST_FILE, FeatureStore, as_snippet_crops
from .intervals import NativeFrames
from .progress import progress_bar
from .readers import check_finite, read_array
from .rtfm_lists import label_from_name, list_rule, read_list_file
from .recipe import Recipe

RTFM_SNIPPET_LEN = 16
_SUFFIX = re.compile(r"_(i3d|rgb|features?)$", re.IGNORECASE)


@dataclass
class Video:
    id: str
    label: Optional[int]          # 0 normal, 1 anomalous, None unknown
    cls: Optional[str]
    frames: Optional[int]         # decoded frames, when known
    T: Optional[int]              # snippets, when known without loading
    source: str                   # the .npy (or the source video for a store)
    loader: Callable[[], np.ndarray]
    file: Optional[str] = None    # the .npy, where ``source`` is the video
    native: Optional[NativeFrames] = None   # the video's own frames, when its recipe resampled it (manifest)
    finite: bool = field(default=False, init=False, repr=False, compare=False)   # checked once, see raw()

    @property
    def where(self) -> str:
        """The file a message about this video's features names: the .npy (a store's ``source`` is the video)."""
        return self.file or self.source

    def raw(self) -> np.ndarray:
        """(T, C, D) as stored (possibly a read-only memory map, possibly float16). A file that cannot be
        read, or whose features hold NaN or inf (checked on the first read, one pass), is a FeatureStoreError
        naming it."""
        x = self.loader()
        try:
            x = as_snippet_crops(x)
        except ValueError as exc:
            raise FeatureStoreError(f"{self.where}: {exc}") from None
        if not self.finite:
            check_finite(x, self.where)
            self.finite = True
        return x

    def shaped(self, shape: Tuple[int, int], like: str = "the other videos") -> np.ndarray:
        """:meth:`raw`, and a FeatureStoreError naming the .npy when its (C, D) is not ``shape`` (``like``: whose
        shape that is): the one check of a video's crops and dims against its set's, which training,
        validation and ``eval --run`` read every video through."""
        x = self.raw()
        if tuple(x.shape[1:]) != tuple(shape):
            raise FeatureStoreError(f"{self.where}: {x.shape[1]} crops x {x.shape[2]} dims, expected "
                                    f"{shape[0]} x {shape[1]} like {like}")
        return x

    def load(self) -> np.ndarray:
        """(T, C, D) float32, an in-memory writable copy."""
        return np.array(self.raw(), dtype=np.float32)


@dataclass
class FeatureSet:
    videos: List[Video]
    recipe: Optional[Recipe]
    origin: str
    kind: str                     # "store" | "list"

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def snippet_len(self) -> int:
        return self.recipe.snippet_len if self.recipe else RTFM_SNIPPET_LEN

    @property
    def stride(self) -> int:
        """Frames between snippet starts (lists: RTFM's non-overlapping snippets)."""
        return self.recipe.stride if self.recipe else RTFM_SNIPPET_LEN

    def shape(self) -> Tuple[int, int]:
        """(crops, feature dim) of the set, read from its first video."""
        if not self.videos:
            raise FeatureStoreError(f"{self.origin}: no videos")
        x = self.videos[0].raw()
        return x.shape[1], x.shape[2]

    def read_all(self, shape: Optional[Tuple[int, int]] = None, like: str = "the other videos") -> None:
        """Read every video once: one that cannot be read, holds NaN or inf, or whose (C, D) is not ``shape``
        (default: the first video's) is a FeatureStoreError now, not in the middle of a run (what the run reads
        again later, its page cache keeps)."""
        shape = shape or self.shape()
        for video in self.videos:
            video.shaped(shape, like)

    def labels(self) -> np.ndarray:
        return np.array([-1 if v.label is None else v.label for v in self.videos])

    def positions(self, ids: Sequence[str], why: str) -> np.ndarray:
        """Positions in this set of the videos ``ids`` (a run's recorded split); a FeatureStoreError naming
        the first one gone (``why``: what cannot go on without it)."""
        index = {v.id: i for i, v in enumerate(self.videos)}
        gone = [vid for vid in ids if vid not in index]
        if gone:
            raise FeatureStoreError(f"{self.origin}: video {gone[0]!r} of the run is gone; {why}")
        return np.array([index[vid] for vid in ids], dtype=np.int64)

    def subset(self, index: Sequence[int]) -> "FeatureSet":
        return FeatureSet([self.videos[i] for i in index], self.recipe, self.origin, self.kind)


def _store_set(folder: Path) -> FeatureSet:
    store = FeatureStore(folder)
    records = store.records(ok_only=True)
    if not records:
        raise FeatureStoreError(f"{folder}: no extracted videos with status ok in {MANIFEST_FILE}")
    if all(r.list_index is not None for r in records):   # imported with its list: read in the list's order
        records = sorted(records, key=lambda r: r.list_index)
    videos = [Video(r.id, r.label, r.cls, r.frames, r.T, r.path or r.file,
                    (lambda rec=r: store.load(rec, mmap=True)), str(store.resolve(r.file)) if r.file else None,
                    r.native)
              for r in records]
    return FeatureSet(videos, store.recipe(), str(folder), "store")


def _resolve_listed(line: str, base: Path) -> Optional[Path]:
    path = Path(line)
    name = PureWindowsPath(line).name if "\\" in line else path.name
    for candidate in (path, base / line, base / name):
        if candidate.is_file():
            return candidate
    return None


def list_labels(names: Sequence[str], rule: str, origin: str) -> List[Optional[int]]:
    """Video labels of list entries under ``rule`` (see the module docstring)."""
    n = len(names)
    kind, count = list_rule(rule)
    if kind == "auto":
        kind = "name" if any("normal" in s.lower() for s in names) else "none"
    if kind == "none":
        return [None] * n
    if kind == "name":
        return [0 if "normal" in s.lower() else 1 for s in names]
    if count > n:
        raise ConfigError(f"{origin}: list_anomalous {rule.strip().lower()} but the list has only {n} lines")
    if kind == "first":
        return [1] * count + [0] * (n - count)
    return [0] * (n - count) + [1] * count


def _list_set(path: Path, rule: str) -> FeatureSet:
    lines = read_list_file(path)
    if not lines:
        raise FeatureStoreError(f"{path}: the list is empty")
    base = path.parent
    resolved = [(line, _resolve_listed(line, base)) for line in lines]
    missing = [line for line, p in resolved if p is None]
    if missing:
        raise FeatureStoreError(f"{path}: {len(missing)} listed file(s) not found, first: {missing[0]}")
    stems = [_SUFFIX.sub("", p.stem) for _, p in resolved]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise FeatureStoreError(f"{path}: video {dup!r} is listed twice")
    labels = list_labels([p.name for _, p in resolved], rule, str(path))
    videos = []
    for stem, (_, p), label in zip(stems, resolved, labels):
        cls = label_from_name(stem)[1] if label is not None else None
        if label == 1 and cls == "Normal":
            cls = None
        videos.append(Video(stem, label, cls if label is not None else None, None, None, str(p),
                            (lambda p=p: read_array(p, mmap=True))))
    return FeatureSet(videos, None, str(path), "list")


def open_features(path: str | Path, list_anomalous: str = "auto") -> FeatureSet:
    """A feature folder or an RTFM-style list file (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        if not (path / MANIFEST_FILE).exists() and not any(path.glob("manifest.shard-*.jsonl")):
            raise FeatureStoreError(f"{path}: not a feature folder (no {MANIFEST_FILE}); run `vadpipe extract` first")
        return _store_set(path)
    if path.is_file():
        return _list_set(path, list_anomalous)
    raise FeatureStoreError(f"{path}: no such feature folder or list file; `vadpipe extract VIDEOS/` writes "
                            "./features (--out DIR elsewhere), or pass --features DIR|LIST")


# --- bags -------------------------------------------------------------------------------------
def resample_segments(feats: np.ndarray, n: int = 32) -> np.ndarray:
    """(T, ...) → (n, ...): mean over n contiguous near-equal chunks; repeats snippets when T < n."""
    t = feats.shape[0]
    if t == 0:
        raise ValueError("cannot resample an empty feature array")
    bounds = (np.arange(n + 1) * t) // n
    out = np.empty((n,) + feats.shape[1:], dtype=np.float32)
    for i in range(n):
        start = bounds[i]
        stop = max(bounds[i + 1], start + 1)
        out[i] = np.asarray(feats[start:stop], dtype=np.float64).mean(axis=0)
    return out


def build_bags(videos: Sequence[Video], segments: int = 32, progress: bool = False,
               shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Training bags (N, C, segments, D) float32 for the given videos (all must have (C, D) ``shape``,
    default the first one's)."""
    if not videos:
        raise FeatureStoreError("no videos to build training bags from")
    shape = shape or tuple(videos[0].raw().shape[1:])
    bags = np.empty((len(videos), shape[0], segments, shape[1]), dtype=np.float32)
    iterator = videos
    if progress:
        iterator = progress_bar(videos, desc="bags", unit="video", leave=False)
    for i, video in enumerate(iterator):
        x = video.shaped(shape)                                    # (T, C, D)
        bags[i] = resample_segments(x, segments).transpose(1, 0, 2)
    return bags


def load_real_bags(videos: Sequence[Video], progress: bool = False,
                   shape: Optional[Tuple[int, int]] = None) -> List[np.ndarray]:
    """Each video's own snippets (C, T, D) float32 (``bags: real``); all must have (C, D) ``shape``,
    default the first one's."""
    if not videos:
        raise FeatureStoreError("no videos to build training bags from")
    shape = shape or tuple(videos[0].raw().shape[1:])
    iterator = videos
    if progress:
        iterator = progress_bar(videos, desc="videos", unit="video", leave=False)
    return [np.ascontiguousarray(np.asarray(video.shaped(shape), dtype=np.float32).transpose(1, 0, 2))
            for video in iterator]


def pad_windows(rows: Sequence[np.ndarray], max_len: int, seed: int, iteration: int,
                group: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Rows (T_i, D) → (N, L, D) zero-padded and a validity mask (N, L), L = min(max T_i, max_len).

    A row longer than ``max_len`` contributes a window of that length starting at a position drawn
    from (seed, iteration), so a resumed run sees the same windows; each run of ``group`` rows (the
    crops of one video) shares one window.
    """
    rng = np.random.default_rng([seed, 5, iteration])
    length = min(max(r.shape[0] for r in rows), max_len)
    x = np.zeros((len(rows), length, rows[0].shape[-1]), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=bool)
    start = 0
    for i, r in enumerate(rows):
        if r.shape[0] > max_len:
            if i % group == 0:
                start = int(rng.integers(0, r.shape[0] - max_len + 1))
            r = r[start:start + max_len]
        x[i, :r.shape[0]] = r
        mask[i, :r.shape[0]] = True
    return x, mask


# --- splitting and sampling -----------------------------------------------------------------
def _shuffled_classes(labels: Sequence[int], seed: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(class, its indices in a seeded random order) for each class in label order: one draw per class,
    whichever classes the caller uses, so a split and its folds shuffle alike."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 7])
    for value in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == value)
        yield value, idx[rng.permutation(len(idx))]


def stratified_split(labels: Sequence[int], fraction: float, seed: int,
                     only: Optional[Sequence[int]] = None, cap: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: ``fraction`` of each class held out, at most ``cap`` (0: no cap), at
    least one per class when ``fraction`` > 0 and the class has two or more videos, never the whole
    class. With ``only``, just those classes give videos to the held-out share (the others all train).
    A cap keeps the first ``cap`` of the uncapped draw, so it only moves held-out videos to training."""
    train, held = [], []
    for value, idx in _shuffled_classes(labels, seed):
        if only is not None and value not in only:
            train.extend(idx.tolist())
            continue
        n_val = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, len(idx) - 1, cap or len(idx))
        held.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


def stratified_folds(labels: Sequence[int], folds: int, seed: int,
                     only: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """``folds`` disjoint held-out index sets that together hold every video of the classes in ``only``
    (all classes when None): each class shuffled with ``seed`` and dealt in turn, the deal running on across
    classes, so fold sizes differ by at most one in each class and in all."""
    held: List[List[int]] = [[] for _ in range(folds)]
    dealt = 0
    for value, idx in _shuffled_classes(labels, seed):
        if only is not None and value not in only:
            continue
        for i in idx.tolist():
            held[dealt % folds].append(i)
            dealt += 1
    return [np.array(sorted(h), dtype=np.int64) for h in held]


class BalancedSampler:
    """Balanced batches: each iteration draws from the anomalous and the normal pool.

    Within a pool, batches walk through consecutive random permutations (every
    video once per pass, reshuffled each pass), so small pools are sampled with
    replacement across iterations. Batch sizes clamp to the pool sizes. The
    draw of iteration i depends only on (seed, i).
    """

    def __init__(self, anomalous: Sequence[int], normal: Sequence[int], batch_anomalous: int, batch_normal: int,
                 seed: int = 0):
        self.pools = (np.asarray(anomalous, dtype=np.int64), np.asarray(normal, dtype=np.int64))
        if any(len(p) == 0 for p in self.pools):
            raise ConfigError("training needs at least one anomalous and one normal video")
        self.sizes = (min(batch_anomalous, len(self.pools[0])), min(batch_normal, len(self.pools[1])))
        self.seed = seed

    def _draw(self, which: int, iteration: int) -> np.ndarray:
        pool, n = self.pools[which], self.sizes[which]
        start = iteration * n
        out = []
        while len(out) < n:
            p, offset = divmod(start + len(out), len(pool))
            perm = np.random.default_rng([self.seed, which, p]).permutation(len(pool))
            out.extend(perm[offset:offset + n - len(out)].tolist())
        return pool[np.array(out)]

    def batch(self, iteration: int) -> Tuple[np.ndarray, np.ndarray]:
        """(anomalous video indices, normal video indices) of iteration ``iteration``."""
        return self._draw(0, iteration), self._draw(1, iteration)


def choose_crops(seed: int, iteration: int, count: int, crops: int) -> np.ndarray:
    """One random crop per video for iteration ``iteration`` (``crops = "random"``)."""
    return np.random.default_rng([seed, 3, iteration]).integers(0, crops, size=count)
