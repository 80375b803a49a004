"""The localisation switches (issue 12): local H, gated GS, real-length bags, per-video k, dense
normal loss, label smoothing, crop reduction and smoothing at test time, data-led schedule, and
the default preset finding a planted short event inside its video."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from feature_world import make_store
from vadpipe.calibration import CROSS_FITTED
from vadpipe.checkpoint import ScoringRule, build_model, read_checkpoint, score_features
from vadpipe.config import LossConfig, model_config_from_dict, validate
from vadpipe.presets import apply_overrides, preset
from vadpipe.data import pad_windows
from vadpipe.errors import ConfigError
from vadpipe.evaluate import evaluate_run
from vadpipe.models.losses import compute_losses, k_per_row
from vadpipe.models.ltgs import LTGS, temporal_relation_matrix
from vadpipe.train import resume, train
from vadpipe.train_plan import planned_iterations

torch.set_num_threads(1)


def test_local_horizon_matrix_is_zero_beyond_the_window_and_independent_of_length():
    h = temporal_relation_matrix(torch.tensor([10, 6]), 10, horizon=3)
    assert h.shape == (2, 10, 10)
    assert h[0, 0, 0] == 1 and h[0, 0, 1] == pytest.approx(math.cos(math.pi / 6))
    assert h[0, 0, 3] == 0 and h[0, 0, 9] == 0
    assert torch.equal(h[1, :6, :6], h[0, :6, :6])          # the window, not the video, sets the decay
    assert (h[1, 6:, :] == 1).all()                          # padding stays finite under log
    article = temporal_relation_matrix(torch.tensor([10]), 10)
    assert article[0, 0, 9] == pytest.approx(math.cos(math.pi * 9 / 20))


def test_horizon_cap_keeps_the_article_matrix_in_short_videos_and_a_window_in_long_ones():
    lengths = torch.tensor([12, 5])
    capped = temporal_relation_matrix(lengths, 12, horizon_cap=6)
    article = temporal_relation_matrix(lengths, 12)
    assert torch.equal(capped[1], article[1])                # T = 5 <= 6: bit-identical
    assert torch.equal(capped[0], temporal_relation_matrix(torch.tensor([12]), 12, horizon=6)[0])
    assert capped[0, 0, 5] == pytest.approx(math.cos(math.pi * 5 / 12)) and capped[0, 0, 6] == 0
    x, mask = torch.rand(1, 5, 16), torch.ones(1, 5, dtype=torch.bool)
    torch.manual_seed(0)
    plain = LTGS(feature_dim=16, heads=2, ffn_dim=32).eval()
    torch.manual_seed(0)
    cap = LTGS(feature_dim=16, heads=2, ffn_dim=32, horizon_cap=8).eval()
    assert torch.equal(plain(x, mask).scores, cap(x, mask).scores)
    both = temporal_relation_matrix(lengths, 12, horizon=3, horizon_cap=6)   # a window of 3 past the cap
    assert torch.equal(both[1], article[1])
    assert torch.equal(both[0], temporal_relation_matrix(torch.tensor([12]), 12, horizon=3)[0])
    assert both[0, 0, 2] > 0 and both[0, 0, 3] == 0
    cfg = preset("default")
    cfg.model.horizon, cfg.model.horizon_cap = 3, 8
    validate(cfg)
    cfg.model.horizon_cap = -1
    with pytest.raises(ConfigError, match="horizon_cap"):
        validate(cfg)


def test_horizon_floor_attenuates_far_segments_of_windowed_videos_instead_of_cutting_them():
    lengths = torch.tensor([40, 10])
    cut = temporal_relation_matrix(lengths, 40, horizon=5, horizon_cap=32)
    floored = temporal_relation_matrix(lengths, 40, horizon=5, horizon_cap=32, horizon_floor=0.05)
    assert torch.equal(floored[1], cut[1])                   # T = 10 <= cap: the article's H, untouched
    assert cut[0, 0, 5] == 0 and (floored[0, 0, 5:] == 0.05).all()
    near = cut[0] >= 0.05
    assert torch.equal(floored[0][near], cut[0][near])       # inside the window: the same decay
    cfg = preset("default")
    cfg.model.horizon, cfg.model.horizon_cap, cfg.model.horizon_floor = 5, 32, 1.0
    with pytest.raises(ConfigError, match="horizon_floor"):
        validate(cfg)
    cfg.model.horizon, cfg.model.horizon_cap, cfg.model.horizon_share, cfg.model.horizon_floor = 0, 0, 0, 0.05
    with pytest.raises(ConfigError, match="needs a window"):       # a floor on the whole-video H: a no-op
        validate(cfg)


@pytest.mark.parametrize("reading", ["reweight", "literal"])
def test_horizon_share_gives_the_window_to_some_heads_and_the_whole_video_to_the_rest(reading):
    from vadpipe.models.ltgs import TemporalAttention

    torch.manual_seed(0)
    attn = TemporalAttention(8, heads=4, dropout=0.0, reading=reading).eval()
    x, mask = torch.randn(2, 12, 8), torch.tensor([[True] * 12, [True] * 9 + [False] * 3])
    lengths = mask.sum(1)
    window, whole = (temporal_relation_matrix(lengths, 12, horizon=3), temporal_relation_matrix(lengths, 12))
    got = attn(x, window, mask, h_rest=whole, split=1)
    # by hand: per head softmax(QK^T/sqrt(dk) (+ log H | * H)) V with head 0 under the window, 1-3 the whole
    q, k, v = attn.in_proj(x).view(2, 12, 3, 4, 2).permute(2, 0, 3, 1, 4)
    h = torch.stack([window] + [whole] * 3, dim=1)
    s = q @ k.transpose(-2, -1)
    s = (s / math.sqrt(2) + torch.log(h)) if reading == "reweight" else s * h / math.sqrt(2)
    s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    want = attn.out_proj((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(2, 12, 8))
    assert torch.allclose(got[mask], want[mask], atol=1e-5)


def test_horizon_share_leaves_videos_within_the_cap_bit_identical_in_training_too():
    from vadpipe.models.ltgs import windowed_heads

    def head(**kw):
        torch.manual_seed(3)
        return LTGS(feature_dim=16, heads=4, ffn_dim=32, horizon=3, horizon_cap=8, **kw).train()

    x, long = torch.rand(2, 8, 16), torch.rand(1, 12, 16)
    plain, split = head(), head(horizon_share=0.5)
    torch.manual_seed(5)
    a = plain(x).scores
    torch.manual_seed(5)
    b = split(x).scores
    assert torch.equal(a, b)                                  # no video past the cap: the same call, same dropout
    assert not torch.allclose(plain.eval()(long).scores, split.eval()(long).scores)   # past it: heads differ
    assert [windowed_heads(h, 0.5) for h in (1, 2, 4, 16)] == [0, 1, 2, 8]   # one head: no split
    assert windowed_heads(16, 0.01) == 1 and windowed_heads(16, 0.99) == 15 and windowed_heads(16, 0) == 0
    cfg = preset("default")
    assert (cfg.model.horizon, cfg.model.horizon_cap, cfg.model.horizon_share) == (5, 32, 0.5)
    cfg.model.heads = 1                                       # any head count takes the default
    validate(cfg)
    cfg.model.horizon_cap = 0
    for share, window in ((0.5, 0), (1.0, 5), (0.0, 5)):
        cfg.model.horizon_share, cfg.model.horizon = share, window
        if share == 0.0:
            validate(cfg)
        else:
            with pytest.raises(ConfigError, match="horizon_share"):
                validate(cfg)


def test_gated_global_vector_starts_closed_so_each_segment_scores_on_its_own():
    torch.manual_seed(0)
    head = LTGS(feature_dim=16, heads=2, ffn_dim=32, use_lt=False, gs="full", gs_gate=True).eval()
    x = torch.rand(1, 8, 16)
    y = x.clone()
    y[0, 5:] += 3.0                                          # other segments change g, not segment 0
    a, b = head(x).scores, head(y).scores
    assert torch.allclose(a[0, :5], b[0, :5])
    with torch.no_grad():
        head.gs_gate.fill_(1.0)
    assert not torch.allclose(head(x).scores[0, :5], head(y).scores[0, :5])
    # the article's head (no gate) has no such parameter: its weights are unchanged
    assert not any("gs_gate" in k for k in LTGS(16, heads=2, ffn_dim=32).state_dict())


def test_context_starts_as_the_head_without_it_then_mixes_only_a_segments_neighbours():
    torch.manual_seed(0)
    with_ctx = LTGS(feature_dim=16, heads=2, ffn_dim=32, use_lt=False, gs="none", context=3).eval()
    torch.manual_seed(0)
    plain = LTGS(feature_dim=16, heads=2, ffn_dim=32, use_lt=False, gs="none").eval()
    x = torch.rand(2, 8, 16)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    assert torch.equal(with_ctx(x, mask).scores, plain(x, mask).scores)   # zero at the start, same other weights
    with torch.no_grad():
        with_ctx.context.weight.normal_()
    y = x.clone()
    y[:, 4] += 1.0                                           # segment 4 changes: only 3..5 may move (no LT, no GS)
    a, b = with_ctx(x, mask).scores, with_ctx(y, mask).scores
    moved = (a - b).abs() > 1e-7
    assert moved[0, 3:6].all() and not moved[0, :3].any() and not moved[0, 6:].any()
    assert (with_ctx(y, mask).scores[1, 5:] == 0).all()      # padding stays out
    cfg = preset("default")
    cfg.model.context = 2
    from vadpipe.config import validate
    with pytest.raises(ConfigError, match="model.context"):
        validate(cfg)


def test_k_follows_each_videos_real_length():
    mask = torch.zeros(3, 40, dtype=torch.bool)
    for i, n in enumerate((40, 10, 1)):
        mask[i, :n] = True
    assert k_per_row(mask, 3, 40, 3, 0.1, "cpu").tolist() == [4, 1, 1]
    assert k_per_row(mask, 3, 40, 3, 0.0, "cpu").tolist() == [3, 3, 1]


def _loss_cfg(**kw) -> LossConfig:
    cfg = LossConfig(w_mag=0.0, w_rank=0.0, w_sparse=0.0, w_smooth=0.0, cls_target="video-mean", topk_by="score")
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_dense_normal_loss_and_label_smoothing():
    scores = torch.full((2, 6), 0.5)
    scores[1, 0] = 0.9                                       # the normal row: one high segment
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    targets = torch.zeros(2, 6)
    plain = compute_losses(scores, None, 1, targets, _loss_cfg(k_share=0.2), mask)
    assert "normal" not in plain
    dense = compute_losses(scores, None, 1, targets, _loss_cfg(k_share=0.2, w_normal=1.0), mask)
    expected = -np.mean(np.log([0.1, 0.5, 0.5, 0.5]))        # the 4 real segments of the normal row
    assert float(dense["normal"]) == pytest.approx(expected, rel=1e-5)
    assert float(dense["total"]) == pytest.approx(float(plain["total"]) + expected, rel=1e-5)
    # smoothing: a perfect prediction still costs something, and the optimum is eps/2, not 0
    eps = 0.2
    sharp = torch.tensor([[0.999] * 4, [0.001] * 4])
    smoothed = compute_losses(sharp, None, 1, torch.zeros(2, 4), _loss_cfg(label_smoothing=eps))
    unsmoothed = compute_losses(sharp, None, 1, torch.zeros(2, 4), _loss_cfg())
    assert float(smoothed["cls"]) > float(unsmoothed["cls"]) + 0.1


def test_pad_windows_masks_and_crops_long_videos_deterministically():
    rows = [np.ones((5, 3)), np.arange(30, dtype=float).reshape(10, 3)]
    x, mask = pad_windows(rows, 8, seed=0, iteration=3)
    assert x.shape == (2, 8, 3) and mask.sum(1).tolist() == [5, 8]
    assert (x[0, 5:] == 0).all()
    start = int(x[1, 0, 0]) // 3
    assert np.array_equal(x[1], rows[1][start:start + 8])
    again, _ = pad_windows(rows, 8, seed=0, iteration=3)
    assert np.array_equal(x, again)


def test_scoring_rule_reduces_crops_and_smooths():
    per_crop = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.4]])
    assert ScoringRule("max").combine(per_crop).tolist() == pytest.approx([0.0, 1.0, 0.0, 0.4])
    assert ScoringRule("mean").combine(per_crop).tolist() == pytest.approx([0.0, 0.5, 0.0, 0.2])
    smoothed = ScoringRule("max", 3).combine(per_crop)
    assert smoothed.tolist() == pytest.approx([0.5, 1 / 3, 1.4 / 3, 0.2])   # ends average what exists
    cfg = preset("default").model
    cfg.feature_dim, cfg.heads, cfg.ffn_dim, cfg.crop_reduce = 8, 2, 16, "max"
    model = build_model(cfg)
    assert model.scoring_rule == ScoringRule("max", 1, "linear", 0.03)  # the default interpolates frames, smooths long videos
    assert score_features(model, np.random.rand(5, 3, 8)).shape == (5,)


def test_smoothing_width_follows_the_video_length_and_never_outgrows_it():
    rule = ScoringRule(smooth_share=0.03)
    assert [rule.window(t) for t in (13, 22, 50, 100, 400)] == [1, 1, 3, 5, 13]   # short clips untouched
    spike = np.zeros((1, 200))
    spike[0, 100] = 1.0
    out = rule.combine(spike)                                  # width 1 + 2 round(0.03 * 200 / 2) = 7
    assert out.shape == (200,) and out[97:104].tolist() == pytest.approx([1 / 7] * 7) and out.sum() == pytest.approx(1)
    assert ScoringRule(smooth_window=9, smooth_share=0.03).window(100) == 9     # the fixed window is a floor
    for t in (1, 2, 3):                                      # wider than the video: clamped to it, same length
        scores = ScoringRule(smooth_window=5).combine(np.arange(t, dtype=float)[None])
        assert scores.shape == (t,) and scores.mean() == pytest.approx(np.arange(t).mean())
    cfg = preset("default")
    cfg.model.smooth_share = 1.0
    with pytest.raises(ConfigError, match="smooth_share"):
        validate(cfg)
    assert model_config_from_dict({"smooth_window": 3}).smooth_share == 0.0      # configs from before read 0


def test_schedule_follows_the_data_within_bounds():
    t = preset("default").train
    t.epochs, t.min_iterations, t.iterations, t.batch_anomalous = 60, 100, 30000, 16
    assert planned_iterations(t, 18) == 120                 # 2 batches an epoch
    assert planned_iterations(t, 4) == 100                  # at least min_iterations
    assert planned_iterations(t, 8000) == 30000             # at most the cap
    assert planned_iterations(preset("paper").train, 18) == 30000   # the article keeps its schedule


def test_real_bags_refuse_the_dynamic_label_table():
    cfg = preset("default")
    cfg.train.dynamic = "soft"
    from vadpipe.config import validate
    with pytest.raises(ConfigError, match="dynamic"):
        validate(cfg)


def _default_small(features, **train):
    cfg = preset("default")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    t = cfg.train
    t.features, t.device, t.eval_every, t.log_every = str(features), "cpu", 20, 5
    for k, v in train.items():
        setattr(t, k, v)
    return cfg


def test_default_head_finds_a_planted_short_event_inside_its_video(tmp_path):
    make_store(tmp_path / "train", 16, 16, dim=32, seed=0, signal=0.8, t_range=(20, 80))
    make_store(tmp_path / "test", 8, 8, dim=32, seed=1, signal=0.8, t_range=(20, 80))
    result = train(_default_small(tmp_path / "train", lr=1e-3, epochs=0, iterations=150), out=tmp_path / "run",
                   progress=False)
    res, _ = evaluate_run(result.run_dir, tmp_path / "test", tmp_path / "test" / "gt.json", device="cpu",
                          progress=False)
    assert res.metrics["auc_anomalous_videos"] > 0.8, res.summary()
    assert res.metrics["auc"] > 0.85, res.summary()
    ckpt = read_checkpoint(result.run_dir, "best")
    assert ckpt["model_config"]["gs_gate"] is True and ckpt["train_config"]["bags"] == "real"
    assert ckpt["calibration"]["source"] == CROSS_FITTED


@pytest.mark.parametrize("bags,topk_by", [("real", "score"), ("real", "fused"), ("resample", "distance")])
def test_resume_with_real_or_distance_chosen_bags_equals_uninterrupted(tmp_path, bags, topk_by):
    make_store(tmp_path / "f", 6, 6, dim=16, seed=3, t_range=(5, 300))   # windows of long videos too
    kw = dict(epochs=0, eval_every=4, log_every=2, max_segments=64, batch_anomalous=3, batch_normal=3)

    def cfg(iterations):
        c = _default_small(tmp_path / "f", iterations=iterations, **kw)
        c.train.bags = bags
        c.train.loss.topk_by = topk_by           # the priors ride with the windows and crops and are recomputed
        return c

    full = train(cfg(12), out=tmp_path / "full", progress=False)
    part = train(cfg(8), out=tmp_path / "part", progress=False)
    resume(part.run_dir, iterations=12, progress=False)
    a, b = read_checkpoint(full.run_dir, "last"), read_checkpoint(part.run_dir, "last")
    assert a["iteration"] == b["iteration"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_region_recipe_keeps_old_ids_and_encodes_a_grid():
    from vadpipe.encode import SnippetEncoder, build_recipe
    from vadpipe.extractors import create_backbone
    from vadpipe.recipe import Recipe

    bb = create_backbone("i3d-inception", weights="random")
    plain = build_recipe(bb, "frame", short_side=64)
    grid = build_recipe(bb, "frame", short_side=64, regions="2x3")
    assert "regions" not in plain._feature_fields() and plain.num_crops == 1
    assert grid.num_crops == 6 and grid.input_crops == 1 and grid.recipe_id != plain.recipe_id
    assert Recipe.from_dict(grid.to_dict()) == grid
    clips = torch.randint(0, 255, (2, 16, 64, 96, 3), dtype=torch.uint8)
    regions = SnippetEncoder(bb, grid, "cpu", 1)([clips])
    whole = SnippetEncoder(bb, plain, "cpu", 1)([clips])
    assert regions.shape == (2, 6, 1024)
    # 2 x 3 cells tile the 2 x 3 map exactly: their mean is the global mean
    assert np.allclose(regions.mean(1), whole[:, 0], atol=1e-5)
    with pytest.raises(ConfigError, match="regions"):
        build_recipe(bb, "frame", short_side=64, regions="2by3")


def test_max_over_crops_keeps_each_segments_best_crop():
    from vadpipe.train_step import max_over_crops

    scores = torch.tensor([[0.1, 0.9], [0.5, 0.2], [0.0, 0.0], [0.3, 0.4]])   # 2 videos x 2 crops
    feats = torch.arange(16, dtype=torch.float32).view(4, 2, 2)
    prior = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    s, f, m, p = max_over_crops(scores, feats, torch.ones(4, 2, dtype=torch.bool), 2, prior)
    assert torch.allclose(s, torch.tensor([[0.5, 0.9], [0.3, 0.4]]))
    assert f[0, 0].tolist() == feats[1, 0].tolist() and f[0, 1].tolist() == feats[0, 1].tolist()
    assert m.shape == (2, 2)
    assert p.tolist() == [[3.0, 2.0], [7.0, 8.0]]              # the best crop's prior, not the largest prior
    assert max_over_crops(scores, feats, None, 2)[3] is None


def test_normal_statistics_are_fitted_on_training_normals_and_raise_unlike_segments(tmp_path):
    from vadpipe.checkpoint import load_checkpoint
    from vadpipe.models.normal_stats import NormalStats

    stats = NormalStats(4, weight=1.0)
    p = torch.full((3,), 0.3)
    assert torch.equal(stats.fuse(p, torch.zeros(3, 4)), p)            # identity until fitted
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(500, 4, generator=gen)
    stats.fit(normal, torch.full((500,), 0.2) + 0.05 * torch.rand(500, generator=gen))
    far, near = torch.full((1, 4), 6.0), torch.zeros(1, 4)
    assert stats.fuse(torch.tensor([0.2]), far) > stats.fuse(torch.tensor([0.2]), near)
    # in training: fitted at the end, saved in the checkpoint, loaded back with weights_only
    make_store(tmp_path / "f", 6, 6, dim=16, seed=3, t_range=(5, 40))
    result = train(_default_small(tmp_path / "f", epochs=0, iterations=6), out=tmp_path / "run", progress=False)
    model, ckpt = load_checkpoint(result.run_dir, "cpu")
    assert model.normal_stats.fitted and ckpt.model_config.normal_weight == 0.5
    assert ckpt.model_config.normal_features == "l2" and model.normal_stats.features == "l2"
    assert ckpt.calibration["source"] == CROSS_FITTED
    # and the scene check's bound beside them: each normal training video's quietest tenth, held out
    assert ckpt.scene["videos"] == 6 and ckpt.scene["quiet_share"] == 0.1
    assert np.isfinite(ckpt.scene["bound"]) and ckpt.scene["bound"] >= ckpt.scene["median"]


def test_l2_normal_statistics_ignore_the_whole_vectors_magnitude():
    """model.normal_features = l2: a benign burst (the whole feature vector scaled up) is not "unlike
    normal", while a change of direction still is; raw features flag both."""
    from vadpipe.models.normal_stats import NormalStats

    gen = torch.Generator().manual_seed(1)
    normal = torch.rand(400, 8, generator=gen) + 1.0
    scores = torch.full((400,), 0.2)
    raw, l2 = NormalStats(8, features="raw"), NormalStats(8, features="l2")
    raw.fit(normal, scores)
    l2.fit(normal, scores)
    x = normal[:5]
    burst = 2.5 * x
    turned = x.clone()
    turned[:, :4] *= 0.2
    assert torch.allclose(l2.distance(burst), l2.distance(x), atol=1e-4)
    assert (raw.distance(burst) > raw.distance(x) + 1).all()
    assert (l2.distance(turned) > l2.distance(x) + 1).all()
    with pytest.raises(ValueError, match="normal statistics features"):
        NormalStats(8, features="cosine")
    cfg = preset("default")
    cfg.model.normal_features = "cosine"
    from vadpipe.config import validate

    with pytest.raises(ConfigError, match="model.normal_features"):
        validate(cfg)
    cfg.model.normal_features = "l2"
    assert build_model(cfg.model).normal_stats.features == "l2"     # a checkpoint's config rebuilds it


def test_held_out_standardisation_puts_new_normal_video_near_z_0():
    """model.normal_standardise = held-out: a Gaussian in D dimensions fitted on a few hundred snippets
    lies far closer to them than to new normal snippets, so the fitted snippets' own distances put every
    new normal snippet many of their sds above 0 (and its score near 1); each video's distance to a
    Gaussian fitted without it (5 folds by video) is what new normal video gives. The Gaussian itself is
    the same either way, and a single video has nothing to hold out (its own distances, as "fit")."""
    from vadpipe.config import validate
    from vadpipe.models.normal_stats import NormalStats

    gen = torch.Generator().manual_seed(4)
    videos = [torch.randn(8, 128, generator=gen) for _ in range(10)]        # 80 snippets in 128-d
    scores = [torch.full((8,), 0.2) for _ in videos]
    fit, held = NormalStats(128), NormalStats(128, standardise="held-out")
    fit.fit(videos, scores)
    held.fit(videos, scores)
    assert torch.equal(fit.precision, held.precision) and torch.equal(fit.mean, held.mean)
    new = torch.randn(600, 128, generator=gen)

    def z(stats):
        return ((stats.distance(new) - stats.scale[0]) / stats.scale[1]).mean()

    assert z(fit) > 10 and abs(z(held)) < 1                              # 15.9 and -0.4 here
    one_fit, one_held = NormalStats(128), NormalStats(128, standardise="held-out")
    one_fit.fit(videos[:1], scores[:1])
    one_held.fit(videos[:1], scores[:1])
    assert torch.equal(one_fit.scale, one_held.scale)
    with pytest.raises(ValueError, match="standardise"):
        NormalStats(8, standardise="loo")
    cfg = preset("default")
    cfg.model.normal_standardise = "loo"
    with pytest.raises(ConfigError, match="model.normal_standardise"):
        validate(cfg)


def test_normal_statistics_with_context_see_a_change_over_neighbouring_segments(tmp_path):
    """model.normal_context K: the Gaussian sees each segment with its K-1 neighbours (projected on the
    normals' principal directions, edges repeated, padding never reached), so a segment that is normal
    on its own but follows an unusual one is "unlike normal"; a run with it trains, saves and loads
    weights-only."""
    from vadpipe.checkpoint import head_scores, load_checkpoint
    from vadpipe.models.normal_stats import NormalStats

    gen = torch.Generator().manual_seed(2)
    # normal videos hold still: each its own point (any normal point) with small noise
    still = torch.randn(30, 1, 6, generator=gen) + 0.02 * torch.randn(30, 12, 6, generator=gen)
    scores = torch.full((30, 12), 0.2)
    alone = NormalStats(6, shrinkage=0.05)
    ctx = NormalStats(6, shrinkage=0.05, context=3, rank=4)
    alone.fit(list(still), list(scores))
    ctx.fit(list(still), list(scores))
    assert ctx.precision.shape == (12, 12) and ctx.basis.shape == (4, 6)
    video = still[0].clone()
    video[6] = still[1, 0]          # a jump to another normal point: normal alone, not as a change
    assert ((ctx.distance(video) - ctx.distance(still[0]))[5:8] > 3).all()
    assert (alone.distance(video) - alone.distance(still[0]))[6].abs() < 1.5
    # edges repeat the video's own first/last segment; padding (mask False) is never a neighbour
    emb = ctx.embed(still[0])
    assert torch.equal(emb[0, :4], emb[0, 4:8]) and torch.equal(emb[-1, 4:8], emb[-1, 8:])
    padded = torch.cat([still[0], torch.full((5, 6), 50.0)])[None]
    mask = torch.arange(17)[None] < 12
    assert torch.allclose(ctx.distance(padded, mask)[0, :12], ctx.distance(still[0]), atol=1e-5)
    with pytest.raises(ValueError, match="odd context"):
        NormalStats(6, context=2)
    cfg = preset("default")
    cfg.model.normal_context = 4
    with pytest.raises(ConfigError, match="model.normal_context"):
        validate(cfg)
    # trained: fitted after training, carried by the checkpoint; padded batches score as one video alone
    make_store(tmp_path / "f", 6, 6, dim=16, seed=3, t_range=(5, 40))
    cfg = _default_small(tmp_path / "f", epochs=0, iterations=6)
    cfg.model.normal_context, cfg.model.normal_rank = 3, 8
    result = train(cfg, out=tmp_path / "run", progress=False)
    model, ckpt = load_checkpoint(result.run_dir, "cpu")
    assert model.normal_stats.fitted and model.normal_stats.context == 3 and ckpt.model_config.normal_context == 3
    model.eval()
    x = torch.rand(2, 9, 16)
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    with torch.no_grad():
        assert torch.allclose(head_scores(model, x, mask)[1, :4], head_scores(model, x[1:, :4])[0], atol=1e-5)


def test_attention_dropout_is_its_own_switch_and_defaults_to_the_articles_single_rate():
    """model.attn_dropout: None keeps the article's one rate (lt_dropout) on the attention weights too,
    so old configs and checkpoints build the same head; a number sets the attention weights alone."""
    from vadpipe.config import model_config_from_dict, validate

    article = LTGS(16, heads=2, ffn_dim=32, lt_dropout=0.2)
    assert article.lt.attn.dropout == 0.2 and article.lt.drop1.p == 0.2
    apart = LTGS(16, heads=2, ffn_dim=32, lt_dropout=0.2, attn_dropout=0.0)
    assert apart.lt.attn.dropout == 0.0 and apart.lt.drop1.p == 0.2 and apart.lt.ffn[2].p == 0.2
    torch.manual_seed(0)
    x = torch.rand(2, 6, 16)
    apart.train()
    with torch.no_grad():                       # the weights still see dropout elsewhere: training differs
        apart.lt.drop1.p = apart.lt.drop2.p = apart.lt.ffn[2].p = 0.0
        apart.classifier.net[2].p = apart.classifier.net[5].p = 0.0
        assert torch.equal(apart(x).features, apart(x).features)   # no random attention mask left
    cfg = preset("default")
    cfg.model.attn_dropout = 1.0
    with pytest.raises(ConfigError, match="model.attn_dropout"):
        validate(cfg)
    old = {k: v for k, v in vars(preset("paper").model).items() if k != "attn_dropout"}
    assert model_config_from_dict(old).attn_dropout is None          # a checkpoint before the switch


def test_linear_frame_scores_travel_from_the_config_to_score_eval_and_calibration(tmp_path):
    """model.frame_scores: the head's scoring rule carries it; `vadpipe score` writes interpolated frames,
    a score set records it in index.json and evaluation reads it back; calibration uses it; checkpoints
    and score sets from before the switch hold."""
    from types import SimpleNamespace

    from vadpipe.calibration import calibrate
    from vadpipe.checkpoint import Checkpoint
    from vadpipe.config import ModelConfig, model_config_from_dict, validate
    from vadpipe.evaluate import ScoreSet, evaluate_score_set, read_scores, write_scores
    from vadpipe.groundtruth import VideoGT
    from vadpipe.intervals import snippets_to_frames
    from vadpipe.score import ScoreOptions, run_score
    from vadpipe.score_io import read_scores_csv

    feats = tmp_path / "clip.npy"
    np.save(feats, np.random.default_rng(0).random((6, 1, 16), dtype=np.float32))
    csv = {}
    for mode in ("hold", "linear"):
        torch.manual_seed(0)
        config = ModelConfig(feature_dim=16, heads=2, ffn_dim=32, hidden=(8, 4), frame_scores=mode)
        model = build_model(config)
        assert model.scoring_rule.frame_scores == mode
        Checkpoint.of(model, config).save(tmp_path / f"{mode}.pt")
        assert run_score([str(feats)], checkpoint=str(tmp_path / f"{mode}.pt"), echo=lambda s: None,
                         options=ScoreOptions(out_dir=tmp_path / mode, threshold="0.5", fps=10.0,
                                              progress=False)) == 0
        csv[mode] = read_scores_csv(tmp_path / mode / "clip.scores.csv")[2]
    snippets = csv["hold"][::16]                              # the same head: held frames are its snippet scores
    assert csv["linear"] == pytest.approx(snippets_to_frames(snippets, 96, mode="linear"), abs=1e-5)
    assert not np.allclose(csv["linear"], csv["hold"])
    # a score set keeps its mode on disk; evaluation uses it
    gts = {"clip": VideoGT("clip", 96, [(20, 60)])}
    held = ScoreSet({"clip": snippets}, {"clip": 96})
    lin = ScoreSet({"clip": snippets}, {"clip": 96}, frame_mode="linear")
    write_scores(tmp_path / "scores", lin)
    assert read_scores(tmp_path / "scores").frame_mode == "linear"
    write_scores(tmp_path / "old", held)
    assert read_scores(tmp_path / "old").frame_mode == "hold"
    a_hold = evaluate_score_set(held, gts).metrics["auc"]
    a_lin = evaluate_score_set(read_scores(tmp_path / "scores"), gts).metrics["auc"]
    assert a_lin != a_hold
    # calibration quantiles come from the frames `vadpipe score` will produce
    video = SimpleNamespace(id="clip", frames=96)
    q = {m: calibrate({"clip": snippets}, [video], "test", (0.5,), 16, 16, m)["normal_frame_score_quantiles"]["0.5"]
         for m in ("hold", "linear")}
    assert q["linear"] == pytest.approx(np.quantile(csv["linear"], 0.5), abs=1e-5) and q["linear"] != q["hold"]
    # validation, defaults, old configs
    cfg = preset("default")
    cfg.model.frame_scores = "nearest"
    with pytest.raises(ConfigError, match="model.frame_scores"):
        validate(cfg)
    assert preset("paper").model.frame_scores == "hold"
    old = {k: v for k, v in vars(preset("paper").model).items() if k != "frame_scores"}
    assert model_config_from_dict(old).frame_scores == "hold"


def test_pseudo_labels_take_each_anomalous_videos_ends_and_every_normal_snippet():
    from vadpipe.models.pseudo_stage import pseudo_labels

    keep, y = pseudo_labels(np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.0]), True, 0.3)
    assert dict(zip(keep.tolist(), y.tolist())) == {1: 1, 4: 1, 6: 1, 0: 0, 3: 0, 9: 0}
    keep, y = pseudo_labels(np.array([0.9, 0.8, 0.7]), False, 0.3)
    assert keep.tolist() == [0, 1, 2] and not y.any()                   # normal: every snippet is 0
    keep, y = pseudo_labels(np.array([0.4]), True, 0.3)
    assert keep.tolist() == [0] and y.tolist() == [1]                   # one snippet: a positive only


def test_pseudo_stage_fuses_in_the_heads_units_weight_zero_gives_the_head_back_and_old_stages_keep_theirs():
    """Fused in the head's logit units: weight 0 returns the head's scores to the bit (a second squash
    used to change what test-time smoothing averages), the order is the standardised sum's, and no score
    reaches 0 or 1; a stage fitted with the earlier fusion (scale[4] = 1) scores as it did."""
    from vadpipe.models.normal_stats import logit, squashed_score
    from vadpipe.models.pseudo_stage import PseudoStage

    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(30, 8)).astype(np.float32) for _ in range(6)]
    head = [squashed_score(torch.from_numpy(rng.normal(0, 3, 30))).numpy() for _ in range(6)]
    stage = PseudoStage(8, weight=0.0, share=0.1)
    stage.fit(feats, head, [False, False, False, True, True, True], seed=0)
    x = torch.from_numpy(np.concatenate(feats))
    s = torch.from_numpy(np.concatenate(head)).float()
    assert torch.equal(stage.fuse(s, x), s)                              # weight 0: the head, bit for bit
    stage.weight = 1.0
    fused = stage.fuse(s, x)
    mu_h, sd_h, mu_s, sd_s = stage.scale[:4]
    z = (stage.stage_logit(x) - mu_s) / sd_s
    standardised = (logit(s) - mu_h) / sd_h + z
    assert (np.argsort(fused.numpy(), kind="stable") == np.argsort(standardised.numpy(), kind="stable")).mean() > 0.99
    extreme = stage.fuse(torch.tensor([1e-6, 1 - 1e-6]), x[:2] * 0 + stage.coef.sign() * 100)
    assert ((extreme > 0) & (extreme < 1)).all()                         # bounded: never 0 or 1
    stage.scale[4] = 1.0                                                 # a stage fitted before 2026-12-05
    assert torch.allclose(stage.fuse(s, x), squashed_score(standardised))


def test_pseudo_label_stage_is_fitted_after_training_on_the_training_split_and_saved(tmp_path):
    """model.pseudo_weight > 0: after training the stage is fitted (training videos only), travels in
    both checkpoints (weights_only), changes the scores without ties and the calibration follows it;
    off (weight 0) in the article's preset and in old configs."""
    from vadpipe.checkpoint import load_checkpoint
    from vadpipe.config import model_config_from_dict, validate

    make_store(tmp_path / "train", 8, 8, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    cfg = _default_small(tmp_path / "train", lr=1e-3, epochs=0, iterations=20)
    cfg.model.pseudo_weight = 1.0
    lines = []
    result = train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    feats = np.random.default_rng(0).random((12, 1, 16)).astype(np.float32)
    for which in ("best", "last"):
        raw = read_checkpoint(result.run_dir, which)                    # torch.load(weights_only=True)
        assert raw["model"]["pseudo_stage.scale"][4] == 2 and raw["model"]["pseudo_stage.coef"].abs().sum() > 0
    model, ckpt = load_checkpoint(result.run_dir / "best.pt", "cpu")
    with_stage = score_features(model, feats)
    model.pseudo_stage.scale[4] = 0                                     # the head and normal statistics alone
    without = score_features(model, feats)
    assert not np.allclose(with_stage, without) and ((with_stage > 0) & (with_stage < 1)).all()
    assert ckpt.calibration["source"] == CROSS_FITTED
    split = read_checkpoint(result.run_dir, "last")["last"]["split"]
    fits = [line for line in lines if line.startswith("pseudo-label stage")]
    assert split["val"] and len(fits) == 1                              # select last: fitted once for both
    # the training split and, with the default's model.terms_fit all, the held-out normal videos (here all of
    # the held-out ones: holdout normal); cross-fitted for calibration (tests/test_terms_fit.py)
    assert all(f"of {len(split['train']) + len(split['val'])} training videos" in line for line in fits)
    cfg.model.pseudo_share = 0.6
    with pytest.raises(ConfigError, match="pseudo_share"):
        validate(cfg)
    assert preset("paper").model.pseudo_weight == 0
    old = {k: v for k, v in vars(preset("paper").model).items() if not k.startswith("pseudo_")}
    assert model_config_from_dict(old).pseudo_weight == 0


def test_pseudo_unit_held_out_takes_the_stages_unit_from_the_held_out_normal_videos(tmp_path):
    """model.pseudo_unit = held-out: the same head and the same fitted stage as with "train", but its unit
    σ₁ is the fused logits' spread on the held-out normal videos that calibrate the threshold (the head was
    trained to push its training normals to one value); the checkpoint carries it."""
    from vadpipe.checkpoint import head_scores, load_checkpoint
    from vadpipe.data import open_features
    from vadpipe.fitted_terms import crop_rows
    from vadpipe.models.normal_stats import logit
    from vadpipe.models.pseudo_stage import PseudoStage

    make_store(tmp_path / "train", 8, 10, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    runs = {}
    for unit in ("train", "held-out"):
        cfg = _default_small(tmp_path / "train", lr=1e-3, epochs=0, iterations=20)
        cfg.model.pseudo_weight, cfg.model.pseudo_unit = 1.0, unit
        cfg.model.terms_fit = "train"          # held-out unit resolves to it: both runs fit the same stage
        lines = []
        runs[unit] = (train(cfg, out=tmp_path / unit, progress=False, log=lines.append), lines)
    (plain, _), (held, lines) = runs["train"], runs["held-out"]
    a, b = (load_checkpoint(run.run_dir / "last.pt", "cpu")[0] for run in (plain, held))
    assert torch.equal(a.pseudo_stage.coef, b.pseudo_stage.coef)          # the same stage, fitted alike
    assert torch.equal(a.pseudo_stage.scale[[0, 2, 3, 4]], b.pseudo_stage.scale[[0, 2, 3, 4]])
    split = read_checkpoint(held.run_dir, "last")["last"]["split"]
    normal = [v for v in open_features(tmp_path / "train").videos if v.id in set(split["val"]) and v.label == 0]
    b.pseudo_stage.scale[4] = 0                                            # ℓ: the stage left out
    with torch.no_grad():
        spread = torch.cat([logit(head_scores(b, crop_rows(v, torch.device("cpu")))).flatten() for v in normal]).std()
    assert normal and float(b.pseudo_stage.scale[1]) == pytest.approx(float(spread), rel=1e-5)
    assert float(b.pseudo_stage.scale[1]) != pytest.approx(float(a.pseudo_stage.scale[1]), rel=1e-3)
    assert sum(f"sd on {len(normal)} held-out normal videos" in line for line in lines) == 1   # select last: once
    cfg.train.val_fraction, lines = 0.0, []                              # nothing held out: the training unit, said
    whole = train(cfg, out=tmp_path / "whole", progress=False, log=lines.append)
    assert any("no held-out normal video to take its unit from" in line for line in lines)
    assert read_checkpoint(whole.run_dir, "last")["model"]["pseudo_stage.scale"][4] == 2
    cfg.model.pseudo_unit = "test"
    with pytest.raises(ConfigError, match="pseudo_unit"):
        validate(cfg)
    cfg.model.pseudo_unit, cfg.model.members, cfg.model.bagging = "held-out", 3, True
    with pytest.raises(ConfigError, match="pseudo_unit = held-out with model.bagging"):
        validate(cfg)
    with pytest.raises(ValueError, match="unit"):
        PseudoStage(8, unit="test")


def test_bottom_loss_pulls_the_lowest_share_of_each_anomalous_videos_real_segments_to_zero():
    scores = torch.tensor([[0.9, 0.2, 0.8, 0.4, 0.7, 0.6, 0.1, 0.3],     # anomalous, 8 real: floor(0.25·8) = 2 lowest
                           [0.9, 0.5, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0],     # anomalous, 3 real: at least 1; padding never
                           [0.6] * 8])                                    # normal: not touched by this term
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[1, 3:] = False
    plain = compute_losses(scores, None, 2, torch.zeros(3, 8), _loss_cfg(), mask)
    assert "bottom" not in plain
    cfg = _loss_cfg(w_bottom=2.0, bottom_share=0.25)
    out = compute_losses(scores, None, 2, torch.zeros(3, 8), cfg, mask)
    expected = -np.mean(np.log([0.9, 0.8, 0.7]))              # 0.1 and 0.2 of row 0, 0.3 of row 1
    assert float(out["bottom"]) == pytest.approx(expected, rel=1e-5)
    assert float(out["total"]) == pytest.approx(float(plain["total"]) + 2.0 * expected, rel=1e-5)
    smoothed = compute_losses(scores, None, 2, torch.zeros(3, 8), _loss_cfg(w_bottom=1.0, bottom_share=0.25,
                                                                            label_smoothing=0.2), mask)
    assert float(smoothed["bottom"]) > float(out["bottom"])      # targets 0.1, not 0
    prior = torch.tensor([[0.0, 5.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0], [9.0, 0.0, 1.0, 0, 0, 0, 0, 0], [0.0] * 8])
    by_prior = compute_losses(scores, None, 2, torch.zeros(3, 8), _loss_cfg(w_bottom=1.0, bottom_share=0.25,
                                                                            bottom_by="distance"), mask, prior)
    expected = -np.mean(np.log([0.1, 0.2, 0.5]))              # 0.9 and 0.8 of row 0 (priors 0, 1), 0.5 of row 1
    assert float(by_prior["bottom"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="prior"):
        compute_losses(scores, None, 2, torch.zeros(3, 8), _loss_cfg(w_bottom=1.0, bottom_by="distance"), mask)
    for bad in ("train.loss.w_bottom=-1", "train.loss.bottom_share=0", "train.loss.bottom_share=1"):
        with pytest.raises(ConfigError, match="bottom"):
            validate(apply_overrides(preset("default"), [bad]))


def test_topk_by_distance_takes_the_priors_top_segments_and_fused_adds_the_heads_logit():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.2], [0.3, 0.3, 0.3, 0.3]])   # anomalous row, then a normal one
    prior = torch.tensor([[0.0, -1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.zeros(2, 4)
    by_score = compute_losses(scores, None, 1, targets, _loss_cfg(k=2))
    by_prior = compute_losses(scores, None, 1, targets, _loss_cfg(k=2, topk_by="distance"), prior=prior)
    bce = lambda p, y: -math.log(p if y else 1 - p)                   # noqa: E731
    assert float(by_score["cls"]) == pytest.approx((bce(0.85, 1) + bce(0.3, 0)) / 2, rel=1e-5)
    assert float(by_prior["cls"]) == pytest.approx((bce(0.15, 1) + bce(0.3, 0)) / 2, rel=1e-5)   # 0.1 and 0.2
    # fused: logit(0.9) + 1·0 = 2.2 and logit(0.1) + 3 = 0.8 beat logit(0.8) - 1 = 0.39 and logit(0.2) + 2 = 0.61
    fused = compute_losses(scores, None, 1, targets, _loss_cfg(k=2, topk_by="fused"), prior=prior)
    assert float(fused["cls"]) == pytest.approx((bce(0.5, 1) + bce(0.3, 0)) / 2, rel=1e-5)
    heavy = compute_losses(scores, None, 1, targets, _loss_cfg(k=2, topk_by="fused", prior_weight=10.0), prior=prior)
    assert float(heavy["cls"]) == pytest.approx(float(by_prior["cls"]), rel=1e-5)
    with pytest.raises(ValueError, match="prior"):
        compute_losses(scores, None, 1, targets, _loss_cfg(topk_by="distance"))
    with pytest.raises(ConfigError, match="prior_weight"):
        validate(apply_overrides(preset("default"), ["train.loss.prior_weight=-1"]))


def test_dynamic_labels_update_at_the_segments_the_distance_chooses(tmp_path):
    """The article's dynamic labels (resampled bags) move the rows of the top-k the losses train on: with
    ``topk_by = distance``, the segments most unlike normal video, whatever the head scores there."""
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 6, 6, dim=16, crops=2, seed=2, t_range=(10, 40))
    cfg = preset("paper")
    cfg.model.heads, cfg.model.ffn_dim = 4, 32
    cfg.train.features, cfg.train.device, cfg.train.loss.topk_by = str(tmp_path / "f"), "cpu", "distance"
    trainer = _Trainer(cfg, tmp_path / "run", None, lambda m: None)
    trainer._update_labels()
    for v in trainer.anomalous:
        chosen = torch.from_numpy(trainer.priors[v]).mean(0).topk(cfg.train.loss.k).indices
        moved = set(np.flatnonzero(trainer.dyn.table[v].numpy() != 1.0).tolist())
        assert moved == set(chosen[1:].tolist()), (v, moved, chosen)   # the first stays 1 (Algorithm 1)


def test_selection_priors_are_standardised_distances_to_the_normal_training_snippets():
    from vadpipe.selection_prior import selection_priors

    rng = np.random.default_rng(0)
    normal = [rng.normal(size=(1, 40, 8)).astype(np.float32) * np.float32([0.01] + [1] * 7) for _ in range(3)]
    odd = rng.normal(size=(2, 10, 8)).astype(np.float32)
    odd[:, :, 0] = 0.0
    odd[:, 4] = np.float32([1] + [0] * 7)                # one snippet along the axis normal video never takes
    cfg = preset("default").model
    cfg.feature_dim = 8
    priors = selection_priors(cfg, normal + [odd], [0, 1, 2], seed=0, chunk=7)   # chunks split rows mid-video
    assert [p.shape for p in priors] == [(1, 40)] * 3 + [(2, 10)] and priors[0].dtype == np.float32
    pooled = np.concatenate([p.ravel() for p in priors[:3]])
    assert abs(pooled.mean()) < 1e-4 and pooled.std() == pytest.approx(1.0, rel=0.05)
    assert (priors[3].argmax(1) == 4).all() and priors[3][:, 4].min() > pooled.max()
    with pytest.raises(ValueError, match="normal"):
        selection_priors(cfg, normal, [], seed=0)


def test_default_head_with_distance_selection_finds_a_planted_short_event(tmp_path):
    make_store(tmp_path / "train", 16, 16, dim=32, seed=0, signal=0.8, t_range=(20, 80))
    make_store(tmp_path / "test", 8, 8, dim=32, seed=1, signal=0.8, t_range=(20, 80))
    lines = []
    cfg = _default_small(tmp_path / "train", lr=1e-3, epochs=0, iterations=150)
    cfg.train.loss.topk_by = "distance"
    cfg.model.normal_features = "raw"     # this world's events add energy along the normal mean: unit length hides it
    result = train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    res, _ = evaluate_run(result.run_dir, tmp_path / "test", tmp_path / "test" / "gt.json", device="cpu",
                          progress=False)
    assert res.metrics["auc_anomalous_videos"] > 0.8 and res.metrics["auc"] > 0.85, res.summary()
    assert any(line.startswith("segments chosen by distance (train.loss.topk_by distance") for line in lines)
    assert read_checkpoint(result.run_dir, "best")["train_config"]["loss"]["topk_by"] == "distance"
