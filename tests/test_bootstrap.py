"""Bootstrap over videos: metrics equal sklearn's, deterministic for a seed, paired differences."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from score_world import SNIPPET, make_scores
from vadpipe.bootstrap import (bootstrap, frame_auc_ap, paired_bootstrap, rank_table, resample_counts,
                               weighted_auc_ap)
from vadpipe.errors import ConfigError


def _frames(seed=0, n_anomalous=12, n_normal=12, signal=0.4, decimals=None):
    gts, scores = make_scores(n_anomalous, n_normal, seed=seed, signal=signal)
    out = []
    for vid, s in scores.items():
        n = gts[vid].frames
        f = np.repeat(s.astype(np.float64), SNIPPET)[:n]
        out.append((np.round(f, decimals) if decimals is not None else f, gts[vid].labels(n)[0]))
    return out


@pytest.mark.parametrize("decimals", [None, 1])          # 1 decimal: many ties within and across videos
def test_auc_ap_equal_sklearn_also_on_resamples(decimals):
    frames = _frames(seed=3, decimals=decimals)
    y = np.concatenate([f[1] for f in frames])
    s = np.concatenate([f[0] for f in frames])
    auc, ap = frame_auc_ap(frames)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y, s), abs=1e-12)
    table = rank_table(frames)
    counts = resample_counts(len(frames), 5, seed=9)
    aucs, aps = weighted_auc_ap(table, counts)
    for c, a, p in zip(counts, aucs, aps):
        drawn = [i for i in range(len(frames)) for _ in range(c[i])]     # the resample, concatenated explicitly
        yy = np.concatenate([frames[i][1] for i in drawn])
        ss = np.concatenate([frames[i][0] for i in drawn])
        assert a == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert p == pytest.approx(average_precision_score(yy, ss), abs=1e-12)


def test_deterministic_for_a_seed_and_covers_the_point():
    frames = _frames(seed=4)
    a, b = bootstrap(frames, 300, seed=7), bootstrap(frames, 300, seed=7)
    assert a == b
    assert bootstrap(frames, 300, seed=8).auc != a.auc
    for seed in range(5):
        r = bootstrap(frames, 300, seed=seed)
        assert r.auc.low <= r.auc.point <= r.auc.high and r.ap.low <= r.ap.point <= r.ap.high
        assert r.auc.high - r.auc.low > 0.005                       # 24 videos: a real spread
        assert r.auc.point == frame_auc_ap(frames)[0] and r.n_valid == 300 and r.notes == []


def test_paired_difference_with_itself_is_exactly_zero():
    frames = _frames(seed=5)
    copy = [(s.copy(), y.copy()) for s, y in frames]
    d = paired_bootstrap(frames, copy, 200, seed=1)
    assert (d.auc.point, d.auc.low, d.auc.high) == (0.0, 0.0, 0.0)
    assert (d.ap.point, d.ap.low, d.ap.high) == (0.0, 0.0, 0.0)


def test_paired_difference_of_a_better_set():
    strong, weak = _frames(seed=6, signal=0.6), _frames(seed=6, signal=0.1)     # same videos and labels
    d = paired_bootstrap(strong, weak, 300, seed=0)
    (auc_s, ap_s), (auc_w, ap_w) = frame_auc_ap(strong), frame_auc_ap(weak)
    assert d.auc.point == pytest.approx(auc_s - auc_w, abs=1e-15) and d.auc.low > 0
    assert d.ap.point == pytest.approx(ap_s - ap_w, abs=1e-15) and d.ap.low > 0
    with pytest.raises(ConfigError, match="videos against"):
        paired_bootstrap(strong, weak[:-1], 10)


def test_resamples_without_both_labels_are_left_out():
    frames = _frames(seed=7, n_anomalous=1, n_normal=3)
    r = bootstrap(frames, 200, seed=0)
    assert 0 < r.n_valid < 200 and "left out" in r.notes[0]
