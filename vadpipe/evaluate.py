"""Frame-level evaluation: snippet→frame alignment, metrics, per-video score files, running a head.

Ground truth (formats, readers, id matching) lives in ``vadpipe.groundtruth``.

Conventions (everything inside vadpipe): frames are 0-based and an interval is
``[start, end)`` with ``end`` exclusive.

Alignment (:func:`align_video`): snippet i covers frames [i·s, i·s + L) (L the
snippet length, s the stride, both from the recipe: 16 and 16 unless it says
otherwise), and frames take their scores through ``intervals.snippets_to_frames``
(with s = L and the ``hold`` mode, frame f takes snippet ⌊f/L⌋'s score; ``linear``, a
head's ``model.frame_scores`` choice, interpolates between snippet centres; a score
set records its mode in index.json as ``frame_scores``). The T snippets reach
R = (T−1)·s + L frames. With N frames to score (gt mask length, gt frame count,
manifest frame count, else R) the known cases are handled and reported per
video: ``exact`` (R = N), ``tail`` (the last snippet is partial:
(T−1)·s < N < R — its scores cover the remaining frames), ``extended`` (the
extractor dropped a last partial snippet: R < N < R + s — those frames take the
last score). Anything else is a ``mismatch``: an error by default, or the video
is skipped and reported (``on_mismatch="skip"``). Intervals running past N are
clipped and reported. Features of a resampling recipe whose manifest records the
video's own frames (``source_frames``, ``source_fps``) are aligned on the
resampled frames, then put on the video's own (as ``vadpipe score`` does), unless
the ground truth counts the resampled frames.

Metrics (:func:`compute_metrics`, sklearn): frame ROC AUC and AP over all
frames concatenated; AUC over anomalous videos only (videos with any
anomalous frame); per-class AUC (frames of that class's videos plus all normal
videos); false-alarm rate on normal videos (share of their frames with score ≥
threshold), at 0.5 and at calibrated thresholds when given.

Score files (:func:`write_scores`): a folder with ``index.json``
(``{"format": "vadpipe-scores/1", "snippet_len": 16, "order": [ids],
"videos": {id: {"file": "<name>.npy", "T": T, "frames": n|null}}}``; a resampled video adds
``"fps"`` and its own ``"source_frames"``, ``"source_fps"``) and one
float32 ``(T,)`` snippet-score ``.npy`` per video. ``--scores`` also takes one
``.json`` file of the same schema with ``"scores": [...]`` inline instead of
``"file"``, or a concatenated frame-score ``.npy`` (compared with a
concatenated gt of exactly the same length). Plain folders of other methods'
per-video files are read by ``score_sets``; several sets are compared in
``compare``, which evaluates each one here (:func:`evaluate_score_set`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import atomic
from .errors import ConfigError, GroundTruthError
from .groundtruth import NORMAL_CLASSES, VideoGT, detect_format, load_ground_truth, match_ids, read_labels_npy
from .intervals import FRAME_MODES, NativeFrames, reach_rule, snippet_reach, snippets_to_frames
from .progress import progress_bar
from .readers import check_finite, read_array, read_text
from .recipe import check_compatible
from .scene_check import SceneCheck, reads_beyond
from .threshold import WHOLE_CLIP_SHARE, is_whole_flagged, whole_flagged

SCORES_FORMAT = "vadpipe-scores/1"


# --- alignment ------------------------------------------------------------------------------
@dataclass
class Alignment:
    id: str
    snippets: int
    frames: int
    action: str          # exact | tail | extended | mismatch | no-gt
    detail: str


def align_video(scores: np.ndarray, gt: VideoGT, video_frames: Optional[int] = None, snippet_len: int = 16,
                stride: Optional[int] = None, frame_mode: str = "hold", native: Optional[NativeFrames] = None
                ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Alignment]:
    """(frame scores, frame labels, report); scores/labels are None for a mismatch. ``native``: features of a
    resampling recipe (``video_frames`` then counts the resampled frames), scored on the video's own frames
    unless the ground truth counts other frames."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if native is not None and video_frames and gt.frame_count in (None, native.frames):
        return _align_native(scores, gt, video_frames, native, snippet_len, stride, frame_mode)
    t, L = scores.size, snippet_len
    s = stride or L
    reach = snippet_reach(t, L, s)
    # below this many frames extraction makes fewer snippets: the one before the padded last one is whole
    shortest = (t - 2) * s + L if t >= 2 else 0
    notes = []
    if gt.mask is not None:
        n, source = len(gt.mask), f"gt mask ({gt.note})" if gt.note else "gt mask"
    elif gt.frames is not None:
        n, source = gt.frames, "gt frame count"
    elif video_frames is not None:
        n, source = video_frames, "manifest frame count"
    else:
        n, source = reach, reach_rule(L, s) + " (no frame count known)"
    if video_frames is not None and n != video_frames and gt.mask is None:
        notes.append(f"manifest says {video_frames} frames")
    if video_frames is not None and gt.mask is not None and n != video_frames:
        notes.append(f"manifest says {video_frames} frames, gt covers {n}")
    if native is not None:
        notes.append(f"scored on the resampled frames: the video has {native.frames} at {native.fps:g} fps, "
                     f"the gt {n}")
    if t == 0 or n == 0:
        return None, None, Alignment(gt.id, t, n, "mismatch", f"{t} snippets, {n} frames ({source})")
    if reach == n:
        action, detail = "exact", (f"{t} snippets x {L} = {n} frames" if s == L
                                   else f"{t} snippets of {L} frames every {s} reach {n} frames")
    elif shortest < n < reach:
        action, detail = "tail", f"last snippet covers {n - (t - 1) * s} of {L} frames"
    elif reach < n < reach + s:
        action, detail = "extended", f"{n - reach} frames past the last snippet take its score (dropped partial snippet)"
    else:
        detail = f"{t} snippets cover {shortest + 1}..{reach} frames, but there are {n} ({source})"
        return None, None, Alignment(gt.id, t, n, "mismatch", "; ".join([detail] + notes))
    labels, clip_notes = gt.labels(n)
    frame_scores = snippets_to_frames(scores, n, L, s, frame_mode)
    detail = "; ".join([f"{detail} [{source}]"] + notes + clip_notes)
    return frame_scores, labels, Alignment(gt.id, t, n, action, detail)


def _align_native(scores: np.ndarray, gt: VideoGT, video_frames: int, native: NativeFrames, snippet_len: int,
                  stride: Optional[int], frame_mode: str
                  ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Alignment]:
    """A resampled clip: its snippets aligned to the manifest's resampled frames, their frame scores put back
    on the video's own frames (where the ground truth counts), as ``vadpipe score`` puts them."""
    resampled, _, report = align_video(scores, VideoGT(gt.id, None), video_frames, snippet_len, stride, frame_mode)
    if resampled is None:
        return None, None, report
    labels, clip_notes = gt.labels(native.frames)
    detail = "; ".join([f"{report.detail}, put on the video's own {native.frames} frames at {native.fps:g} fps"]
                       + clip_notes)
    return native.scores(resampled), labels, Alignment(gt.id, report.snippets, native.frames, report.action, detail)


# --- metrics ------------------------------------------------------------------------------
def _auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else None


def _ap(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    from sklearn.metrics import average_precision_score
    return float(average_precision_score(y, s)) if 0 < y.sum() < y.size else None


def compute_metrics(frame_scores: Dict[str, np.ndarray], frame_labels: Dict[str, np.ndarray],
                    classes: Optional[Dict[str, Optional[str]]] = None, threshold: float = 0.5,
                    extra_thresholds: Optional[Dict[str, float]] = None,
                    scene_beyond: Optional[Dict[str, bool]] = None) -> dict:
    """Frame AUC/AP over all videos, anomalous-only AUC, per-class AUC, false-alarm rates; with
    ``scene_beyond`` (each video's scene reading, vadpipe/scene_check.py) how many read as a new scene."""
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
           "auc": _auc(y, s), "ap": _ap(y, s), "threshold": threshold,
           # scores that tie at exactly 0 or 1 cannot be ranked against each other (a saturated head)
           "tied": float(np.mean((s == 0.0) | (s == 1.0)))}
    out["auc_anomalous_videos"] = _auc(*subset(anomalous)) if anomalous else None
    per_class = {}
    for cls in sorted({classes.get(i) for i in anomalous} - {None}, key=str):
        vids = [i for i in anomalous if classes.get(i) == cls] + normal
        per_class[str(cls)] = _auc(*subset(vids))
    out["auc_per_class"] = per_class
    if normal:
        s_norm = subset(normal)[1]
        out["false_alarm_rate"] = float((s_norm >= threshold).mean())
        for name, thr in (extra_thresholds or {}).items():
            out[f"false_alarm_rate@{name}"] = float((s_norm >= thr).mean())
    else:
        out["false_alarm_rate"] = None
    # videos the threshold flags nearly throughout, as `vadpipe score` notes a clip (vadpipe.threshold)
    out["whole_flagged"] = {kind: whole_flagged((frame_scores[i] for i in vids), threshold)
                            for kind, vids in (("normal", normal), ("anomalous", anomalous))}
    if scene_beyond is not None:       # of all videos, and of those the threshold flags nearly throughout
        out["scene_beyond"] = {kind: {"videos": sum(scene_beyond.get(i, False) for i in vids),
                                      "whole_flagged": sum(scene_beyond.get(i, False)
                                                           and is_whole_flagged(frame_scores[i], threshold)
                                                           for i in vids)}
                               for kind, vids in (("normal", normal), ("anomalous", anomalous))}
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
                 f"frame AUC {pct(m['auc'])}   AP {pct(m['ap'])}   AUC anomalous-only {pct(m['auc_anomalous_videos'])}"
                 + ("" if m.get("tied") is None else f"   tied at 0/1 {pct(m['tied'])}%")]
        if m.get("false_alarm_rate") is not None:
            far = [f"false alarms on normal videos: {pct(m['false_alarm_rate'])}% @ {m['threshold']}"]
            far += [f"{pct(v)}% @ {k.split('@', 1)[1]}" for k, v in m.items() if k.startswith("false_alarm_rate@")]
            lines.append(", ".join(far))
        whole = m.get("whole_flagged")
        if whole and any(whole.values()):
            lines.append(f"flagged over {WHOLE_CLIP_SHARE:.0%} or more of their frames @ {m['threshold']}: "
                         f"{whole['normal']} of {m['n_normal_videos']} normal videos, {whole['anomalous']} of "
                         f"{m['n_anomalous_videos']} anomalous (`vadpipe score` notes such a clip: a scene the "
                         "threshold was not set on, or an event lasting the whole clip)")
        beyond = m.get("scene_beyond")
        if beyond and any(b["videos"] for b in beyond.values()):
            lines.append(f"scene check: {beyond['normal']['videos']} normal and {beyond['anomalous']['videos']} "
                         "anomalous videos read as a scene new to the head (their quietest tenth beyond the "
                         f"training bound); of the flagged ones, {beyond['normal']['whole_flagged']} normal and "
                         f"{beyond['anomalous']['whole_flagged']} anomalous")
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
                    stride: Optional[int] = None,
                    frames: Optional[Dict[str, Optional[int]]] = None, classes: Optional[Dict[str, Optional[str]]] = None,
                    threshold: float = 0.5, extra_thresholds: Optional[Dict[str, float]] = None,
                    on_mismatch: str = "error", frame_mode: str = "hold",
                    scene_beyond: Optional[Dict[str, bool]] = None,
                    native: Optional[Dict[str, NativeFrames]] = None) -> EvalResult:
    """Align every scored video that has ground truth and compute the metrics (``scene_beyond``: each
    scored video's scene reading, when the head has one; ``native``: the own frames of videos a recipe
    resampled, see ``align_video``)."""
    if on_mismatch not in ("error", "skip"):
        raise ConfigError(f"on_mismatch {on_mismatch!r}; choose error or skip")
    frames, classes, native = frames or {}, dict(classes or {}), native or {}
    origin = getattr(gts, "origin", None)          # the file the ground truth came from (groundtruth.GroundTruth)
    where = f"{origin}: " if origin else ""
    mapping = match_ids(list(scores), list(gts))
    if not gts:
        raise GroundTruthError(f"{where}the ground truth holds no videos")
    if not mapping:
        raise GroundTruthError(f"{where}none of the {len(scores)} scored videos (e.g. {next(iter(scores), '-')}) "
                               f"matches a ground-truth video (e.g. {next(iter(gts), '-')})")
    fs, fl, reports = {}, {}, []
    for sid, vals in scores.items():
        gid = mapping.get(sid)
        if gid is None:
            continue
        gt = gts[gid]
        f_scores, f_labels, report = align_video(vals, gt, frames.get(sid), snippet_len, stride, frame_mode,
                                                 native.get(sid))
        report.id = sid
        reports.append(report)
        if f_scores is None:
            if on_mismatch == "error":
                raise GroundTruthError(f"{where}video {sid}: {report.detail} (use --on-mismatch skip to leave it "
                                       "out)")
            continue
        fs[sid], fl[sid] = f_scores, f_labels
        if gt.cls is not None:
            classes[sid] = gt.cls
    if not fs:                                     # every matched video mismatched, and was skipped
        first = reports[0]
        raise GroundTruthError(f"{where}all {len(reports)} matched video(s) mismatched and were skipped (first: "
                               f"{first.id}: {first.detail})")
    classes = {k: (None if v is None or str(v).lower() in NORMAL_CLASSES else v) for k, v in classes.items()}
    metrics = compute_metrics(fs, fl, classes, threshold, extra_thresholds, scene_beyond)
    matched_gt = set(mapping.values())
    return EvalResult(metrics, reports, sorted(set(scores) - set(mapping)), sorted(set(gts) - matched_gt))


def evaluate_feature_scores(scores: Dict[str, np.ndarray], feature_set, gts: Dict[str, VideoGT],
                            **options) -> EvalResult:
    """``evaluate_scores`` of snippet scores of a feature set's videos, with what the set knows: its snippet
    length, stride, frame counts and classes (``options``: threshold, on_mismatch, frame_mode, ...)."""
    videos = feature_set.videos
    return evaluate_scores(scores, gts, snippet_len=feature_set.snippet_len, stride=feature_set.stride,
                           frames={v.id: v.frames for v in videos},
                           classes={v.id: v.cls for v in videos if v.cls is not None},
                           native={v.id: v.native for v in videos if v.native is not None}, **options)


def calibration_thresholds(calibration: Optional[dict]) -> Dict[str, float]:
    """False-alarm thresholds from a checkpoint's calibration (normal-score quantiles), named ``q<k>``."""
    quantiles = (calibration or {}).get("normal_frame_score_quantiles", {})
    return {f"q{k}": float(v) for k, v in quantiles.items()}


# --- score files ----------------------------------------------------------------------------
@dataclass
class ScoreSet:
    scores: Dict[str, np.ndarray]             # id → (T,) snippet scores, in order
    frames: Dict[str, Optional[int]]
    snippet_len: int = 16
    meta: dict = field(default_factory=dict)
    stride: Optional[int] = None              # None: snippet_len (non-overlapping snippets)
    frame_mode: str = "hold"                  # how the scores become frame scores (intervals.FRAME_MODES)
    native: Dict[str, NativeFrames] = field(default_factory=dict)   # videos a recipe resampled: their own frames


def load_score_array(path: str | Path) -> np.ndarray:
    """A score .npy as float64; anything else (not .npy, truncated, pickled, not numbers, NaN or inf) is one
    error line."""
    return read_array(path, what="scores", error=GroundTruthError, finite=True).astype(np.float64)


def write_scores(folder: str | Path, score_set: ScoreSet) -> Path:
    """Per-video snippet scores + index.json (see the module docstring)."""
    from .features import feature_filename

    folder = Path(folder)
    videos = {}
    for vid, vals in score_set.scores.items():
        name = feature_filename(vid)
        atomic.save_npy(folder / name, np.asarray(vals, dtype=np.float32))
        videos[vid] = {"file": name, "T": int(np.asarray(vals).size), "frames": score_set.frames.get(vid)}
        native = score_set.native.get(vid)
        if native is not None:      # frames above are the resampled ones
            videos[vid].update(source_frames=native.frames, source_fps=native.fps, fps=native.resampled_fps)
    index = {**score_set.meta, "format": SCORES_FORMAT, "snippet_len": score_set.snippet_len,
             "stride": score_set.stride or score_set.snippet_len, "frame_scores": score_set.frame_mode,
             "order": list(score_set.scores), "videos": videos}
    atomic.write_json(folder / "index.json", index)
    return folder / "index.json"


def read_scores(path: str | Path) -> ScoreSet:
    """A score folder (index.json) or a single .json of the same schema with inline ``scores``."""
    path = Path(path)
    index_path = path / "index.json" if path.is_dir() else path
    try:
        index = json.loads(read_text(index_path, what="scores", error=GroundTruthError))
    except ValueError as exc:
        raise GroundTruthError(f"{index_path}: cannot read scores ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != SCORES_FORMAT:
        raise GroundTruthError(f"{index_path}: not a vadpipe score file (format {SCORES_FORMAT})")
    videos = index.get("videos")
    order = index.get("order") or (list(videos) if isinstance(videos, dict) else [])
    if not isinstance(videos, dict) or not isinstance(order, list):
        raise GroundTruthError(f"{index_path}: expected \"videos\": {{id: {{file or scores, frames}}}} and an "
                               "\"order\" list")
    scores, frames, native = {}, {}, {}
    for vid in order:
        rec = videos.get(vid) if isinstance(vid, str) else None
        if not isinstance(rec, dict):
            raise GroundTruthError(f"{index_path}: video {vid!r} is in \"order\" but has no record in \"videos\"")
        if "scores" in rec:
            try:
                scores[vid] = np.asarray(rec["scores"], dtype=np.float32)
            except (TypeError, ValueError):
                raise GroundTruthError(f"{index_path}: video {vid!r}: its scores are not a list of numbers") from None
            check_finite(scores[vid], index_path, what=f"video {vid!r}'s scores", error=GroundTruthError)
        elif isinstance(rec.get("file"), str):
            scores[vid] = load_score_array(index_path.parent / rec["file"]).astype(np.float32)
        else:
            raise GroundTruthError(f"{index_path}: video {vid!r} has neither \"file\" nor \"scores\"")
        frames[vid] = _field(index_path, rec, "frames", int, f"video {vid!r}: ")
        if rec.get("source_frames") and rec.get("source_fps") and rec.get("fps"):
            native[vid] = NativeFrames(_field(index_path, rec, "source_frames", int, f"video {vid!r}: "),
                                       _field(index_path, rec, "source_fps", float, f"video {vid!r}: "),
                                       _field(index_path, rec, "fps", float, f"video {vid!r}: "))
    meta = {k: v for k, v in index.items()
            if k not in ("videos", "order", "format", "snippet_len", "stride", "frame_scores")}
    stride = _field(index_path, index, "stride", int)
    mode = index.get("frame_scores", "hold")        # score sets written before the switch held
    if mode not in FRAME_MODES:
        raise GroundTruthError(f"{index_path}: frame_scores {mode!r} (expected one of {', '.join(FRAME_MODES)})")
    snippet_len = _field(index_path, index, "snippet_len", int)
    return ScoreSet(scores, frames, 16 if snippet_len is None else snippet_len, meta, stride, mode, native)


def _field(path: Path, record: dict, key: str, kind: type, where: str = ""):
    """``record[key]`` as a positive ``kind`` (int: a whole number, not true/false; float: finite), None when
    absent or null; anything else is one line naming the file and the field."""
    value = record.get(key)
    if value is None:
        return None
    whole = kind is int and isinstance(value, (int, float)) and float(value).is_integer()
    number = kind is float and isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(value, bool) or not (whole or number) or value <= 0:
        raise GroundTruthError(f"{path}: {where}{key} = {value!r} is not a positive "
                               f"{'whole number' if kind is int else 'number'}")
    return kind(value)


def load_gt_for(score_set: ScoreSet, gt: str | Path, gt_format: str = "auto",
                ucf_convention: str = "1-based-inclusive") -> Dict[str, VideoGT]:
    """The ground truth for a score set (a concatenated gt is split in the set's order and snippet counts, or
    by the videos' own frame counts when a recipe resampled them: a gt counts those)."""
    order, native = list(score_set.scores), score_set.native
    return load_ground_truth(gt, gt_format, ucf_convention, order=order,
                             snippets=[score_set.scores[i].size for i in order],
                             frames=[native[i].frames if i in native else score_set.frames.get(i) for i in order],
                             snippet_len=score_set.snippet_len, stride=score_set.stride, resampled=bool(native))


def evaluate_score_set(score_set: ScoreSet, gts: Dict[str, VideoGT], threshold: float = 0.5,
                       on_mismatch: str = "error") -> EvalResult:
    """``evaluate_scores`` with what the set carries: stride, frame counts, classes, calibrated thresholds."""
    ss = score_set
    return evaluate_scores(ss.scores, gts, snippet_len=ss.snippet_len, stride=ss.stride, frames=ss.frames,
                           classes=ss.meta.get("classes"), threshold=threshold,
                           extra_thresholds=calibration_thresholds(ss.meta.get("calibration")),
                           on_mismatch=on_mismatch, frame_mode=ss.frame_mode, scene_beyond=ss.meta.get("scene_beyond"),
                           native=ss.native)


def evaluate_concatenated(scores_npy: str | Path, gt_npy: str | Path, threshold: float = 0.5) -> EvalResult:
    """RTFM-style: one concatenated frame-score array against one concatenated gt of the same length."""
    s = load_score_array(scores_npy).reshape(-1)
    y = read_labels_npy(gt_npy, "ground truth")
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
    return evaluate_score_set(ss, load_gt_for(ss, gt, gt_format, ucf_convention), threshold, on_mismatch)


def save_result(path: str | Path, result: EvalResult, extra: Optional[dict] = None) -> None:
    atomic.write_json(path, {**(extra or {}), **result.to_dict()})


# --- running a trained head -------------------------------------------------------------------
def score_feature_set(model, feature_set, device="cpu", progress: bool = False,
                      view: Optional[slice] = None, scene: Optional[SceneCheck] = None) -> ScoreSet:
    """Snippet scores of every video of a vadpipe.data.FeatureSet (full length, crops combined by the
    head's scoring rule, which also names the set's frame mode); ``view``: those stored vectors alone
    (``encode.stored_view``);
    ``scene``: the head's scene check, each video's reading kept in ``meta["scene_beyond"]`` (read from the
    same features, so each video is read from disk once). A video whose crops or D differ from the first
    one's is a FeatureStoreError naming its .npy."""
    from .checkpoint import score_features, scoring_rule

    videos = feature_set.videos
    if progress:
        videos = progress_bar(videos, desc="scoring", unit="video", leave=False)
    views = slice(None) if view is None else view
    scores, beyond = {}, {}
    shape = feature_set.shape()          # every video as the first (whose D the caller checked against the head's)
    for v in videos:
        x = v.shaped(shape)[:, views]
        scores[v.id] = score_features(model, x, device)
        if scene is not None and (reading := reads_beyond(scene, x)) is not None:
            beyond[v.id] = reading
    frames = {v.id: v.frames for v in feature_set.videos}
    meta = {"features": feature_set.origin,
            "classes": {v.id: v.cls for v in feature_set.videos if v.cls is not None}}
    if scene is not None:              # kept with the scores: `vadpipe eval --scores` reports it again
        meta["scene_beyond"] = beyond
    native = {v.id: v.native for v in feature_set.videos if v.native is not None}
    return ScoreSet(scores, frames, feature_set.snippet_len, meta, feature_set.stride,
                    scoring_rule(model).frame_scores, native)


def check_recipe(ckpt, feature_set, crops: Optional[int] = None) -> Tuple[List[str], Optional[slice]]:
    """Refuse features made with another recipe than the checkpoint's (a Checkpoint), or with ``crops``
    1 than its single view (``vadpipe score --crops 1``'s recipe). As ``vadpipe score`` does, features
    holding that recipe's view among theirs (ten crops, a mirror) are scored on that view alone.
    Returns (notes when one side has no recipe, the stored vectors to score or None for all)."""
    from .encode import scoring_recipe, stored_view

    what = f"features {feature_set.origin}"
    expected, found, view = ckpt.recipe, feature_set.recipe, None
    if crops is not None and (expected is None or (found is None and feature_set.shape()[0] > 1)):
        raise ConfigError(f"--crops {crops}: {'the checkpoint' if expected is None else what} carries no "
                          "feature recipe to tell its views apart")
    if expected is not None:
        expected = scoring_recipe(expected, crops)
        view = stored_view(found, expected) if found is not None else None
        if view is not None:
            found = found.replace(crop=expected.crop)
    notes = check_compatible(expected, found, "the checkpoint", what)
    ckpt.require_feature_dim(feature_set.shape()[1], what)
    return notes, view


def evaluate_run(run: str | Path, features: str | Path, gt: str | Path, out: Optional[str | Path] = None,
                 device: str = "auto", gt_format: str = "auto", ucf_convention: str = "1-based-inclusive",
                 threshold: float = 0.5, on_mismatch: str = "error", progress: bool = True,
                 crops: Optional[int] = None) -> Tuple[EvalResult, Path]:
    """``vadpipe eval --run``: score ``features`` with the run's best head, write per-video scores, evaluate.
    ``crops`` 1: a ten-crop or mirror head scored on its single view, as ``vadpipe score --crops 1`` scores.

    Results go to ``out`` (default ``<run>/eval/<features name>/``): ``scores/`` and ``eval.json``.
    """
    from .checkpoint import checkpoint_path, load_checkpoint
    from .data import open_features
    from .device import resolve_device

    dev = resolve_device(device)
    ckpt_file = checkpoint_path(run)
    model, ckpt = load_checkpoint(ckpt_file, dev)
    fs = open_features(features, list_anomalous="none")
    notes, view = check_recipe(ckpt, fs, crops)
    fmt = detect_format(gt) if gt_format == "auto" else gt_format
    # read before scoring (a concatenated gt needs the scores' lengths): a bad one costs no pass over the set
    gts = None if fmt == "concat" else load_ground_truth(gt, fmt, ucf_convention)
    ss = score_feature_set(model, fs, dev, progress, view, scene=SceneCheck.of(model, ckpt.scene))
    ss.meta["checkpoint"] = str(ckpt_file)
    ss.meta["calibration"] = ckpt.calibration
    if out is None:
        out = ckpt_file.parent / "eval" / (Path(features).stem or "features")
    out = Path(out)
    write_scores(out / "scores", ss)
    if gts is None:
        gts = load_gt_for(ss, gt, fmt, ucf_convention)
    result = evaluate_score_set(ss, gts, threshold, on_mismatch)
    result.notes.extend(notes)
    save_result(out / "eval.json", result, {"checkpoint": str(ckpt_file), "features": str(features), "gt": str(gt)})
    return result, out
