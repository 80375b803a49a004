"""Frame-level evaluation: ground truth, snippet→frame alignment, metrics, per-video score files.

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

Alignment (:func:`align_video`): snippet i covers frames [16i, 16i+16); frame
f's score is snippet ⌊f/16⌋'s. With N frames to score (gt mask length, gt frame
count, manifest frame count, else T·16) and T snippets, the known cases are
handled and reported per video: ``exact`` (T·16 = N), ``tail`` (the last
snippet is partial: (T−1)·16 < N < T·16 — its scores cover the remaining
frames), ``extended`` (the extractor dropped a last partial snippet:
T·16 < N < (T+1)·16 — those frames take the last score). Anything else is a
``mismatch``: an error by default, or the video is skipped and reported
(``on_mismatch="skip"``). Intervals running past N are clipped and reported.

Metrics (:func:`compute_metrics`, sklearn): frame ROC AUC and AP over all
frames concatenated; AUC over anomalous videos only (videos with any
anomalous frame); per-class AUC (frames of that class's videos plus all normal
videos); false-alarm rate on normal videos (share of their frames with score ≥
threshold), at 0.5 and at calibrated thresholds when given.

Score files (:func:`write_scores`): a folder with ``index.json``
(``{"format": "vadpipe-scores/1", "snippet_len": 16, "order": [ids],
"videos": {id: {"file": "<name>.npy", "T": T, "frames": n|null}}}``) and one
float32 ``(T,)`` snippet-score ``.npy`` per video. ``--scores`` also takes one
``.json`` file of the same schema with ``"scores": [...]`` inline instead of
``"file"``, or a concatenated frame-score ``.npy`` (compared with a
concatenated gt of exactly the same length).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import atomic
from .errors import ConfigError, GroundTruthError

SCORES_FORMAT = "vadpipe-scores/1"
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


# --- readers ----------------------------------------------------------------------------------
def read_vadpipe_json(path: str | Path) -> Dict[str, VideoGT]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"{path}: cannot read ground truth JSON ({exc})") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise GroundTruthError(f"{path}: expected {{\"videos\": {{id: {{frames, intervals}}}}}}")
    out = {}
    for vid, rec in videos.items():
        try:
            frames = None if rec.get("frames") is None else int(rec["frames"])
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
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GroundTruthError(f"{path}: cannot read ({exc.strerror or exc})") from None
    out = {}
    for no, line in enumerate(lines, 1):
        try:
            gt = parse_ucf_line(line, convention)
        except ValueError as exc:
            raise GroundTruthError(f"{path}:{no}: {exc}") from None
        if gt is not None:
            out[gt.id] = gt
    return out


def read_frame_masks(folder: str | Path) -> Dict[str, VideoGT]:
    out = {}
    for p in sorted(Path(folder).glob("*.npy")):
        mask = np.load(p, allow_pickle=False).reshape(-1)
        if mask.size and not np.isin(np.unique(mask), (0, 1)).all():
            raise GroundTruthError(f"{p}: a frame mask must hold only 0 and 1")
        out[p.stem] = VideoGT(p.stem, int(mask.size), [], None, mask.astype(np.int8), "frame mask")
    if not out:
        raise GroundTruthError(f"{folder}: no per-video .npy frame masks")
    return out


def split_concat_gt(gt: np.ndarray, ids: Sequence[str], snippets: Sequence[int],
                    frames: Optional[Sequence[Optional[int]]] = None, snippet_len: int = 16,
                    origin: str = "gt") -> Dict[str, VideoGT]:
    """Per-video masks from a concatenated gt in list order, split by T·16 (or by frame counts)."""
    gt = np.asarray(gt).reshape(-1)
    by_snippets = [t * snippet_len for t in snippets]
    if sum(by_snippets) == gt.size:
        lengths, how = by_snippets, f"split by T*{snippet_len} (RTFM)"
    elif frames is not None and all(f is not None for f in frames) and sum(frames) == gt.size:
        lengths, how = list(frames), "split by manifest frame counts"
    else:
        known = f", frame counts sum to {sum(frames)}" if frames is not None and all(
            f is not None for f in frames) else ""
        raise GroundTruthError(f"{origin}: {gt.size} gt frames, but the {len(ids)} videos' T*{snippet_len} "
                               f"sum to {sum(by_snippets)}{known}; refusing to truncate or pad")
    out, pos = {}, 0
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
                      frames: Optional[Sequence[Optional[int]]] = None, snippet_len: int = 16) -> Dict[str, VideoGT]:
    """{video id: VideoGT}. A concatenated gt needs ``order`` (ids in list order) and ``snippets`` (T each)."""
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
        return split_concat_gt(np.load(path, allow_pickle=False), order, snippets, frames, snippet_len, str(path))
    raise ConfigError(f"unknown gt format {fmt!r} (auto, json, ucf, masks, concat)")


# --- matching ids ---------------------------------------------------------------------------
def video_key(name: str) -> str:
    """A loose key for matching names across formats: last path part, no extension, no _i3d suffix."""
    base = name.replace("\\", "/").split("/")[-1].split("__")[-1]
    base = re.sub(r"\.(mp4|avi|mkv|mov|webm|npy|npz)$", "", base, flags=re.IGNORECASE)
    return re.sub(r"_(i3d|rgb|features?)$", "", base, flags=re.IGNORECASE)


def match_ids(score_ids: Sequence[str], gt_ids: Sequence[str]) -> Dict[str, str]:
    """score id → gt id: exact ids first, then unambiguous loose keys (video_key)."""
    gt_set = set(gt_ids)
    loose: Dict[str, List[str]] = {}
    for g in gt_ids:
        loose.setdefault(video_key(g), []).append(g)
    out = {}
    for s in score_ids:
        if s in gt_set:
            out[s] = s
        else:
            cands = loose.get(video_key(s), [])
            if len(cands) == 1:
                out[s] = cands[0]
    taken: Dict[str, int] = {}
    for g in out.values():
        taken[g] = taken.get(g, 0) + 1
    return {s: g for s, g in out.items() if taken[g] == 1 or s == g}


# --- alignment ------------------------------------------------------------------------------
@dataclass
class Alignment:
    id: str
    snippets: int
    frames: int
    action: str          # exact | tail | extended | mismatch | no-gt
    detail: str


def align_video(scores: np.ndarray, gt: VideoGT, video_frames: Optional[int] = None,
                snippet_len: int = 16) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Alignment]:
    """(frame scores, frame labels, report); scores/labels are None for a mismatch."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    t, L = scores.size, snippet_len
    notes = []
    if gt.mask is not None:
        n, source = len(gt.mask), f"gt mask ({gt.note})" if gt.note else "gt mask"
    elif gt.frames is not None:
        n, source = gt.frames, "gt frame count"
    elif video_frames is not None:
        n, source = video_frames, "manifest frame count"
    else:
        n, source = t * L, f"T*{L} (no frame count known)"
    if video_frames is not None and n != video_frames and gt.mask is None:
        notes.append(f"manifest says {video_frames} frames")
    if video_frames is not None and gt.mask is not None and n != video_frames:
        notes.append(f"manifest says {video_frames} frames, gt covers {n}")
    if t == 0 or n == 0:
        return None, None, Alignment(gt.id, t, n, "mismatch", f"{t} snippets, {n} frames ({source})")
    if t * L == n:
        action, detail = "exact", f"{t} snippets x {L} = {n} frames"
    elif (t - 1) * L < n < t * L:
        action, detail = "tail", f"last snippet covers {n - (t - 1) * L} of {L} frames"
    elif t * L < n < (t + 1) * L:
        action, detail = "extended", f"{n - t * L} frames past the last snippet take its score (dropped partial snippet)"
    else:
        detail = f"{t} snippets cover {(t - 1) * L + 1}..{t * L} frames, but there are {n} ({source})"
        return None, None, Alignment(gt.id, t, n, "mismatch", "; ".join([detail] + notes))
    labels, clip_notes = gt.labels(n)
    frame_scores = scores[np.minimum(np.arange(n) // L, t - 1)]
    detail = "; ".join([f"{detail} [{source}]"] + notes + clip_notes)
    return frame_scores, labels, Alignment(gt.id, t, n, action, detail)


# --- metrics ------------------------------------------------------------------------------
def _auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else None


def _ap(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    from sklearn.metrics import average_precision_score
    return float(average_precision_score(y, s)) if 0 < y.sum() < y.size else None


def compute_metrics(frame_scores: Dict[str, np.ndarray], frame_labels: Dict[str, np.ndarray],
                    classes: Optional[Dict[str, Optional[str]]] = None, threshold: float = 0.5,
                    extra_thresholds: Optional[Dict[str, float]] = None) -> dict:
    """Frame AUC/AP over all videos, anomalous-only AUC, per-class AUC, false-alarm rates."""
    ids = list(frame_scores)
    if not ids:
        raise GroundTruthError("no video could be evaluated")
    classes = classes or {}
    y = np.concatenate([frame_labels[i] for i in ids])
    s = np.concatenate([frame_scores[i] for i in ids])
    anomalous = [i for i in ids if frame_labels[i].any()]
    normal = [i for i in ids if not frame_labels[i].any()]

    def subset(vids):
        return (np.concatenate([frame_labels[i] for i in vids]), np.concatenate([frame_scores[i] for i in vids]))

    out = {"n_videos": len(ids), "n_anomalous_videos": len(anomalous), "n_normal_videos": len(normal),
           "n_frames": int(y.size), "n_anomalous_frames": int(y.sum()),
           "auc": _auc(y, s), "ap": _ap(y, s)}
    out["auc_anomalous_videos"] = _auc(*subset(anomalous)) if anomalous else None
    per_class = {}
    for cls in sorted({classes.get(i) for i in anomalous} - {None}, key=str):
        vids = [i for i in anomalous if classes.get(i) == cls] + normal
        per_class[str(cls)] = _auc(*subset(vids))
    out["auc_per_class"] = per_class
    if normal:
        s_norm = subset(normal)[1]
        out["false_alarm_rate"] = float((s_norm >= threshold).mean())
        out["threshold"] = threshold
        for name, thr in (extra_thresholds or {}).items():
            out[f"false_alarm_rate@{name}"] = float((s_norm >= thr).mean())
    else:
        out["false_alarm_rate"] = None
    return out


@dataclass
class EvalResult:
    metrics: dict
    alignments: List[Alignment]
    unmatched_scores: List[str] = field(default_factory=list)
    unmatched_gt: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "alignments": [asdict(a) for a in self.alignments],
                "unmatched_scores": self.unmatched_scores, "unmatched_gt": self.unmatched_gt, "notes": self.notes}

    def summary(self) -> str:
        m = self.metrics

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f}"

        lines = [f"videos {m['n_videos']} ({m['n_anomalous_videos']} anomalous, {m['n_normal_videos']} normal), "
                 f"frames {m['n_frames']} ({m['n_anomalous_frames']} anomalous)",
                 f"frame AUC {pct(m['auc'])}   AP {pct(m['ap'])}   AUC anomalous-only {pct(m['auc_anomalous_videos'])}"]
        if m.get("false_alarm_rate") is not None:
            far = [f"false alarms on normal videos: {pct(m['false_alarm_rate'])}% @ {m['threshold']}"]
            far += [f"{pct(v)}% @ {k.split('@', 1)[1]}" for k, v in m.items() if k.startswith("false_alarm_rate@")]
            lines.append(", ".join(far))
        for cls, v in m.get("auc_per_class", {}).items():
            lines.append(f"  AUC {cls:<20} {pct(v)}")
        counts: Dict[str, int] = {}
        for a in self.alignments:
            counts[a.action] = counts.get(a.action, 0) + 1
        lines.append("alignment: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for a in self.alignments:
            if a.action in ("extended", "mismatch") or "clipped" in a.detail or "manifest says" in a.detail:
                lines.append(f"  {a.id}: {a.action}: {a.detail}")
        if self.unmatched_scores:
            lines.append(f"no ground truth for {len(self.unmatched_scores)} scored video(s), e.g. {self.unmatched_scores[0]}")
        if self.unmatched_gt:
            lines.append(f"no scores for {len(self.unmatched_gt)} gt video(s), e.g. {self.unmatched_gt[0]}")
        lines += self.notes
        return "\n".join(lines)


def evaluate_scores(scores: Dict[str, np.ndarray], gts: Dict[str, VideoGT], *, snippet_len: int = 16,
                    frames: Optional[Dict[str, Optional[int]]] = None, classes: Optional[Dict[str, Optional[str]]] = None,
                    threshold: float = 0.5, extra_thresholds: Optional[Dict[str, float]] = None,
                    on_mismatch: str = "error") -> EvalResult:
    """Align every scored video that has ground truth and compute the metrics."""
    if on_mismatch not in ("error", "skip"):
        raise ConfigError(f"on_mismatch {on_mismatch!r}; choose error or skip")
    frames, classes = frames or {}, dict(classes or {})
    mapping = match_ids(list(scores), list(gts))
    fs, fl, reports = {}, {}, []
    for sid, vals in scores.items():
        gid = mapping.get(sid)
        if gid is None:
            continue
        gt = gts[gid]
        f_scores, f_labels, report = align_video(vals, gt, frames.get(sid), snippet_len)
        report.id = sid
        reports.append(report)
        if f_scores is None:
            if on_mismatch == "error":
                raise GroundTruthError(f"video {sid}: {report.detail} (use --on-mismatch skip to leave it out)")
            continue
        fs[sid], fl[sid] = f_scores, f_labels
        if gt.cls is not None:
            classes[sid] = gt.cls
    classes = {k: (None if v is None or str(v).lower() in NORMAL_CLASSES else v) for k, v in classes.items()}
    metrics = compute_metrics(fs, fl, classes, threshold, extra_thresholds)
    matched_gt = set(mapping.values())
    return EvalResult(metrics, reports, sorted(set(scores) - set(mapping)), sorted(set(gts) - matched_gt))


# --- score files ----------------------------------------------------------------------------
@dataclass
class ScoreSet:
    scores: Dict[str, np.ndarray]             # id → (T,) snippet scores, in order
    frames: Dict[str, Optional[int]]
    snippet_len: int = 16
    meta: dict = field(default_factory=dict)


def write_scores(folder: str | Path, score_set: ScoreSet) -> Path:
    """Per-video snippet scores + index.json (see the module docstring)."""
    from .features import feature_filename

    folder = Path(folder)
    videos = {}
    for vid, vals in score_set.scores.items():
        name = feature_filename(vid)
        atomic.save_npy(folder / name, np.asarray(vals, dtype=np.float32))
        videos[vid] = {"file": name, "T": int(np.asarray(vals).size), "frames": score_set.frames.get(vid)}
    index = {**score_set.meta, "format": SCORES_FORMAT, "snippet_len": score_set.snippet_len,
             "order": list(score_set.scores), "videos": videos}
    atomic.write_json(folder / "index.json", index)
    return folder / "index.json"


def read_scores(path: str | Path) -> ScoreSet:
    """A score folder (index.json) or a single .json of the same schema with inline ``scores``."""
    path = Path(path)
    index_path = path / "index.json" if path.is_dir() else path
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"{index_path}: cannot read scores ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != SCORES_FORMAT:
        raise GroundTruthError(f"{index_path}: not a vadpipe score file (format {SCORES_FORMAT})")
    order = index.get("order") or list(index["videos"])
    scores, frames = {}, {}
    for vid in order:
        rec = index["videos"][vid]
        if "scores" in rec:
            scores[vid] = np.asarray(rec["scores"], dtype=np.float32)
        else:
            scores[vid] = np.load(index_path.parent / rec["file"], allow_pickle=False).astype(np.float32)
        frames[vid] = rec.get("frames")
    meta = {k: v for k, v in index.items() if k not in ("videos", "order", "format", "snippet_len")}
    return ScoreSet(scores, frames, int(index.get("snippet_len", 16)), meta)


def evaluate_concatenated(scores_npy: str | Path, gt_npy: str | Path, threshold: float = 0.5) -> EvalResult:
    """RTFM-style: one concatenated frame-score array against one concatenated gt of the same length."""
    s = np.load(scores_npy, allow_pickle=False).reshape(-1).astype(np.float64)
    y = np.load(gt_npy, allow_pickle=False).reshape(-1).astype(np.int8)
    if s.size != y.size:
        raise GroundTruthError(f"{scores_npy} has {s.size} frame scores but {gt_npy} has {y.size} labels; "
                               "refusing to truncate (score per video to align them)")
    metrics = {"n_videos": None, "n_anomalous_videos": None, "n_normal_videos": None, "n_frames": int(y.size),
               "n_anomalous_frames": int(y.sum()), "auc": _auc(y, s), "ap": _ap(y, s),
               "auc_anomalous_videos": None, "auc_per_class": {}, "false_alarm_rate": None}
    return EvalResult(metrics, [], notes=["concatenated arrays: no per-video alignment or breakdown"])


def evaluate_score_path(scores: str | Path, gt: str | Path, gt_format: str = "auto",
                        ucf_convention: str = "1-based-inclusive", threshold: float = 0.5,
                        on_mismatch: str = "error") -> EvalResult:
    """``vadpipe eval --scores``: a score folder/JSON, or a concatenated frame-score .npy."""
    scores = Path(scores)
    if scores.suffix.lower() == ".npy":
        fmt = detect_format(gt) if gt_format == "auto" else gt_format
        if fmt != "concat":
            raise GroundTruthError(f"{scores}: concatenated frame scores need a concatenated gt .npy")
        return evaluate_concatenated(scores, gt, threshold)
    ss = read_scores(scores)
    order = list(ss.scores)
    gts = load_ground_truth(gt, gt_format, ucf_convention, order=order,
                            snippets=[ss.scores[i].size for i in order], frames=[ss.frames.get(i) for i in order],
                            snippet_len=ss.snippet_len)
    thresholds = {f"q{k}": float(v) for k, v in (ss.meta.get("calibration") or {}).get(
        "normal_frame_score_quantiles", {}).items()}
    return evaluate_scores(ss.scores, gts, snippet_len=ss.snippet_len, frames=ss.frames, threshold=threshold,
                           extra_thresholds=thresholds, on_mismatch=on_mismatch,
                           classes=ss.meta.get("classes"))


def save_result(path: str | Path, result: EvalResult, extra: Optional[dict] = None) -> None:
    atomic.write_json(path, {**(extra or {}), **result.to_dict()})


# --- running a trained head -------------------------------------------------------------------
def score_feature_set(model, feature_set, device="cpu", progress: bool = False) -> ScoreSet:
    """Snippet scores of every video of a vadpipe.data.FeatureSet (full length, crops averaged)."""
    from .checkpoint import score_features

    videos = feature_set.videos
    if progress:
        from tqdm import tqdm
        videos = tqdm(videos, desc="scoring", unit="video", leave=False)
    scores = {v.id: score_features(model, v.raw(), device) for v in videos}
    frames = {v.id: v.frames for v in feature_set.videos}
    meta = {"features": feature_set.origin,
            "classes": {v.id: v.cls for v in feature_set.videos if v.cls is not None}}
    return ScoreSet(scores, frames, feature_set.snippet_len, meta)


def check_recipe(ckpt: dict, feature_set) -> List[str]:
    """Refuse features made with another recipe than the checkpoint's; notes when one side has none."""
    from .errors import RecipeMismatchError
    from .recipe import Recipe

    notes = []
    trained = ckpt.get("recipe")
    if trained and feature_set.recipe is not None:
        Recipe.from_dict(trained).require_match(feature_set.recipe, "the checkpoint", f"features {feature_set.origin}")
    elif trained or feature_set.recipe is not None:
        notes.append("recipe not checked: " + ("the features are a list file without a recipe" if trained
                                               else "the checkpoint was trained on a list file without a recipe"))
    dim = int(ckpt["model_config"]["feature_dim"])
    _, d = feature_set.shape()
    if d != dim:
        raise RecipeMismatchError(f"features {feature_set.origin} have D = {d}, the checkpoint expects {dim}")
    return notes


def evaluate_run(run: str | Path, features: str | Path, gt: str | Path, out: Optional[str | Path] = None,
                 device: str = "auto", gt_format: str = "auto", ucf_convention: str = "1-based-inclusive",
                 threshold: float = 0.5, on_mismatch: str = "error", progress: bool = True) -> Tuple[EvalResult, Path]:
    """``vadpipe eval --run``: score ``features`` with the run's best head, write per-video scores, evaluate.

    Results go to ``out`` (default ``<run>/eval/<features name>/``): ``scores/`` and ``eval.json``.
    """
    from .checkpoint import checkpoint_path, load_checkpoint
    from .data import open_features
    from .device import resolve_device

    dev = resolve_device(device)
    ckpt_file = checkpoint_path(run)
    model, ckpt = load_checkpoint(ckpt_file, dev)
    fs = open_features(features, list_anomalous="none")
    notes = check_recipe(ckpt, fs)
    ss = score_feature_set(model, fs, dev, progress)
    ss.meta["checkpoint"] = str(ckpt_file)
    ss.meta["calibration"] = ckpt.get("calibration")
    if out is None:
        out = ckpt_file.parent / "eval" / (Path(features).stem or "features")
    out = Path(out)
    write_scores(out / "scores", ss)
    order = list(ss.scores)
    gts = load_ground_truth(gt, gt_format, ucf_convention, order=order, snippets=[ss.scores[i].size for i in order],
                            frames=[ss.frames.get(i) for i in order], snippet_len=ss.snippet_len)
    quantiles = (ckpt.get("calibration") or {}).get("normal_frame_score_quantiles", {})
    result = evaluate_scores(ss.scores, gts, snippet_len=ss.snippet_len, frames=ss.frames, classes=ss.meta["classes"],
                             threshold=threshold, extra_thresholds={f"q{k}": float(v) for k, v in quantiles.items()},
                             on_mismatch=on_mismatch)
    result.notes.extend(notes)
    save_result(out / "eval.json", result, {"checkpoint": str(ckpt_file), "features": str(features), "gt": str(gt)})
    return result, out
