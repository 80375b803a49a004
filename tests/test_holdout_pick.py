"""train.holdout_pick: which normal videos a run holds out (vadpipe/novelty.py, vadpipe/run_split.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from feature_world import make_store
from vadpipe.data import open_features
from vadpipe.errors import ConfigError
from vadpipe.novelty import novelty_of, snippets_per_video, unit_snippets, video_novelty
from vadpipe.presets import apply_overrides, partner_config, preset
from vadpipe.run_split import draw_split, share_split


def test_unit_snippets_average_the_views_keep_evenly_spaced_ones_and_scale_to_unit_length():
    x = np.zeros((5, 2, 3), dtype=np.float32)
    x[:, 0, 0], x[:, 1, 0] = np.arange(1, 6), np.arange(1, 6) + 2     # views average to t + 2 on axis 0
    x[3] = 0                                                           # an all-zero snippet stays zero
    out = unit_snippets(x, 10)
    assert out.dtype == np.float64 and out.shape == (5, 3)
    np.testing.assert_allclose(out[:, 0], [1, 1, 1, 0, 1])
    kept = unit_snippets(np.arange(7, dtype=np.float32)[:, None, None] * np.ones((1, 1, 2)), 3)
    assert kept.shape == (3, 2)                                        # snippets 0, 3 and 6


def test_novelty_is_one_minus_the_best_cosine_to_another_video_never_to_itself():
    e = np.eye(3)
    units = [e[[0, 1]], e[[0]], e[[1, 2]]]       # a: x y; b: x; c: y z
    np.testing.assert_allclose(novelty_of(units), [0.0, 0.0, 0.5])   # z is in no other video
    np.testing.assert_allclose(novelty_of([e[[0]], e[[0]]]), [0.0, 0.0])
    np.testing.assert_allclose(novelty_of([e[[2]], e[[0]]]), [1.0, 1.0])
    assert novelty_of([e[[0]]]).tolist() == [0.0]                     # nothing to compare with


def test_the_snippet_budget_keeps_every_snippet_when_they_fit_and_cuts_only_the_long_videos():
    assert snippets_per_video([13] * 17, 16384) == 13
    assert snippets_per_video([2, 10, 10], 12) == 5          # 2 + 5 + 5
    assert snippets_per_video([2, 10, 10], 13) == 5          # 6 would make 14
    assert snippets_per_video([4, 4, 4], 2) == 1             # at least one a video
    videos = [SimpleNamespace(raw=lambda t=t: np.ones((t, 1, 2)), load=lambda t=t: np.ones((t, 1, 2)))
              for t in (3, 50)]
    assert video_novelty(videos, budget=10).tolist() == [0.0, 0.0]


def _labels_and_novelty():
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    novelty = np.full(labels.size, np.nan)
    novelty[labels == 0] = [0.5, 0.1, 0.4, 0.2, 0.9, 0.1, 0.3]    # positions 1 2 4 5 6 8 9
    return labels, novelty


def test_typical_holds_out_as_many_normal_videos_as_a_seed_would_the_least_novel_whatever_the_seed():
    labels, novelty = _labels_and_novelty()
    t = preset("default").train                                     # 30 % of the normals: 2 of 7
    assert t.holdout_pick == "random"
    t.holdout_pick = "typical"
    for seed in range(4):
        train, held = share_split(t, labels, seed, novelty)
        assert held.tolist() == [2, 8]                               # novelty 0.1 and 0.1 (ties by position)
        assert sorted(train.tolist() + held.tolist()) == list(range(labels.size))
    t.holdout = "both"                                              # anomalous videos still drawn by the seed
    t.holdout_pick = "random"
    random_held = [share_split(t, labels, seed)[1] for seed in range(4)]
    t.holdout_pick = "typical"
    for seed, plain in enumerate(random_held):
        held = share_split(t, labels, seed, novelty)[1]
        assert held[labels[held] == 1].tolist() == plain[labels[plain] == 1].tolist()
        assert held[labels[held] == 0].tolist() == [2, 8][:int(np.sum(labels[plain] == 0))]
    with pytest.raises(ValueError, match="novelty"):
        share_split(t, labels, 0)


def test_a_typical_run_keeps_the_unusual_normal_video_in_training_and_says_so(tmp_path):
    """Generated features: one normal video is given a direction no other video has; with 6 of 12 normal
    videos held out it trains on every seed (at random, seeds hold it out), and the start of the run
    names the rule; a partner head shares it."""
    make_store(tmp_path / "f", 4, 12, dim=8, t_range=(6, 10))
    data = open_features(tmp_path / "f")
    odd = int(np.flatnonzero(data.labels() == 0)[3])
    unusual = data.videos[odd].load()
    unusual[..., 0] += 50.0
    data.videos[odd].load = lambda: unusual.copy()
    cfg = apply_overrides(preset("default"), ["train.val_fraction=0.5", "train.holdout_pick=random"])
    t, m = cfg.train, cfg.model
    random_held = [draw_split(t, m, data, lambda msg: None).held_idx for t.seed in range(6)]
    assert any(odd in held for held in random_held)
    t.holdout_pick = "typical"
    said = []
    typical_held = [draw_split(t, m, data, said.append).held_idx for t.seed in range(6)]
    assert all(odd not in held and held.tolist() == typical_held[0].tolist() for held in typical_held)
    assert len(typical_held[0]) == 6 and np.all(data.labels()[typical_held[0]] == 0)
    assert any("least novel normal videos (train.holdout_pick typical)" in line for line in said)
    assert partner_config(apply_overrides(cfg, ["model.partner=rtfm"])).train.holdout_pick == "typical"


def test_holdout_pick_is_checked_by_name_and_bagged_members_draw_their_own_shares(tmp_path):
    with pytest.raises(ConfigError, match="train.holdout_pick must be 'random' or 'typical'"):
        apply_overrides(preset("default"), ["train.holdout_pick=least"])
    make_store(tmp_path / "f", 4, 12, dim=8, t_range=(6, 10))
    data = open_features(tmp_path / "f")
    cfg = apply_overrides(preset("default"), ["model.bagging=true", "model.members=3", "train.holdout_pick=typical"])
    said = []
    typical = draw_split(cfg.train, cfg.model, data, said.append)
    cfg.train.holdout_pick = "random"
    drawn = draw_split(cfg.train, cfg.model, data, lambda msg: None)
    assert all(np.array_equal(a, b) for a, b in zip(typical.member_held, drawn.member_held))
    assert any("each bagged member draws its own with its seed" in line for line in said)
