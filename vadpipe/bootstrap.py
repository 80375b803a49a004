"""Seeded bootstrap over videos: confidence intervals for frame AUC and AP, and for paired differences.

A resample draws the test videos with replacement and concatenates their
frames. That equals weighting each video by how often it was drawn, so a score
set is reduced once (:func:`rank_table`) to its distinct (score, video) entries
in score order, with counts of anomalous and normal frames; every resample is
then a weighted pass over those entries, not a sort of all frames. The
weighted sums are the Mann-Whitney AUC (ties count half, as sklearn's
``roc_auc_score``) and sklearn's step-wise ``average_precision_score``.

Paired differences use the same drawn videos for both sets, so a set against
itself differs by exactly 0 in every resample. Intervals are percentile
intervals; resamples without both anomalous and normal frames have no AUC and
are left out (counted in ``n_valid``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import ConfigError

Frames = Tuple[np.ndarray, np.ndarray]          # (frame scores, 0/1 frame labels) of one video


@dataclass(frozen=True)
class RankTable:
    """A set's frames as distinct (score, video) entries in ascending score order."""
    video: np.ndarray           # (E,) index of the entry's video
    pos: np.ndarray             # (E,) anomalous frames with that score in that video
    neg: np.ndarray             # (E,) normal frames
    group_start: np.ndarray     # first entry of each run of equal scores (ties across videos)
    n_videos: int


def rank_table(frames: Sequence[Frames]) -> RankTable:
    scores, videos, pos, neg = [], [], [], []
    for i, (s, y) in enumerate(frames):
        u, inv = np.unique(np.asarray(s, dtype=np.float64), return_inverse=True)
        p = np.bincount(inv, weights=np.asarray(y) > 0, minlength=u.size)
        scores.append(u)
        videos.append(np.full(u.size, i, dtype=np.int64))
        pos.append(p)
        neg.append(np.bincount(inv, minlength=u.size) - p)
    if not scores:
        raise ConfigError("bootstrap: no videos")
    s = np.concatenate(scores)
    order = np.argsort(s, kind="stable")
    s = s[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return RankTable(np.concatenate(videos)[order], np.concatenate(pos)[order], np.concatenate(neg)[order],
                     starts, len(frames))


def weighted_auc_ap(table: RankTable, weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(AUC, AP) with each video counted ``weights[..., v]`` times; NaN without both labels.

    ``weights`` is (V,) or (B, V) for B resamples at once (one vectorised pass, no Python loop).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))[:, table.video]
    p, n = table.pos * w, table.neg * w
    if table.group_start.size < table.video.size:       # equal scores across videos: sum each tie run
        p, n = np.add.reduceat(p, table.group_start, axis=1), np.add.reduceat(n, table.group_start, axis=1)
    p_tot, n_tot = p.sum(axis=1), n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum_n = np.cumsum(n, axis=1)
        auc = np.einsum("be,be->b", p, cum_n - 0.5 * n) / (p_tot * n_tot)
        # At threshold = this score: frames scoring at least it are positives (tp) or false positives.
        tp = p_tot[:, None] - np.cumsum(p, axis=1) + p
        called = tp + (n_tot[:, None] - cum_n + n)
        precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        ap = np.einsum("be,be->b", p, precision) / p_tot
    bad = (p_tot <= 0) | (n_tot <= 0)
    auc[bad], ap[bad] = np.nan, np.nan
    return auc, ap


def frame_auc_ap(frames: Sequence[Frames]) -> Tuple[float, float]:
    """Frame AUC and AP over all frames concatenated (equal to sklearn's)."""
    table = rank_table(frames)
    auc, ap = weighted_auc_ap(table, np.ones(table.n_videos))
    return float(auc[0]), float(ap[0])


def finite_or_none(value) -> Optional[float]:
    """``value`` as a float, None when it is NaN (a set without both labels): JSON has no NaN."""
    value = float(value)
    return value if np.isfinite(value) else None


def resample_counts(n_videos: int, n: int, seed: int) -> np.ndarray:
    """(n, n_videos): how often each video is drawn in each resample (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_videos, size=(n, n_videos))
    return np.stack([np.bincount(d, minlength=n_videos) for d in draws])


@dataclass
class MetricCI:
    point: Optional[float]
    low: Optional[float]
    high: Optional[float]


@dataclass
class BootstrapResult:
    auc: MetricCI
    ap: MetricCI
    n: int                      # resamples drawn
    n_valid: int                # resamples with both anomalous and normal frames
    seed: int
    confidence: float
    n_videos: int
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _percentiles(values: np.ndarray, confidence: float) -> Tuple[Optional[float], Optional[float]]:
    values = values[~np.isnan(values)]
    if not values.size:
        return None, None
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _run(tables: Sequence[RankTable], n: int, seed: int, confidence: float) -> BootstrapResult:
    """Bootstrap AUC/AP of one table, or of the difference table[0] − table[1] on the same draws."""
    if n < 1:
        raise ConfigError(f"bootstrap: {n} resamples; need at least 1")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"bootstrap: confidence {confidence}; need 0 < c < 1")
    n_videos = tables[0].n_videos
    if any(t.n_videos != n_videos for t in tables):
        raise ConfigError("paired bootstrap: the two sets cover different numbers of videos")

    def measure(weights):                       # (B, 2): AUC and AP per resample, or their differences
        values = [np.stack(weighted_auc_ap(t, weights), axis=1) for t in tables]
        return values[0] - values[1] if len(tables) == 2 else values[0]

    point = measure(np.ones(n_videos))[0]
    counts = resample_counts(n_videos, n, seed)
    chunk = max(1, int(2e6 // max(1, tables[0].video.size)))   # ~16 MB per temporary array
    samples = np.concatenate([measure(counts[i:i + chunk]) for i in range(0, n, chunk)])
    n_valid = int((~np.isnan(samples[:, 0])).sum())
    cis = [MetricCI(finite_or_none(point[k]), *_percentiles(samples[:, k], confidence)) for k in range(2)]
    notes = []
    if n_valid < n:
        notes.append(f"{n - n_valid} of {n} resamples drew no anomalous or no normal frame and were left out")
    for name, ci in zip(("AUC", "AP"), cis):
        if ci.low is not None and ci.point is not None and not ci.low <= ci.point <= ci.high:
            notes.append(f"{name} {ci.point:.4f} lies outside its percentile interval: too few videos "
                         "for a bootstrap to describe")
    return BootstrapResult(cis[0], cis[1], n, n_valid, seed, confidence, n_videos, notes)


def bootstrap(frames: Sequence[Frames], n: int = 1000, seed: int = 0, confidence: float = 0.95) -> BootstrapResult:
    """Percentile intervals of frame AUC and AP, resampling videos with replacement."""
    return _run([rank_table(frames)], n, seed, confidence)


def paired_bootstrap(frames_a: Sequence[Frames], frames_b: Sequence[Frames], n: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """Intervals of AUC(a) − AUC(b) and AP(a) − AP(b); ``frames_a[i]`` and ``frames_b[i]`` are one video."""
    if len(frames_a) != len(frames_b):
        raise ConfigError(f"paired bootstrap: {len(frames_a)} videos against {len(frames_b)}")
    return _run([rank_table(frames_a), rank_table(frames_b)], n, seed, confidence)
