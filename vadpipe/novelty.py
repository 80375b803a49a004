"""How unlike the other normal training videos each normal video is, for ``train.holdout_pick: typical``.

A video's *novelty* is the mean over its snippets (views averaged, unit length) of one minus the largest
cosine similarity to a snippet of any *other* normal video. Holding out the least novel normal videos keeps
the unusual ones in training: a held-out share drawn at random that holds out a camera's only crowded clip
trains a head that never saw a crowd (Ped1: the held-out videos' novelty against training has r = -0.61 with
frame AUC over 15 random splits; docs/localisation.md, "Another extraction in the error bar").

Float64 so that the ranking does not turn on float32's last digit; at most ``SNIPPET_BUDGET`` snippets in
all (the longest videos cut to evenly spaced snippets), so a UCF-Crime-size set compares about 17 snippets a
video in seconds while every benchmark here (at most 11,984 normal snippets) compares all of them.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .data import Video

SNIPPET_BUDGET = 16384


def unit_snippets(x: np.ndarray, at_most: int) -> np.ndarray:
    """(T, C, D) features -> (T', D) float64: views averaged, at most ``at_most`` evenly spaced snippets
    (the first and last kept), each scaled to unit length (an all-zero snippet stays zero)."""
    x = np.asarray(x, dtype=np.float64).mean(axis=1)
    if len(x) > at_most:
        x = x[np.unique(np.linspace(0, len(x) - 1, at_most).round().astype(np.int64))]
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def novelty_of(units: Sequence[np.ndarray]) -> np.ndarray:
    """Each video's novelty against all the others (``units``: each video's ``unit_snippets``); zeros when
    there are fewer than two videos (nothing to compare with)."""
    if len(units) < 2:
        return np.zeros(len(units))
    pool = np.concatenate(units)
    owner = np.repeat(np.arange(len(units)), [len(u) for u in units])
    out = np.empty(len(units))
    for k, u in enumerate(units):
        similarity = u @ pool.T
        similarity[:, owner == k] = -np.inf       # a video is not compared with itself
        out[k] = np.mean(1.0 - similarity.max(axis=1))
    return out


def snippets_per_video(lengths: Sequence[int], budget: int) -> int:
    """The largest count c such that the videos keep at most ``budget`` snippets in all when each keeps
    min(its length, c): every snippet when they fit, else the short videos whole and the long ones cut to
    one length (at least 1 a video)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0 or lengths.sum() <= budget:
        return int(lengths.max(initial=1))
    low, high = 1, int(lengths.max())          # sum(min(lengths, c)) grows with c: the last c that fits
    while low < high:
        c = (low + high + 1) // 2
        low, high = (c, high) if np.minimum(lengths, c).sum() <= budget else (low, c - 1)
    return low


def video_novelty(videos: Sequence[Video], span: Tuple[int, int] = (0, 0),
                  budget: int = SNIPPET_BUDGET) -> np.ndarray:
    """:func:`novelty_of` the videos' stored features (``span``: the part of D the head reads, as
    ``model.head_span``; (0, 0) all of it), at most ``budget`` snippets in all, rounded to 1e-9: a video made
    of clips that other videos also hold (Ped1 long) has novelty 0 up to float error, and such ties then
    fall to the videos' order, not to the last bit of a sum."""
    at_most = snippets_per_video([len(v.raw()) for v in videos], budget)
    start, stop = span if span != (0, 0) else (0, None)
    units = [unit_snippets(v.load()[..., start:stop], at_most) for v in videos]
    return np.round(novelty_of(units), 9) + 0.0   # + 0.0: no -0.0
