"""Ground truth: the formats vadpipe reads and writes, and matching video ids across them.

Conventions (everything inside vadpipe): frames are 0-based and an interval is
``[start, end)`` with ``end`` exclusive.

Ground-truth formats (:func:`load_ground_truth`, ``fmt="auto"`` picks by path):

- **vadpipe JSON** (``.json``), the format the synthetic world writes::

      {"format": "vadpipe-gt/1",                       # optional
       "videos": {"<video id>": {"frames": 750,        # frames in the video
                                 "intervals": [[100, 160], [400, 420]],   # 0-based, end exclusive
                                 "class": "Fighting"}}}                     # optional; "Normal" / null

  A normal video has ``"intervals": []``.
- **UCF-Crime temporal annotation text** (``.txt``): lines
  ``Abuse028_x264.mp4  Abuse  165  240  -1  -1`` — video, class, then up to two
  start/end pairs, ``-1`` for none. Default ``ucf_convention="1-based-inclusive"``:
  the numbers are 1-based frame numbers with the end included, as the MATLAB
  evaluator released with the dataset reads them (``GT(s:e) = 1``); frame
  ``n`` of the file is index ``n − 1`` here, so ``165 240`` → ``[164, 240)``.
  ``"0-based-exclusive"`` reads them as Python slices (``gt[s:e] = 1``), as
  several RTFM-family scripts do: ``165 240`` → ``[165, 240)``. The file holds
  no frame counts; those come from the features' manifest (or T·16).
- **ShanghaiTech frame masks** (a folder): ``<video>.npy`` per video, a 1-D
  0/1 array with one entry per frame (``test_frame_mask/01_0014.npy``).
- **Concatenated gt** (``.npy``, RTFM style): one 1-D 0/1 array for all test
  videos in list order. It is split per video by T·16 (RTFM's construction:
  each video contributes 16 frames per snippet), or by the manifest frame
  counts when those sum to its length; any other length is an error, never a
  silent truncation.

"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import atomic
from .errors import ConfigError, GroundTruthError
from .readers import read_array, read_text

GT_FORMAT = "vadpipe-gt/1"
UCF_CONVENTIONS = ("1-based-inclusive", "0-based-exclusive")
NORMAL_CLASSES = {None, "", "normal", "none"}


@dataclass
class VideoGT:
    id: str
    frames: Optional[int]                       # None when the source does not say (UCF text)
    intervals: List[Tuple[int, int]] = field(default_factory=list)   # 0-based, end exclusive
    cls: Optional[str] = None
    mask: Optional[np.ndarray] = None           # explicit per-frame 0/1 labels (masks, concatenated gt)
    note: str = ""

    @property
    def anomalous(self) -> bool:
        return bool(self.mask.any()) if self.mask is not None else bool(self.intervals)

    @property
    def frame_count(self) -> Optional[int]:
        """The frames the ground truth covers: its mask's length, else its stated count (None: unknown)."""
        return len(self.mask) if self.mask is not None else self.frames

    def labels(self, n: int) -> Tuple[np.ndarray, List[str]]:
        """(n,) 0/1 frame labels and notes about clipped intervals."""
        notes: List[str] = []
        if self.mask is not None:
            if len(self.mask) != n:
                raise GroundTruthError(f"gt of {self.id}: mask has {len(self.mask)} frames, expected {n}")
            return self.mask.astype(np.int8), notes
        out = np.zeros(n, dtype=np.int8)
        for start, end in self.intervals:
            if end > n:
                notes.append(f"interval [{start}, {end}) clipped to {n} frames")
            if start >= n:
                continue
            out[max(0, start):min(end, n)] = 1
        return out, notes


class GroundTruth(dict):
    """{video id: VideoGT} as read from ``origin`` (the file or folder, named in evaluation's errors)."""

    def __init__(self, origin: str | Path, items=()):
        super().__init__(items)
        self.origin = str(origin)


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs):
    """json ``object_pairs_hook``: a key twice in one object is an error (json.loads would keep the last)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


# --- readers ----------------------------------------------------------------------------------
def read_vadpipe_json(path: str | Path) -> Dict[str, VideoGT]:
    try:
        data = json.loads(read_text(path, what="ground truth JSON", error=GroundTruthError),
                          object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise GroundTruthError(f"{path}: {str(exc.args[0])!r} appears twice in one object (a video annotated "
                               "twice? JSON would keep only the last)") from None
    except ValueError as exc:
        raise GroundTruthError(f"{path}: cannot read ground truth JSON ({exc})") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise GroundTruthError(f"{path}: expected {{\"videos\": {{id: {{frames, intervals}}}}}}")
    if not videos:
        raise GroundTruthError(f"{path}: holds no videos")
    out = GroundTruth(path)
    for vid, rec in videos.items():
        try:
            frames = rec.get("frames")
            if frames is not None:
                if isinstance(frames, bool) or int(frames) != frames or frames < 1:
                    raise GroundTruthError(f"{path}: video {vid!r}: frames {frames!r} is not a count of frames")
                frames = int(frames)
            intervals = [(int(s), int(e)) for s, e in rec.get("intervals", [])]
        except (TypeError, ValueError, AttributeError):
            raise GroundTruthError(f"{path}: video {vid!r}: bad frames/intervals") from None
        bad = [iv for iv in intervals if iv[0] < 0 or iv[1] <= iv[0]]
        if bad:
            raise GroundTruthError(f"{path}: video {vid!r}: interval {list(bad[0])} is empty or negative "
                                   "(intervals are [start, end) with end exclusive)")
        out[vid] = VideoGT(vid, frames, intervals, rec.get("class"))
    return out


def write_vadpipe_json(path: str | Path, gts: Iterable[VideoGT]) -> None:
    videos = {g.id: {"frames": g.frames, "intervals": [list(iv) for iv in g.intervals], "class": g.cls}
              for g in gts}
    atomic.write_json(path, {"format": GT_FORMAT, "videos": videos})


def parse_ucf_line(line: str, convention: str = "1-based-inclusive") -> Optional[VideoGT]:
    parts = line.split()
    if not parts:
        return None
    if len(parts) < 4 or (len(parts) - 2) % 2:
        raise ValueError(f"expected 'video class start end [start end ...]', got {line.strip()!r}")
    numbers = [int(p) for p in parts[2:]]
    intervals = []
    for s, e in zip(numbers[0::2], numbers[1::2]):
        if s < 0 or e < 0:
            continue
        if convention == "1-based-inclusive":
            if s < 1 or e < s:
                raise ValueError(f"interval {s} {e} is not 1-based inclusive")
            intervals.append((s - 1, e))
        else:
            if e <= s:
                raise ValueError(f"interval {s} {e} is empty as a 0-based end-exclusive range")
            intervals.append((s, e))
    name = re.sub(r"\.(mp4|avi|mkv|mov|webm)$", "", parts[0], flags=re.IGNORECASE)
    return VideoGT(name, None, intervals, parts[1])


def read_ucf_annotation(path: str | Path, convention: str = "1-based-inclusive") -> Dict[str, VideoGT]:
    if convention not in UCF_CONVENTIONS:
        raise ConfigError(f"UCF convention {convention!r}; choose one of {', '.join(UCF_CONVENTIONS)}")
    lines = read_text(path, what="ground truth", error=GroundTruthError).splitlines()
    out, line_of = GroundTruth(path), {}
    for no, line in enumerate(lines, 1):
        try:
            gt = parse_ucf_line(line, convention)
        except ValueError as exc:
            raise GroundTruthError(f"{path}:{no}: {exc}") from None
        if gt is None:
            continue
        if gt.id in out:
            raise GroundTruthError(f"{path}:{no}: video {gt.id} already annotated on line {line_of[gt.id]} "
                                   "(one line per video, up to two intervals on it)")
        out[gt.id], line_of[gt.id] = gt, no
    if not out:
        raise GroundTruthError(f"{path}: holds no annotation lines ('video class start end [start end]')")
    return out


def read_labels_npy(path: str | Path, what: str) -> np.ndarray:
    """A .npy of frame labels, flat int8; anything but 0 and 1 (NaN, 2, 0.5) is a GroundTruthError: cast as it
    is, it would be other labels without a word."""
    labels = read_array(path, what=what, error=GroundTruthError).reshape(-1)
    if labels.size and not np.isin(np.unique(labels), (0, 1)).all():
        raise GroundTruthError(f"{path}: a {what} must hold only 0 and 1")
    return labels.astype(np.int8)


def read_frame_masks(folder: str | Path) -> Dict[str, VideoGT]:
    out = GroundTruth(folder)
    for p in sorted(Path(folder).glob("*.npy")):
        mask = read_labels_npy(p, "frame mask")
        out[p.stem] = VideoGT(p.stem, int(mask.size), [], None, mask, "frame mask")
    if not out:
        raise GroundTruthError(f"{folder}: no per-video .npy frame masks")
    return out


def split_concat_gt(gt: np.ndarray, ids: Sequence[str], snippets: Sequence[int],
                    frames: Optional[Sequence[Optional[int]]] = None, snippet_len: int = 16,
                    origin: str = "gt", stride: Optional[int] = None,
                    resampled: bool = False) -> Dict[str, VideoGT]:
    """Per-video masks from a concatenated gt in list order, split by the frames the snippets reach
    (T·16 for the usual non-overlapping snippets) or by frame counts. ``resampled``: the snippets are of a
    resampling recipe's frames, ``frames`` the videos' own (what a gt counts): split by those only."""
    from .intervals import reach_rule, snippet_reach

    gt = np.asarray(gt).reshape(-1)
    by_snippets = [snippet_reach(t, snippet_len, stride) for t in snippets]
    reach = reach_rule(snippet_len, stride)
    if sum(by_snippets) == gt.size and not resampled:
        lengths, how = by_snippets, f"split by {reach}" + (" (RTFM)" if reach.startswith("T*") else "")
    elif frames is not None and all(f is not None for f in frames) and sum(frames) == gt.size:
        lengths, how = list(frames), "split by " + ("the videos' own" if resampled else "manifest") + " frame counts"
    else:
        known = f", frame counts sum to {sum(frames)}" if frames is not None and all(
            f is not None for f in frames) else ""
        raise GroundTruthError(f"{origin}: {gt.size} gt frames, but the {len(ids)} videos' {reach} "
                               f"sum to {sum(by_snippets)}{known}; refusing to truncate or pad")
    out, pos = GroundTruth(origin), 0
    for vid, n in zip(ids, lengths):
        mask = gt[pos:pos + n].astype(np.int8)
        out[vid] = VideoGT(vid, int(n), [], None, mask, how)
        pos += n
    return out


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        return "masks"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".npy":
        return "concat"
    if suffix in (".txt", ".csv", ""):
        return "ucf"
    raise GroundTruthError(f"{path}: cannot tell the ground-truth format; pass --gt-format")


def load_ground_truth(path: str | Path, fmt: str = "auto", ucf_convention: str = "1-based-inclusive",
                      order: Optional[Sequence[str]] = None, snippets: Optional[Sequence[int]] = None,
                      frames: Optional[Sequence[Optional[int]]] = None, snippet_len: int = 16,
                      stride: Optional[int] = None, resampled: bool = False) -> Dict[str, VideoGT]:
    """{video id: VideoGT}. A concatenated gt needs ``order`` (ids in list order) and ``snippets`` (T each,
    of ``snippet_len`` frames every ``stride``; ``resampled``: see ``split_concat_gt``)."""
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(f"{path}: no such ground-truth file or folder")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "json":
        return read_vadpipe_json(path)
    if fmt == "ucf":
        return read_ucf_annotation(path, ucf_convention)
    if fmt == "masks":
        return read_frame_masks(path)
    if fmt == "concat":
        if order is None or snippets is None:
            raise GroundTruthError(f"{path}: a concatenated gt needs the videos in list order "
                                   "(evaluate features or a score folder that records its order)")
        return split_concat_gt(read_labels_npy(path, "ground truth"), order, snippets, frames,
                               snippet_len, str(path), stride, resampled)
    raise ConfigError(f"unknown gt format {fmt!r} (auto, json, ucf, masks, concat)")


# --- matching ids ---------------------------------------------------------------------------
def video_key(name: str) -> str:
    """A loose key for matching names across formats: last path part, no extension, no _i3d suffix."""
    base = name.replace("\\", "/").split("/")[-1].split("__")[-1]
    base = re.sub(r"\.(mp4|avi|mkv|mov|webm|npy|npz)$", "", base, flags=re.IGNORECASE)
    return re.sub(r"_(i3d|rgb|features?)$", "", base, flags=re.IGNORECASE)


def folder_parts(name: str) -> List[str]:
    """The folders an id names (``cam1/clip``, or flattened ``cam1__clip``), lower case."""
    return [part.lower() for part in name.replace("\\", "/").replace("__", "/").split("/")[:-1] if part]


def same_place(a: str, b: str) -> bool:
    """Whether two ids' folders can be one place: one's folders end the other's (``Anomaly/x`` and
    ``test/Anomaly/x``; an id without folders goes anywhere), so ``cam2/clip001`` is never ``cam1/clip001``."""
    fa, fb = folder_parts(a), folder_parts(b)
    short, long_ = sorted((fa, fb), key=len)
    return not short or long_[len(long_) - len(short):] == short


def match_ids(score_ids: Sequence[str], gt_ids: Sequence[str]) -> Dict[str, str]:
    """score id → gt id: exact ids first, then unambiguous loose keys (video_key) whose folders agree."""
    gt_set = set(gt_ids)
    loose: Dict[str, List[str]] = {}
    for g in gt_ids:
        loose.setdefault(video_key(g), []).append(g)
    out = {}
    for s in score_ids:
        if s in gt_set:
            out[s] = s
        else:
            cands = [g for g in loose.get(video_key(s), []) if same_place(s, g)]
            if len(cands) == 1:
                out[s] = cands[0]
    taken: Dict[str, int] = {}
    for g in out.values():
        taken[g] = taken.get(g, 0) + 1
    return {s: g for s, g in out.items() if taken[g] == 1 or s == g}

