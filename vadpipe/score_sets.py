"""Score sets from any method: vadpipe's ``index.json`` folders and plain folders of per-video files.

Public VAD repositories (RTFM, UR-DMU, PEL4VAD, MGFN, ...) write one file of
snippet scores per video. :func:`read_score_folder` reads such a folder into
the same :class:`ScoreSet` that ``evaluate_scores`` takes, keyed by the
ground-truth ids, and says what it assumed:

- ``.npy``: shapes (T,), (T, 1), (1, T), (T, C) and (C, T); the C crops
  (C ≤ 10 on the shorter axis) are averaged. When both axes are ≤ 10 the crop
  axis the folder's unambiguous files use decides; every file gets a note
  naming the layout assumed.
- ``.txt`` / ``.csv``: one score per line; a header line is skipped; with a
  header the column named ``score`` is taken, else the last of two columns
  (``frame,score``).
- Several ``<video>__<k>`` files of one video are its crops, averaged.
- Names match the ground truth as ``evaluate.match_ids`` does, then after
  dropping ``_pred``/``_scores``/``_i3d``-like suffixes and ``_x264`` on both
  sides (only unambiguous pairs). Files with no ground-truth video are listed,
  never evaluated.
- Unit: per-frame scores when every video with a known frame count has
  exactly that many scores (the set is then read with snippet length 1);
  snippet scores when none has; a mix is an error (pass ``per_frame``).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import GroundTruthError
from .evaluate import ScoreSet, load_score_array, read_scores
from .groundtruth import VideoGT, match_ids, video_key
from .readers import check_finite

SCORE_EXTENSIONS = (".npy", ".txt", ".csv")
MAX_CROPS = 10
_CROP = re.compile(r"^(?P<base>.+)__(?P<k>\d{1,2})$")
_SUFFIX = re.compile(r"([._-](pred|preds|prediction|predictions|score|scores|i3d|rgb))+$", re.IGNORECASE)
_X264 = re.compile(r"_x264$", re.IGNORECASE)


@dataclass
class FileNote:
    file: str                   # file name inside the folder
    video: Optional[str]        # ground-truth id it was matched to (None: unmatched)
    layout: str                 # e.g. "(T,)", "(T, C=10): 10 crops averaged", "3 crop files averaged"
    note: str = ""


@dataclass
class LoadedScores:
    """A score set plus what reading it assumed: per-file notes, unmatched files, set-level notes."""
    path: str
    kind: str                   # "index" (vadpipe index.json) | "files" (plain per-video files)
    score_set: ScoreSet
    files: List[FileNote] = field(default_factory=list)
    unmatched: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "snippet_len": self.score_set.snippet_len,
                "n_videos": len(self.score_set.scores), "files": [asdict(f) for f in self.files],
                "unmatched": self.unmatched, "notes": self.notes}

    def summary_lines(self) -> List[str]:
        """A few lines for the terminal: layouts counted, not one line per file."""
        lines = list(self.notes)
        if self.files:
            counts = Counter(f.layout for f in self.files if f.video is not None)
            lines.append("layouts: " + ", ".join(f"{k} x{v}" for k, v in counts.most_common()))
        if self.unmatched:
            lines.append(f"no ground truth for {len(self.unmatched)} file(s), e.g. {self.unmatched[0]}")
        return lines


# --- one file -> 1-D scores ---------------------------------------------------------------------
def crop_layout(shape: Tuple[int, ...], crop_axis_hint: Optional[Tuple[int, int]] = None) -> Tuple[Optional[int], str]:
    """(crop axis or None, layout text) of a score array's shape; ``ValueError`` when it is not scores.

    ``crop_axis_hint`` = (axis, C) that the folder's unambiguous 2-D files use: it decides a
    short video whose both axes are ≤ MAX_CROPS.
    """
    dims = tuple(int(d) for d in shape)
    if len(dims) == 1:
        return None, "(T,)"
    if len(dims) != 2:
        raise ValueError(f"shape {dims}: expected (T,), (T, C) or (C, T)")
    a, b = dims
    if b == 1:
        return 1, "(T, 1)"
    if a == 1:
        return 0, "(1, T)"
    if crop_axis_hint is not None and max(a, b) <= MAX_CROPS and dims[crop_axis_hint[0]] == crop_axis_hint[1]:
        axis = crop_axis_hint[0]
        return axis, _crop_text(axis, dims[axis]) + " (as the folder's other files)"
    if b <= MAX_CROPS and a > b:
        return 1, _crop_text(1, b)
    if a <= MAX_CROPS and b > a:
        return 0, _crop_text(0, a)
    raise ValueError(f"shape {dims}: cannot tell crops from time (crops are the shorter axis, at most {MAX_CROPS})")


def _crop_text(axis: int, c: int) -> str:
    return (f"(T, C={c})" if axis == 1 else f"(C={c}, T)") + f": {c} crops averaged"


def _frame_numbers(column: List[str]) -> bool:
    """Whether a column is frame (or snippet) numbers: whole, rising, from 0 or 1."""
    try:
        values = [float(x) for x in column]
    except ValueError:
        return False
    return (bool(values) and values[0] in (0.0, 1.0) and all(v.is_integer() for v in values)
            and all(b > a for a, b in zip(values, values[1:])))


def read_text_scores(path: Path) -> Tuple[np.ndarray, str]:
    """Scores from a .txt/.csv: one per line, optional header, ``frame,score`` or a ``score`` column."""
    # utf-8-sig: a byte-order mark (Windows tools write one) would make the first score read as a header
    rows = [re.split(r"[,;\s]+", line.strip()) for line in path.read_text(encoding="utf-8-sig").splitlines()
            if line.strip()]
    if not rows:
        raise ValueError("no scores")
    header = None
    try:
        [float(x) for x in rows[0]]
    except ValueError:
        header, rows = [h.lower() for h in rows[0]], rows[1:]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(f"rows have {sorted(widths)} columns")
    width = widths.pop() if rows else 1
    if header is not None and "score" in header and len(header) == width:
        col, how = header.index("score"), "column 'score'"
    elif width == 1:
        col, how = 0, "one score per line"
    elif width == 2:
        if not _frame_numbers([r[0] for r in rows]):
            raise ValueError("2 columns whose first is not rising frame numbers from 0 or 1 (scores written with a "
                             "decimal comma?): give one score per line or a 'score' header")
        col, how = 1, "second of 2 columns (frame, score)"
    else:
        raise ValueError(f"{width} columns and no 'score' header: cannot tell which is the score")
    try:
        values = np.array([float(r[col]) for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"not a number ({exc})") from None
    return values, how + (", header skipped" if header is not None else "")


def load_array(path: Path) -> np.ndarray:
    """The raw array of a score file (2-D kept), float64."""
    if path.suffix.lower() == ".npy":
        return load_score_array(path)
    values = read_text_scores(path)[0]
    check_finite(values, path, what="scores", error=GroundTruthError)
    return values


def to_1d(array: np.ndarray, crop_axis_hint: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, str]:
    """(T,) scores and the layout assumed."""
    axis, layout = crop_layout(array.shape, crop_axis_hint)
    return (array if axis is None else array.mean(axis=axis)), layout


# --- names ----------------------------------------------------------------------------------------
def name_key(name: str) -> str:
    """The loosest key a score file and a gt id are compared by: video_key minus method and _x264 suffixes."""
    return _X264.sub("", _SUFFIX.sub("", video_key(_SUFFIX.sub("", name))))


def match_names(names: Sequence[str], gt_ids: Sequence[str]) -> Dict[str, str]:
    """file stem → gt id: ``match_ids`` first, then unambiguous :func:`name_key` pairs."""
    out = match_ids(names, gt_ids)
    taken = set(out.values())
    gt_by_key: Dict[str, List[str]] = {}
    for g in gt_ids:
        if g not in taken:
            gt_by_key.setdefault(name_key(g), []).append(g)
    claims: Dict[str, List[str]] = {}
    for n in names:
        if n not in out:
            cands = gt_by_key.get(name_key(n), [])
            if len(cands) == 1:
                claims.setdefault(cands[0], []).append(n)
    out.update({ns[0]: g for g, ns in claims.items() if len(ns) == 1})
    return out


def group_crop_files(stems: Sequence[str], gt_ids: Sequence[str]) -> Dict[str, List[str]]:
    """video name → its file stems: ``<name>__<k>`` files are crops of ``<name>`` unless the stem is a gt id.

    ``features.feature_filename`` writes '/' as '__', so ``cam__3`` may be the id ``cam/3``: a stem
    that is a gt id (either way) stays whole.
    """
    ids = set(gt_ids)
    groups: Dict[str, List[str]] = {}
    for stem in stems:
        m = _CROP.match(stem)
        whole = m is None or stem in ids or stem.replace("__", "/") in ids
        groups.setdefault(stem if whole else m.group("base"), []).append(stem)
    return groups


# --- a folder -----------------------------------------------------------------------------------
def is_index(path: str | Path) -> bool:
    """A vadpipe score folder (index.json) or score .json."""
    path = Path(path)
    return (path / "index.json").is_file() if path.is_dir() else path.suffix.lower() == ".json"


def choose_unit(lengths: Dict[str, int], gts: Dict[str, VideoGT], per_frame: Optional[bool],
                origin: str) -> Tuple[bool, str]:
    """(per-frame?, note): scores are per frame when their count is each video's frame count."""
    known = {v: (n, gts[v].frame_count) for v, n in lengths.items() if gts[v].frame_count is not None}
    if per_frame is not None:
        return per_frame, "per-frame scores (as asked)" if per_frame else "snippet scores (as asked)"
    if not known:
        return False, "read as snippet scores: the ground truth gives no frame counts to test for per-frame scores"
    equal = [v for v, (n, f) in known.items() if n == f]
    if len(equal) == len(known):
        return True, (f"read as per-frame scores: each of the {len(known)} videos with a known frame count "
                      "has exactly that many scores")
    if equal:
        other = next(v for v in known if v not in equal)
        raise GroundTruthError(
            f"{origin}: {len(equal)} of {len(known)} videos have one score per frame (e.g. {equal[0]}), the "
            f"others not (e.g. {other}: {known[other][0]} scores, {known[other][1]} frames); say per-frame or not")
    return False, "read as snippet scores (no video has one score per frame)"


def _majority_crop_axis(arrays: Dict[str, np.ndarray]) -> Optional[Tuple[int, int]]:
    """(axis, C) most of the folder's unambiguous 2-D arrays use."""
    votes = Counter()
    for a in arrays.values():
        if a.ndim == 2 and min(a.shape) > 1 and max(a.shape) > MAX_CROPS:
            try:
                axis, _ = crop_layout(a.shape)
            except ValueError:
                continue
            votes[(axis, a.shape[axis])] += 1
    return votes.most_common(1)[0][0] if votes else None


def read_score_folder(folder: str | Path, gts: Dict[str, VideoGT], *, per_frame: Optional[bool] = None,
                      snippet_len: int = 16) -> LoadedScores:
    """A folder of per-video score files as a ScoreSet keyed by gt ids (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GroundTruthError(f"{folder}: not a folder of score files")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SCORE_EXTENSIONS)
    if not paths:
        raise GroundTruthError(f"{folder}: no index.json and no {'/'.join(SCORE_EXTENSIONS)} score files")
    by_stem = {p.stem: p for p in paths}
    if len(by_stem) < len(paths):
        dup = next(s for s, c in Counter(p.stem for p in paths).items() if c > 1)
        raise GroundTruthError(f"{folder}: two score files named {dup!r} with different extensions")
    raw: Dict[str, np.ndarray] = {}
    for stem, p in by_stem.items():
        try:
            raw[stem] = load_array(p)
        except (OSError, ValueError) as exc:
            raise GroundTruthError(f"{p}: cannot read scores ({exc})") from None
    hint = _majority_crop_axis(raw)
    groups = group_crop_files(list(by_stem), list(gts))
    mapping = match_names(list(groups), list(gts))
    files: List[FileNote] = []
    unmatched = sorted(by_stem[s].name for g, stems in groups.items() if g not in mapping for s in stems)
    files += [FileNote(name, None, "", "no ground-truth video") for name in unmatched]
    scores: Dict[str, np.ndarray] = {}
    for group, stems in groups.items():
        gid = mapping.get(group)
        if gid is None:
            continue
        parts = []
        for stem in stems:
            try:
                vals, layout = to_1d(raw[stem], hint)
            except ValueError as exc:
                raise GroundTruthError(f"{by_stem[stem]}: {exc}") from None
            parts.append(vals)
            files.append(FileNote(by_stem[stem].name, gid, layout))
        if len({p.size for p in parts}) > 1:
            raise GroundTruthError(f"{folder}: crop files of {group} have different lengths "
                                   f"{sorted({p.size for p in parts})}")
        if len(parts) > 1:
            for f in files[-len(parts):]:
                f.note = f"{len(parts)} crop files of {gid} averaged"
        scores[gid] = np.mean(parts, axis=0).astype(np.float32)
    if not scores:
        raise GroundTruthError(f"{folder}: none of the {len(paths)} score files matches a ground-truth video "
                               f"(e.g. {paths[0].name})")
    per, unit_note = choose_unit({v: s.size for v, s in scores.items()}, gts, per_frame, str(folder))
    order = [g for g in gts if g in scores]     # gt order: stable, and a concatenated gt's order
    ss = ScoreSet({g: scores[g] for g in order}, {g: None for g in order}, 1 if per else snippet_len,
                  {"source": str(folder), "per_frame": per})
    return LoadedScores(str(folder), "files", ss, files, unmatched, [unit_note])


def load_score_source(path: str | Path, gts: Optional[Dict[str, VideoGT]] = None, *,
                      per_frame: Optional[bool] = None, snippet_len: int = 16) -> LoadedScores:
    """An index.json folder / score .json (as ``read_scores``) or a plain folder (needs ``gts``)."""
    path = Path(path)
    if is_index(path):
        return LoadedScores(str(path), "index", read_scores(path))
    if path.is_file():
        raise GroundTruthError(f"{path}: a score source is a folder (index.json or per-video files) or a "
                               "score .json; a single .npy is a concatenated frame-score array")
    if gts is None:
        raise GroundTruthError(f"{path}: a plain score folder is matched to the ground truth; load it first")
    return read_score_folder(path, gts, per_frame=per_frame, snippet_len=snippet_len)
