"""Evaluation figures: ROC and PR curves of every score set, and the worst videos' score strips.

Worst videos: each video's *ranking error* is the mean, over its frames, of the
share of the test set's frames of the other label ranked on the wrong side
(an anomalous frame: the share of normal frames scoring higher; a normal
frame: the share of anomalous frames scoring lower; ties count half). It is
the video's part of 1 − frame AUC, so a normal video scored high and an
anomalous video whose event scores low both rank as bad. Figures are drawn
with the Agg canvas (as ``plot.py``) and written atomically.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from . import atomic
from .bootstrap import Frames
from .plot import DPI, GT_COLOUR, _new_figure

WIDTH_IN = 7.0
STRIP_WIDTH_IN = 12.0
STRIP_HEIGHT_IN = 1.75


def _colours(names: Sequence[str]) -> Dict[str, str]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _concat(frames: Dict[str, Frames]):
    return (np.concatenate([y for _, y in frames.values()]), np.concatenate([s for s, _ in frames.values()]))


def _save(fig, path: Path) -> Path:
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def plot_curves(path: str | Path, aligned: Dict[str, Dict[str, Frames]], kind: str) -> Path:
    """ROC (``kind="roc"``) or precision-recall (``"pr"``) curves of every set on one figure."""
    from sklearn.metrics import auc as area, precision_recall_curve, roc_curve

    fig = _new_figure(WIDTH_IN, WIDTH_IN * 0.86)
    ax = fig.add_axes((0.11, 0.1, 0.85, 0.8))
    colours = _colours(list(aligned))
    base = 0.0
    for name, frames in aligned.items():
        y, s = _concat(frames)
        if not 0 < y.sum() < y.size:            # no curve without both labels
            continue
        if kind == "roc":
            x, yy, _ = roc_curve(y, s)
            label = f"{name}  AUC {100 * area(x, yy):.2f}"
        else:
            yy, x, _ = precision_recall_curve(y, s)
            label = f"{name}  AP {100 * -np.sum(np.diff(x) * yy[:-1]):.2f}"
            base = float(y.mean())
        ax.plot(x, yy, color=colours[name], lw=1.8, label=label, drawstyle="default" if kind == "roc" else "steps-post")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=1, label="chance")
        ax.set_xlabel("false positive rate (normal frames)")
        ax.set_ylabel("true positive rate (anomalous frames)")
        ax.set_title("ROC, frames of all videos", loc="left", fontweight="bold")
    else:
        ax.axhline(base, color="#999999", ls=":", lw=1, label=f"chance ({100 * base:.1f}% anomalous)")
        ax.set_xlabel("recall (anomalous frames)")
        ax.set_ylabel("precision")
        ax.set_title("Precision-recall, frames of all videos", loc="left", fontweight="bold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=9, frameon=False)
    return _save(fig, Path(path))


def ranking_errors(frames: Dict[str, Frames]) -> Dict[str, float]:
    """video → mean share of other-label frames ranked on the wrong side of its frames (see module doc)."""
    y, s = _concat(frames)
    pos, neg = np.sort(s[y > 0]), np.sort(s[y == 0])
    out = {}
    for vid, (sv, yv) in frames.items():
        err = np.zeros(sv.size)
        a = yv > 0
        if neg.size:            # normal frames above (ties half) an anomalous frame's score
            above = neg.size - np.searchsorted(neg, sv[a], "right")
            ties = np.searchsorted(neg, sv[a], "right") - np.searchsorted(neg, sv[a], "left")
            err[a] = (above + 0.5 * ties) / neg.size
        if pos.size:            # anomalous frames below (ties half) a normal frame's score
            below = np.searchsorted(pos, sv[~a], "left")
            ties = np.searchsorted(pos, sv[~a], "right") - below
            err[~a] = (below + 0.5 * ties) / pos.size
        out[vid] = float(err.mean()) if err.size else 0.0
    return out


def worst_videos(frames: Dict[str, Frames], n: int) -> List[str]:
    errors = ranking_errors(frames)
    return sorted(errors, key=lambda v: (-errors[v], v))[:n]


def plot_worst_videos(path: str | Path, aligned: Dict[str, Dict[str, Frames]], chooser: str, n: int = 6) -> Path:
    """Strips of ``chooser``'s ``n`` worst videos: every set's frame scores over the ground truth."""
    errors = ranking_errors(aligned[chooser])
    vids = worst_videos(aligned[chooser], n)
    colours = _colours(list(aligned))
    fig = _new_figure(STRIP_WIDTH_IN, 0.7 + STRIP_HEIGHT_IN * max(1, len(vids)))
    fig.suptitle(f"{chooser}: the {len(vids)} videos with the highest ranking error", x=0.01, ha="left",
                 fontweight="bold")
    axes = fig.subplots(max(1, len(vids)), 1, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.06, right=0.985, top=1 - 0.75 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.55)
    for ax, vid in zip(axes, vids):
        s, y = aligned[chooser][vid]
        x = np.arange(s.size)
        ax.fill_between(x, 0, 1, where=y > 0, step="post", color=GT_COLOUR, alpha=0.2, lw=0,
                        transform=ax.get_xaxis_transform())
        for name, frames in aligned.items():
            if vid in frames:                   # the chooser's curve on top, the others behind it
                ax.plot(np.arange(frames[vid][0].size), frames[vid][0], color=colours[name], lw=1.3,
                        drawstyle="steps-post", label=name, zorder=3 if name == chooser else 2,
                        alpha=1.0 if name == chooser else 0.7)
        kind = "anomalous" if y.any() else "normal"
        ax.set_title(f"{vid}  ({kind}, {s.size} frames)  ranking error {errors[vid]:.3f}", loc="left", fontsize=10)
        ax.set_xlim(0, max(1, s.size))
        ax.tick_params(labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    if vids:
        axes[-1].set_xlabel("frame", fontsize=9)
        handles, labels = axes[0].get_legend_handles_labels()
        from matplotlib.patches import Patch

        handles.append(Patch(color=GT_COLOUR, alpha=0.35))
        labels.append("ground truth")
        axes[0].legend(handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(labels),
                       frameon=False, fontsize=8)
    return _save(fig, Path(path))


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "set"


def write_eval_plots(folder: str | Path, aligned: Dict[str, Dict[str, Frames]], worst: int = 6) -> List[Path]:
    """``roc.png``, ``pr.png`` and ``worst_<set>.png`` per set in ``folder``; returns the paths."""
    folder = Path(folder)
    paths = [plot_curves(folder / "roc.png", aligned, "roc"), plot_curves(folder / "pr.png", aligned, "pr")]
    if worst > 0:
        used: Dict[str, int] = {}
        for name in aligned:
            stem = safe_name(name)
            used[stem] = used.get(stem, 0) + 1
            stem += f"_{used[stem]}" if used[stem] > 1 else ""
            paths.append(plot_worst_videos(folder / f"worst_{stem}.png", aligned, name, worst))
    return paths
