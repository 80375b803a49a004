"""From snippet scores to per-frame scores and anomalous intervals. Pure functions, no I/O.

Conventions (the same as the feature store and the ground truth): frames are
0-based, an interval is ``[start, end)`` with ``end`` exclusive, and a frame's
time is ``frame / fps`` seconds, so an interval lasts ``(end - start) / fps``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

Run = Tuple[int, int]   # [start_frame, end_frame) of consecutive frames above the threshold


@dataclass(frozen=True)
class Interval:
    start_frame: int
    end_frame: int          # exclusive
    start_s: float
    end_s: float
    peak_frame: int
    peak_score: float
    mean_score: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        out = asdict(self)
        out["duration_s"] = self.duration_s
        return out


# How snippet scores become frame scores: hold (each frame its snippet's score; the article, RTFM) or
# linear (interpolated between snippet centres: an event's edge falls between two snippets' scores
# instead of on a 16-frame step; docs/localisation.md).
FRAME_MODES = ("hold", "linear")


def snippets_to_frames(snippet_scores: Sequence[float], num_frames: int, snippet_len: int = 16,
                       stride: Optional[int] = None, mode: str = "hold") -> np.ndarray:
    """Per-frame scores (num_frames,) from per-snippet scores (T,).

    Snippet ``i`` covers frames ``[i*stride, i*stride + snippet_len)``. ``hold``: a frame
    covered by several snippets (stride < length) gets their mean; with the
    default stride == length this is ``scores[f // snippet_len]``. ``linear``: frame
    ``f`` is interpolated between the scores of the snippets whose centres
    (``i*stride + (snippet_len - 1) / 2``) lie either side of it, and frames before
    the first centre or after the last take that snippet's score. Frames past
    the last snippet's reach (a dropped tail) take the last snippet's score, so
    every frame of the video has a score.
    """
    scores = np.asarray(snippet_scores, dtype=np.float64).reshape(-1)
    stride = stride or snippet_len
    if scores.size == 0:
        raise ValueError("no snippet scores")
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    if mode not in FRAME_MODES:
        raise ValueError(f"frame mode {mode!r}: expected one of {', '.join(FRAME_MODES)}")
    if mode == "linear":
        centres = np.arange(scores.size) * stride + (snippet_len - 1) / 2
        last_start = (scores.size - 1) * stride
        if 0 < num_frames - last_start < snippet_len:   # a padded last snippet: the middle of its real frames
            centres[-1] = last_start + (num_frames - last_start - 1) / 2
        return np.interp(np.arange(num_frames), centres, scores)
    if stride == snippet_len:
        index = np.minimum(np.arange(num_frames) // snippet_len, scores.size - 1)
        return scores[index]
    total = np.zeros(num_frames)
    count = np.zeros(num_frames)
    for i, s in enumerate(scores):
        lo = i * stride
        hi = min(lo + snippet_len, num_frames)
        if lo >= num_frames:
            break
        total[lo:hi] += s
        count[lo:hi] += 1
    frames = total / np.maximum(count, 1)
    # frames no snippet covers (a dropped tail, or the gaps of a stride longer than a snippet) hold the score
    # of the last snippet before them; frame 0 is always covered
    covered = np.flatnonzero(count > 0)
    before = covered[np.searchsorted(covered, np.arange(num_frames), side="right") - 1]
    return frames[before]


def snippet_reach(snippets: int, snippet_len: int = 16, stride: Optional[int] = None) -> int:
    """Frames that ``snippets`` snippets of ``snippet_len`` frames every ``stride`` frames span (the frame
    count assumed when none is known): ``(T - 1) * stride + snippet_len``, i.e. ``T * snippet_len``
    for the usual non-overlapping snippets."""
    return (snippets - 1) * (stride or snippet_len) + snippet_len if snippets > 0 else 0


def reach_rule(snippet_len: int = 16, stride: Optional[int] = None) -> str:
    """``snippet_reach`` as messages spell it: ``T*16``, or ``(T-1)*8+16`` for overlapping snippets."""
    stride = stride or snippet_len
    return f"T*{snippet_len}" if stride == snippet_len else f"(T-1)*{stride}+{snippet_len}"


@dataclass(frozen=True)
class NativeFrames:
    """A clip a recipe resampled (``extract --fps N``): its own ``frames`` at ``fps``, scored at ``resampled_fps``."""

    frames: int
    fps: float
    resampled_fps: float

    def scores(self, resampled: np.ndarray) -> np.ndarray:
        """Scores of the resampled frames put on the video's own: native frame j takes the resampled frame
        nearest in time (the resampler keeps source frame round(k * step) as output frame k)."""
        resampled = np.asarray(resampled)
        if self.frames == resampled.size and abs(self.fps - self.resampled_fps) < 1e-6:
            return resampled
        nearest = np.rint(np.arange(self.frames) * (self.resampled_fps / self.fps)).astype(int)
        return resampled[np.minimum(nearest, resampled.size - 1)]


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """Start time in seconds of each frame."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return np.arange(num_frames) / float(fps)


def runs_above(scores: Sequence[float], threshold: float) -> List[Run]:
    """Maximal runs of consecutive frames whose score is at or above ``threshold`` (the one rule of what a
    threshold flags: false alarms, calibration's shares and the whole-clip note count the same frames)."""
    above = np.asarray(scores) >= threshold
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def merge_gaps(runs: Sequence[Run], max_gap_frames: int) -> List[Run]:
    """Join runs separated by a gap of fewer than ``max_gap_frames`` frames."""
    merged: List[Run] = []
    for start, end in sorted(runs):
        if merged and start - merged[-1][1] < max_gap_frames:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def drop_short(runs: Sequence[Run], min_frames: int) -> List[Run]:
    """Keep runs that last at least ``min_frames`` frames."""
    return [(s, e) for s, e in runs if e - s >= min_frames]


def seconds_to_frames(seconds: float, fps: float) -> int:
    """A duration in whole frames, rounded up, for the gap and minimum-length options: a run of n frames is
    shorter than ``seconds`` exactly when n < this (0.5 s at 25 fps is 13 frames; 12 last 0.48 s)."""
    return max(0, math.ceil(seconds * fps - 1e-9))


def find_intervals(scores: Sequence[float], threshold: float, fps: float, merge_gap_s: float = 1.0,
                   min_duration_s: float = 0.5) -> List[Interval]:
    """Frames above ``threshold``, merged across gaps shorter than ``merge_gap_s``,
    then dropped when shorter than ``min_duration_s`` (a clip shorter than that, flagged throughout, keeps its
    one run: it could hold no longer one); each described by its peak and mean."""
    scores = np.asarray(scores, dtype=np.float64)
    runs = runs_above(scores, threshold)
    runs = merge_gaps(runs, seconds_to_frames(merge_gap_s, fps))
    runs = drop_short(runs, max(1, min(seconds_to_frames(min_duration_s, fps), scores.size)))
    return [describe_run(scores, run, fps) for run in runs]


def describe_run(scores: np.ndarray, run: Run, fps: float) -> Interval:
    start, end = run
    segment = scores[start:end]
    first = int(np.argmax(segment))
    # Scores are flat within a snippet: take the middle of the plateau that holds the maximum,
    # the most representative frame of it (a thumbnail of its first frame shows the lead-in).
    last = first
    while last + 1 < segment.size and segment[last + 1] == segment[first]:
        last += 1
    peak = start + (first + last) // 2
    return Interval(start_frame=start, end_frame=end, start_s=start / fps, end_s=end / fps, peak_frame=peak,
                    peak_score=float(scores[peak]), mean_score=float(segment.mean()))


def format_clock(seconds: float, rounding: str = "nearest") -> str:
    """mm:ss, or h:mm:ss past an hour. ``rounding``: "nearest", "floor" or "ceil"."""
    seconds = max(0.0, seconds)
    if rounding == "floor":
        total = math.floor(seconds + 1e-9)     # float noise: 2.9999999 s is 3 s
    elif rounding == "ceil":
        total = math.ceil(seconds - 1e-9)
    else:
        total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_interval(interval: Interval) -> str:
    """mm:ss–mm:ss, widened to whole seconds so a short interval never reads as empty."""
    return f"{format_clock(interval.start_s, 'floor')}\u2013{format_clock(interval.end_s, 'ceil')}"
