"""Figures for scored clips: score curve, threshold, intervals, ground truth and a thumbnail strip.

Matplotlib is used through its object API with the Agg canvas (``Figure`` +
``FigureCanvasAgg``), never pyplot: no global state, no display needed, safe
in worker threads. Figures have a fixed pixel size (no tight bounding box),
so callers and tests know what they get.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .intervals import Interval, format_clock

DPI = 100
WIDTH_IN = 12.0
HEIGHT_IN = 5.8            # with a thumbnail strip
HEIGHT_NO_THUMBS_IN = 3.8  # scores only (pre-extracted features, no video)
MAX_THUMBNAILS = 6

SCORE_COLOUR = "#1f4e9c"
INTERVAL_COLOUR = "#d62728"
GT_COLOUR = "#2ca02c"
THRESHOLD_COLOUR = "#444444"


@dataclass
class Thumbnail:
    frame: int
    time_s: float
    score: float
    is_peak: bool           # taken at an interval's peak (else evenly spaced context)
    image: Optional[np.ndarray] = None   # (H, W, 3) uint8 RGB, filled by the caller


def figure_size_px(with_thumbnails: bool) -> Tuple[int, int]:
    """(width, height) in pixels of the PNG that ``plot_clip`` writes."""
    height = HEIGHT_IN if with_thumbnails else HEIGHT_NO_THUMBS_IN
    return int(round(WIDTH_IN * DPI)), int(round(height * DPI))


def choose_thumbnails(scores: Sequence[float], fps: float, intervals: Sequence[Interval],
                      count: int = MAX_THUMBNAILS, times: Optional[Sequence[float]] = None) -> List[Thumbnail]:
    """Frames for the strip: interval peaks (highest first, at most ``count``),
    the remaining slots filled with evenly spaced frames; returned in time order.
    A thumbnail's time is the frame's in ``times`` (timestamps: a variable-frame-rate clip's true times),
    else frame / ``fps``.

    Evenly spaced frames sit at the centres of ``count`` equal parts of the
    clip, skipping any part that already holds a peak, so the strip shows the
    events and enough context around them.
    """
    scores = np.asarray(scores)
    n = scores.size
    if n == 0 or count < 1:
        return []
    peaks = sorted(intervals, key=lambda iv: -iv.peak_score)[:count]
    chosen = {iv.peak_frame: True for iv in peaks}
    part = n / count
    taken_parts = {min(count - 1, int(f // part)) for f in chosen}
    for k in range(count):
        if len(chosen) >= min(count, n):
            break
        if k in taken_parts:
            continue
        frame = min(n - 1, int((k + 0.5) * part))
        chosen.setdefault(frame, False)
    return [Thumbnail(frame=f, time_s=float(times[f]) if times is not None else f / fps, score=float(scores[f]),
                      is_peak=chosen[f]) for f in sorted(chosen)]


def _new_figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _time_formatter(duration_s: float):
    from matplotlib.ticker import FuncFormatter

    if duration_s < 60:
        return "time (s)", FuncFormatter(lambda x, _: f"{x:g}")
    return "time (mm:ss)", FuncFormatter(lambda x, _: format_clock(x))


def draw_scores(ax, times: np.ndarray, scores: np.ndarray, threshold: Optional[float],
                intervals: Sequence[Interval], gt_intervals_s: Sequence[Tuple[float, float]] = (),
                threshold_label: str = "threshold", duration_s: Optional[float] = None,
                font_size: float = 11.0, legend: bool = True, headroom: float = 1.02, scale: str = "linear") -> None:
    """Score curve with threshold, shaded intervals and ground truth on ``ax``; ``scale`` is the y axis's,
    linear or logit (:func:`score_axis_scale`)."""
    from matplotlib.patches import Patch

    duration = duration_s if duration_s is not None else (float(times[-1]) if times.size else 1.0)
    handles = []
    for start, end in gt_intervals_s:
        # Light shading plus a solid band at the bottom: readable where it overlaps a detection.
        ax.axvspan(start, end, color=GT_COLOUR, alpha=0.15, lw=0)
        ax.axvspan(start, end, ymin=0.0, ymax=0.035, color=GT_COLOUR, alpha=0.9, lw=0)
    if len(gt_intervals_s):
        handles.append(Patch(color=GT_COLOUR, alpha=0.35, label="ground truth"))
    for iv in intervals:
        ax.axvspan(iv.start_s, iv.end_s, color=INTERVAL_COLOUR, alpha=0.18, lw=0)
    if intervals:
        handles.append(Patch(color=INTERVAL_COLOUR, alpha=0.3, label=f"detected ({len(intervals)})"))
    # One score per frame, drawn as steps: a held snippet score shows as the flat run it is.
    (line,) = ax.plot(times, scores, color=SCORE_COLOUR, lw=1.6, drawstyle="steps-post", label="score")
    handles.insert(0, line)
    if threshold is not None:
        handles.insert(1, ax.axhline(threshold, color=THRESHOLD_COLOUR, ls="--", lw=1.2, label=threshold_label))
    if scale == "logit":
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        ax.set_yscale("logit", nonpositive="clip")
        lo, hi = _logit_limits(scores, threshold, headroom)
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_locator(FixedLocator(_logit_ticks(lo, hi)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda p, _: _decimal(p)))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        top = max(1.0, float(np.max(scores)) if scores.size else 1.0)
        ax.set_ylim(min(0.0, float(np.min(scores)) if scores.size else 0.0), top * headroom)
    ax.set_xlim(0, max(duration, 1e-3))
    label, formatter = _time_formatter(duration)
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlabel(label, fontsize=font_size)
    ax.set_ylabel("anomaly score" + (" (logit axis)" if scale == "logit" else ""), fontsize=font_size)
    ax.tick_params(labelsize=font_size - 1)
    ax.grid(True, axis="y", alpha=0.3)
    if legend:
        ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles),
                  frameon=False, fontsize=font_size - 1, handlelength=1.6, borderaxespad=0.2)


SCALES = ("auto", "linear", "logit")
# auto picks the logit axis when the curve and its threshold sit on one side of 0.5 and fill less than
# this share of the linear axis: a clip scored 0.94..0.998 is a flat line at the top of a linear axis,
# though its peak has 30 times the odds of its calmest frame.
LINEAR_MAX_SPAN = 0.25


def logit(p: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """log(p / (1 - p)) in float64, ``p`` clipped to [eps, 1 - eps] (a score of 0 or 1 stays finite)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def _in_range(scores: np.ndarray, threshold: Optional[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=float).reshape(-1)
    if threshold is not None:
        values = np.append(values, threshold)
    return values[np.isfinite(values)]


def score_axis_scale(scores: np.ndarray, threshold: Optional[float] = None, scale: str = "auto") -> str:
    """The y axis for a score curve: ``scale`` itself unless it is auto, which gives logit when every
    score and the threshold lie strictly inside (0, 1) and bunch at one end of it (all on one side of
    0.5, within a quarter of the linear axis), and linear otherwise (and for heads whose scores reach
    0 or 1 exactly, which a logit axis cannot place)."""
    if scale not in SCALES:
        raise ValueError(f"plot scale {scale!r}: expected one of {', '.join(SCALES)}")
    if scale != "auto":
        return scale
    values = _in_range(scores, threshold)
    if values.size == 0 or values.min() <= 0.0 or values.max() >= 1.0:
        return "linear"
    lo, hi = float(values.min()), float(values.max())
    one_side = lo > 0.5 or hi < 0.5
    return "logit" if one_side and hi - lo < LINEAR_MAX_SPAN else "linear"


def _decimal(p: float, least: int = 1) -> str:
    """0.98, 0.999, 0.9997, 0.002: as many decimals as tell ``p`` from 0 and 1, and at least ``least``
    (logit-axis ticks; thumbnail scores, where 0.998 must not read 1.00)."""
    if not 0.0 < p < 1.0:
        return f"{p:.{least}f}" if least > 1 else f"{p:g}"
    return f"{p:.{max(least, int(np.ceil(-np.log10(min(p, 1.0 - p)) - 1e-9)))}f}"


def _logit_ticks(lo: float, hi: float, most: int = 7) -> List[float]:
    """Round probabilities between ``lo`` and ``hi`` for a logit axis: 0.5, then 1 and 5 in each decade
    towards 0 and 1 (0.9, 0.95, 0.99, 0.995, ...; 0.1, 0.05, ...), thinned (1 per decade, then every
    other decade...) to at most ``most``; 2 and 8 (0.98, 0.92) join when that leaves fewer than 3, and
    a narrow range gets 5 ticks evenly spaced in logit units."""
    def ladder(steps: Sequence[float], stride: int = 1) -> List[float]:
        tails = {m * 10.0 ** -k for k in range(1, 9, stride) for m in steps if m * 10.0 ** -k < 0.5}
        return [p for p in sorted({0.5, *tails, *(1.0 - t for t in tails)}) if lo <= p <= hi]

    for steps, stride in (((1.0, 5.0), 1), ((1.0,), 1), ((1.0,), 2), ((1.0,), 4)):
        ticks = ladder(steps, stride)
        if len(ticks) <= most:
            break
    if len(ticks) < 3:
        ticks = ladder((1.0, 2.0, 5.0, 8.0))
    if len(ticks) < 2:
        even = 1 / (1 + np.exp(-np.linspace(logit(np.array(lo)), logit(np.array(hi)), 5)))
        ticks = sorted({float(_decimal(p)) for p in even})
    return ticks


def _logit_limits(scores: np.ndarray, threshold: Optional[float], headroom: float) -> Tuple[float, float]:
    """y limits (probabilities) that hold the curve and threshold with a margin in logit units; the top
    margin grows with ``headroom`` as on the linear axis (room for the thumbnail numbers)."""
    values = np.clip(_in_range(scores, threshold), 1e-7, 1 - 1e-7)
    lo, hi = logit(values.min()), logit(values.max())
    span = max(hi - lo, 1.0)
    below, above = lo - 0.08 * span, hi + (0.08 + 4 * (headroom - 1.0)) * span
    return float(1 / (1 + np.exp(-below))), float(1 / (1 + np.exp(-above)))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else "\u2026" + text[-(limit - 1):]


def drawable(text: str, weight: str = "bold") -> str:
    """``text`` with the characters the title's font cannot draw replaced by '?'. Matplotlib would draw
    empty boxes and warn once per glyph on stderr (a Chinese file name with only DejaVu installed);
    the full name stays in the JSON. Fonts installed with those glyphs are used when they come first in
    ``font.sans-serif``."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    if text.isascii():
        return text
    try:
        charmap = FT2Font(font_manager.findfont(font_manager.FontProperties(weight=weight))).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return text.encode("ascii", "replace").decode()
    return "".join(c if ord(c) in charmap else "?" for c in text)


def plot_clip(path: str | Path, times: np.ndarray, scores: np.ndarray, fps: float, title: str,
              threshold: Optional[float], intervals: Sequence[Interval], thumbnails: Sequence[Thumbnail] = (),
              gt_intervals_s: Sequence[Tuple[float, float]] = (), threshold_label: str = "threshold",
              duration_s: Optional[float] = None, scale: str = "auto") -> Path:
    """Write the clip's PNG atomically (size: ``figure_size_px``); returns its path. ``scale``: the
    score axis, auto | linear | logit (:func:`score_axis_scale`)."""
    from . import atomic

    times = np.asarray(times, dtype=float)
    scores = np.asarray(scores, dtype=float)
    thumbs = [t for t in thumbnails if t.image is not None]
    scale = score_axis_scale(scores, threshold, scale)
    left = 0.075 if scale == "logit" else 0.06        # room for ticks such as 0.9995 and the axis label
    fig = _new_figure(WIDTH_IN, HEIGHT_IN if thumbs else HEIGHT_NO_THUMBS_IN)
    if thumbs:
        grid = fig.add_gridspec(2, MAX_THUMBNAILS, height_ratios=[2.3, 1.0], left=left, right=0.985,
                                top=0.88, bottom=0.02, hspace=0.36, wspace=0.06)
        ax = fig.add_subplot(grid[0, :])
    else:
        ax = fig.add_axes((left, 0.15, 0.985 - left, 0.68))
    # Headroom above the curve holds the thumbnail numbers, clear of the curve.
    draw_scores(ax, times, scores, threshold, intervals, gt_intervals_s, threshold_label, duration_s,
                headroom=1.13 if thumbs else 1.02, scale=scale)
    peak = float(np.max(scores)) if scores.size else float("nan")
    ax.set_title(f"{drawable(_shorten(title, 60))}   max score {peak:.3f}", loc="left", fontsize=13, pad=26,
                 fontweight="bold")
    if thumbs:
        _draw_strip(fig, grid, ax, thumbs)
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _draw_strip(fig, grid, score_ax, thumbs: Sequence[Thumbnail]) -> None:
    """Thumbnails centred in the bottom row, numbered, with the same numbers on the curve."""
    offset = (MAX_THUMBNAILS - len(thumbs)) // 2
    duration = score_ax.get_xlim()[1]
    when = (lambda t: f"{t:.1f} s") if duration < 60 else format_clock
    ymax = score_ax.get_ylim()[1]
    for i, thumb in enumerate(thumbs[:MAX_THUMBNAILS]):
        colour = INTERVAL_COLOUR if thumb.is_peak else "#888888"
        ax = fig.add_subplot(grid[1, offset + i])
        ax.imshow(thumb.image, interpolation="bilinear")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3 if thumb.is_peak else 1)
        kind = "peak" if thumb.is_peak else ""
        ax.set_title(f"{i + 1}  {when(thumb.time_s)}  {_decimal(thumb.score, 2)} {kind}".rstrip(), fontsize=10,
                     color="black", pad=3)
        score_ax.annotate(str(i + 1), xy=(thumb.time_s, ymax), xytext=(0, -3), textcoords="offset points",
                          ha="center", va="top", fontsize=9, color="white", fontweight="bold",
                          bbox=dict(boxstyle="circle,pad=0.2", fc=colour, ec="none"))


def render_to_array(fig) -> np.ndarray:
    """RGBA uint8 pixels of a figure drawn on its Agg canvas."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()
