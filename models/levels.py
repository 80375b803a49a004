"""Scores as levels: a run's snippet scores mapped so that 0.5 is its ``auto`` threshold.

The default's fused logit ranks frames well but is no level: on a training set as small as Ped1's the
normal statistics' in-sample z and the pseudo-label stage lift every frame of new video towards 1
(99.8 % of Ped1's normal test frames above 0.5, its ``auto`` threshold 0.9995; docs/localisation.md,
"The normal statistics' z on new video"). After training, the held-out normal videos that set the
threshold give two points on the logit scale: c, the logit of the ``auto`` threshold (their frames'
99th percentile), and m, the logit of their median frame. Every snippet score p becomes

    level = sigmoid(b(ln 99 · (logit(p) − c) / (c − m)))

so the threshold reads 0.5, a typical held-out normal frame 0.01, and a frame as far above the
threshold as the threshold is above a typical normal frame 0.99. ``b`` is the pseudo-label stage's
bound (identity up to |8|, at most 16): no level rounds to 0 or 1 in float32. The map is strictly
monotone, so it ranks snippets as the raw score does. Frames interpolated between snippet centres
(``model.frame_scores`` linear) are interpolated between levels, which moves their 99th percentile a
little; the centre is then moved until it reads 0.5 again (:meth:`ScoreLevels.centre_at`). Unfitted, the
map is the identity.
"""
from __future__ import annotations

import math
from typing import Callable, Tuple

import numpy as np
import torch
from torch import nn

from .pseudo_stage import bounded_logit

# level of a typical (median) held-out normal frame; the threshold's is 0.5
TYPICAL_NORMAL = 0.01
# the least spread (logit units) between the threshold and the median normal frame the map divides by:
# held-out normals scored all alike would otherwise stretch the smallest score difference to 0 or 1
MIN_SPREAD = 1e-2
# how a run's scores are reported (ModelConfig.score_levels): the fused score itself, or levels
SCORE_LEVELS = ("raw", "calibrated")


def logit64(p: np.ndarray) -> np.ndarray:
    """logit in float64 of scores given in any float type (clipped inside (0, 1))."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


class ScoreLevels(nn.Module):
    """Buffers ``centre`` (c) and ``unit`` ((c − m) / ln 99), fitted by :meth:`fit`; ``fitted`` 0 or 1."""

    def __init__(self):
        super().__init__()
        self.register_buffer("centre", torch.zeros((), dtype=torch.float64))
        self.register_buffer("unit", torch.ones((), dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.float64))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

    def reset(self) -> None:
        """Back to the identity (a refit scores the raw fused scores first)."""
        self.centre.fill_(0.0)
        self.unit.fill_(1.0)
        self.fitted.fill_(0.0)

    @torch.no_grad()
    def fit(self, threshold: float, median: float) -> Tuple[float, float]:
        """Fit the map from the raw ``auto`` threshold and the median of the same normal frames' raw
        scores; returns (c, c − m) in logit units, the spread at least :data:`MIN_SPREAD`."""
        c, m = (float(v) for v in logit64(np.array([threshold, median])))
        spread = max(c - m, MIN_SPREAD)
        self.set(c, spread / math.log((1 - TYPICAL_NORMAL) / TYPICAL_NORMAL))
        return c, spread

    @torch.no_grad()
    def set(self, centre: float, unit: float) -> None:
        self.centre.fill_(centre)
        self.unit.fill_(unit)
        self.fitted.fill_(1.0)

    @torch.no_grad()
    def centre_at(self, quantile_of: Callable[[], float], target: float = 0.5, steps: int = 40) -> float:
        """Move the centre (unit kept) until ``quantile_of()`` (the threshold's quantile of frames made
        from the mapped snippets) reads ``target``: frames interpolated between snippets' levels put that
        quantile a little off 0.5 (0.56 on a few short videos). Bisection over ±16 units, where the bound
        saturates; the centre is left where it was when that range does not bracket the target."""
        start, unit = float(self.centre), float(self.unit)
        goal = float(logit64(np.array(target)))

        def excess(c: float) -> float:
            self.set(c, unit)
            return float(logit64(np.array(quantile_of()))) - goal
        lo, hi = start - 16 * unit, start + 16 * unit      # excess falls as the centre rises
        if not excess(lo) > 0 > excess(hi):
            self.set(start, unit)
            return start
        for _ in range(steps):
            mid = (lo + hi) / 2
            if excess(mid) > 0:
                lo = mid
            else:
                hi = mid
        self.set((lo + hi) / 2, unit)
        return float(self.centre)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Raw snippet scores (any shape) → levels, float64; the scores themselves when unfitted."""
        scores = np.asarray(scores, dtype=np.float64)
        if not self.is_fitted:
            return scores
        z = (logit64(scores) - float(self.centre)) / float(self.unit)
        return torch.sigmoid(bounded_logit(torch.from_numpy(z))).numpy()
