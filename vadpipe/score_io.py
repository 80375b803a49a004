"""Inputs and outputs of ``vadpipe score``: which clips, under which names, written how.

Pure bookkeeping, no model: expanding the command-line paths into clips
(videos or pre-extracted features), giving each clip an output name that no
other clip shares, the per-frame CSV, and the terminal table.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import atomic
from .intervals import Interval, format_clock, format_interval
from .readers import os_reason
from .recipe import RECIPE_FILE
from .video import VIDEO_EXTENSIONS, find_videos

if TYPE_CHECKING:
    from .features import ManifestRecord

FEATURE_SUFFIX = ".npy"


@dataclass
class ClipInput:
    path: Path                        # the video, or the .npy features
    kind: str                         # "video" | "features"
    name: str = ""                    # output stem, unique within one run
    feature_folder: Optional[Path] = None   # for features: the folder holding recipe.json, when there is one
    record: Optional["ManifestRecord"] = None   # for features: the folder manifest's video, when it has one


def collect_inputs(paths: Iterable[str | Path]) -> Tuple[List[ClipInput], List[Tuple[str, str]]]:
    """Expand the command line into clips, and (path, reason) for paths that give none.

    A folder holding ``recipe.json`` is a feature folder: each video of its manifest
    (:func:`feature_folder_clips`) is a clip. Any other folder is searched recursively for videos.
    """
    clips: List[ClipInput] = []
    errors: List[Tuple[str, str]] = []
    seen = set()

    def add(clip: ClipInput) -> None:
        key = clip.path.resolve()
        if key not in seen:
            seen.add(key)
            clips.append(clip)

    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                if (path / RECIPE_FILE).is_file():
                    found, stray = feature_folder_clips(path)
                    for clip in found:
                        add(clip)
                    errors += stray
                else:
                    found, stray = find_videos(path), []
                    for video in found:
                        add(ClipInput(video, "video"))
                if not found and not stray:
                    errors.append((str(raw), f"no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) "
                                             f"or features in this folder"))
            elif path.is_file() and path.suffix.lower() == FEATURE_SUFFIX:
                if (path.parent / RECIPE_FILE).is_file():
                    found, stray = feature_folder_clips(path.parent, only=path)
                    for clip in found:
                        add(clip)
                    errors += stray
                else:
                    add(ClipInput(path, "features"))
            elif path.exists():
                add(ClipInput(path, "video"))
            else:
                errors.append((str(raw), "no such file or folder"))
        except OSError as exc:          # a name too long, a link to itself: this path only, the others go on
            errors.append((str(raw), os_reason(exc)))
    for clip, name in zip(clips, output_names([c.path for c in clips])):
        clip.name = name
    return clips, errors


def feature_folder_clips(folder: Path, only: Optional[Path] = None
                         ) -> Tuple[List[ClipInput], List[Tuple[str, str]]]:
    """A feature folder's clips (or the one of its files ``only``): with a manifest, its usable videos of the
    folder's recipe, one clip each whatever their layout, and (path, reason) for a ``.npy`` none of them holds
    (left by an earlier recipe or a re-extraction that failed: never scored under a recipe it was not made
    with); without a manifest, every ``.npy`` under recipe.json."""
    from .features import FeatureStore

    store = FeatureStore(folder)
    npys = [only] if only is not None else \
        sorted(p for p in folder.glob("*" + FEATURE_SUFFIX) if not p.name.startswith("."))
    if not store.manifest_path.exists() and not store.journals():
        return [ClipInput(p, "features", feature_folder=folder) for p in npys], []
    recipe = store.recipe()
    records = store.records(ok_only=True, recipe_id=recipe.recipe_id if recipe else None)
    wanted = None if only is None else only.resolve()
    clips = [ClipInput(store.resolve(r.file), "features", feature_folder=folder, record=r) for r in records
             if wanted is None or store.resolve(r.file).resolve() == wanted]
    held = {store.resolve(f).resolve() for r in records for f in (r.files or [r.file])}
    why = (f"no video of {store.manifest_path} under the folder's recipe {recipe.recipe_id if recipe else '?'} "
           f"holds it (left by an earlier extraction?): not scored")
    if only is not None:
        return clips, [] if clips else [(str(only), why)]
    return clips, [(str(p), why) for p in npys if p.resolve() not in held]


_UNSAFE = re.compile(r"[^\w.\-]+")


def _candidates(path: Path) -> List[str]:
    """Ever longer names: stem, parent__stem, grandparent__parent__stem, ..., then the same
    with the extension (for ``clip.mp4`` next to ``clip.avi``)."""
    folders = [p for p in path.parent.parts if p not in ("/", "\\")]
    out = []
    for last in (path.stem, path.name):
        out += ["__".join(folders[len(folders) - k:] + [last]) for k in range(len(folders) + 1)]
    return [_UNSAFE.sub("_", c) for c in out]


def output_names(paths: Sequence[Path]) -> List[str]:
    """Short, unique, filesystem-safe output stems: the file stem, lengthened (parent
    folders, then the extension) only where two clips would share it."""
    options = [_candidates(Path(p).resolve()) for p in paths]
    levels = [0] * len(paths)
    while True:
        names = [opts[min(lv, len(opts) - 1)] for opts, lv in zip(options, levels)]
        counts = Counter(names)
        clashing = [i for i, n in enumerate(names) if counts[n] > 1 and levels[i] < len(options[i]) - 1]
        if not clashing:
            break
        for i in clashing:
            levels[i] += 1
    if len(set(names)) == len(names):
        return names
    # Only reachable when unsafe characters were folded together: disambiguate by a hash.
    return [f"{n}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}" for n, p in zip(names, paths)]


def output_paths(out_dir: Path, name: str) -> Dict[str, Path]:
    return {"csv": out_dir / f"{name}.scores.csv", "json": out_dir / f"{name}.json",
            "png": out_dir / f"{name}.png", "overlay": out_dir / f"{name}.overlay.mp4"}


def write_scores_csv(path: Path, times: np.ndarray, scores: np.ndarray) -> None:
    """``frame,time_s,score``, one row per frame (frames 0-based; ``times`` the frames' timestamps in s)."""
    rows = "".join(f"{i},{t:.4f},{s:.6f}\n" for i, (t, s) in enumerate(zip(times.tolist(), scores.tolist())))
    atomic.write_text(path, "frame,time_s,score\n" + rows)


def read_scores_csv(path: Path) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, times, scores) of a file written by ``write_scores_csv``."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return data[:, 0].astype(int), data[:, 1], data[:, 2]


# --- terminal ---------------------------------------------------------------------------------------

_COLUMNS = ("clip", "duration", "max", "threshold", "intervals", "RTF")


@dataclass
class TableRow:
    name: str
    duration_s: float
    max_score: float
    threshold: Optional[float]
    intervals: Sequence[Interval]
    rtf: Optional[float]

    def cells(self, max_intervals: int = 4) -> Tuple[str, ...]:
        shown = [format_interval(iv) for iv in self.intervals[:max_intervals]]
        if len(self.intervals) > max_intervals:
            shown.append(f"+{len(self.intervals) - max_intervals} more")
        return (self.name, format_clock(self.duration_s, "ceil"), f"{self.max_score:.3f}",
                "-" if self.threshold is None else f"{self.threshold:.3f}", ", ".join(shown) or "none",
                "-" if self.rtf is None else f"{self.rtf:.2f}x")


def format_table(rows: Sequence[TableRow]) -> str:
    cells = [_COLUMNS] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)
