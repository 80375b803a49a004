"""model.members: several heads trained side by side in one run, their logits averaged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from feature_world import make_store, tiny_default
from vadpipe.checkpoint import build_model, load_checkpoint, read_checkpoint, score_features
from vadpipe.config import ModelConfig, model_config_from_dict, validate
from vadpipe.presets import preset
from vadpipe.scene_check import SceneCheck
from vadpipe.errors import ConfigError
from vadpipe.evaluate import evaluate_run
from vadpipe.models.ensemble import MeanOfLogits, members_of
from vadpipe.models.ltgs import LTGS
from vadpipe.train import resume, train
from vadpipe.train_step import Batch, members_step, train_step


def _tiny_ltgs() -> LTGS:
    return LTGS(feature_dim=16, heads=4, ffn_dim=32, gs_gate=True)


def test_ensemble_scores_are_the_sigmoid_of_the_members_mean_logit_and_zero_at_padding():
    torch.manual_seed(0)
    a, b = _tiny_ltgs().eval(), _tiny_ltgs().eval()
    ens = MeanOfLogits([a, b]).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    out = ens(x, mask)
    expected = torch.sigmoid((torch.logit(a(x, mask).scores) + torch.logit(b(x, mask).scores)) / 2)
    assert torch.allclose(out.scores[mask], expected[mask], atol=1e-6)
    assert (out.scores[~mask] == 0).all()
    assert out.features.shape == (2, 7, 32)                       # the members' representations side by side
    with pytest.raises(ValueError, match="at least one"):
        MeanOfLogits([])


def test_build_model_makes_an_ensemble_only_for_several_members_with_distinct_initialisations():
    one = build_model(ModelConfig(feature_dim=16, heads=4, ffn_dim=32))
    assert isinstance(one, LTGS)                                  # old checkpoints keep their keys
    cfg = ModelConfig(feature_dim=16, heads=4, ffn_dim=32, members=3, normal_weight=0.5)
    ens = build_model(cfg)
    assert isinstance(ens, MeanOfLogits) and len(members_of(ens)) == 3
    keys = ens.state_dict().keys()
    assert "members.2.fusion.weight" in keys and "normal_stats.mean" in keys   # fused terms: once, on top
    w = [m.fusion.weight for m in ens.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert model_config_from_dict({k: v for k, v in vars(cfg).items() if k != "members"}).members == 1
    bad = preset("default")
    bad.model.members = 0
    with pytest.raises(ConfigError, match="model.members"):
        validate(bad)


def test_one_step_of_an_ensemble_equals_each_member_trained_alone_on_its_batch():
    """The members share no parameter and Adam is per-parameter: one step on the sum of their losses
    moves each exactly as a step of its own would."""
    loss_cfg = preset("default").train.loss
    torch.manual_seed(1)
    heads = [_tiny_ltgs(), _tiny_ltgs()]
    alone = [_tiny_ltgs(), _tiny_ltgs()]
    for h, c in zip(heads, alone):
        c.load_state_dict(h.state_dict())
    gen = torch.Generator().manual_seed(2)
    batches = [Batch(torch.randn(4, 9, 16, generator=gen), torch.tensor([[1.0] * 9] * 2 + [[0.0] * 9] * 2), 2)
               for _ in heads]
    torch.manual_seed(3)                                           # the same dropout masks, in the same order
    joint = members_step(heads, torch.optim.Adam([p for h in heads for p in h.parameters()], lr=1e-3), batches,
                         loss_cfg)
    torch.manual_seed(3)
    terms = [train_step(c, torch.optim.Adam(c.parameters(), lr=1e-3), b.x, b.targets, b.n_anomalous, loss_cfg)
             for c, b in zip(alone, batches)]
    for h, c in zip(heads, alone):
        for (k, v), w in zip(h.state_dict().items(), c.state_dict().values()):
            assert torch.allclose(v, w, atol=1e-7), k
    assert joint["total"] == pytest.approx((terms[0]["total"] + terms[1]["total"]) / 2, rel=1e-6)


def _small(features, members: int, **train_kw):
    cfg = tiny_default(features, **train_kw)
    cfg.model.members = members
    return cfg


def test_an_ensemble_run_trains_resumes_bit_identically_and_scores_from_one_checkpoint(tmp_path):
    make_store(tmp_path / "f", 6, 6, dim=16, seed=3, t_range=(5, 120))
    full = train(_small(tmp_path / "f", 2, iterations=10), out=tmp_path / "full", progress=False)
    part = train(_small(tmp_path / "f", 2, iterations=6), out=tmp_path / "part", progress=False)
    resume(part.run_dir, iterations=10, progress=False)
    a, b = read_checkpoint(full.run_dir, "last"), read_checkpoint(part.run_dir, "last")   # weights_only=True
    assert a["iteration"] == b["iteration"] == 10
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["model_config"]["members"] == 2 and a["calibration"]["n_videos"] > 0
    assert a["model"]["normal_stats.scale"][4] == 1                 # fitted once, on the ensemble's scores

    model, ckpt = load_checkpoint(full.run_dir / "best.pt", "cpu")
    assert ckpt.scene["videos"] == 6   # one set of statistics for the heads side by side: one scene bound
    feats = np.random.default_rng(0).random((12, 1, 16)).astype(np.float32)
    scores = score_features(model, feats)
    assert scores.shape == (12,) and ((scores > 0) & (scores < 1)).all()
    # the members learnt apart: each one alone scores differently from the other
    singles = []
    for m in members_of(model):
        m.eval()
        singles.append(m(torch.from_numpy(feats[:, 0])[None]).scores[0].detach().numpy())
    assert not np.allclose(singles[0], singles[1])
    res, _ = evaluate_run(full.run_dir, tmp_path / "f", tmp_path / "f" / "gt.json", device="cpu", progress=False)
    assert 0.0 <= res.metrics["auc"] <= 1.0


def test_members_sample_their_own_batches_and_member_zero_samples_as_a_one_head_run(tmp_path):
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 6, 6, dim=16, seed=3, t_range=(5, 120))
    two = _Trainer(_small(tmp_path / "f", 2, iterations=4), tmp_path / "a", None, lambda m: None)
    one = _Trainer(_small(tmp_path / "f", 1, iterations=4), tmp_path / "b", None, lambda m: None)
    assert torch.equal(two._batch(0, 0).x, one._batch(0).x)
    assert not torch.equal(two._batch(0, 0).x, two._batch(0, 1).x)


def _bagged(features, **train_kw):
    cfg = _small(features, 3, val_fraction=0.3, **train_kw)
    cfg.model.bagging = True
    return cfg


def test_bagged_members_hold_out_their_own_normal_videos_and_never_train_on_them(tmp_path):
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    bag = _Trainer(_bagged(tmp_path / "f", iterations=4), tmp_path / "a", None, lambda m: None)
    one = _Trainer(_small(tmp_path / "f", 1, iterations=4, val_fraction=0.3, holdout_pick="random"), tmp_path / "b",
                   None, lambda m: None)
    held = [set(h.tolist()) for h in bag.member_held]
    assert held[0] == set(one.held_idx.tolist())                  # member 0 holds out what a seeded draw does
    assert len({frozenset(h) for h in held}) > 1                  # the others their own share
    assert all(bag.data.videos[i].label == 0 for h in held for i in h)    # holdout "normal": anomalous all train
    assert bag.val_set is None                                    # each held-out video trains other members
    for m, sampler in enumerate(bag.samplers):
        drawn = {int(bag.train_idx[p]) for i in range(20) for p in np.concatenate(sampler.batch(i))}
        assert not drawn & held[m] and drawn >= set(bag.train_idx.tolist()) - held[m]
    bad = _bagged(tmp_path / "f", iterations=4)
    bad.model.members = 1
    with pytest.raises(ConfigError, match="bagging"):
        validate(bad)


def test_a_bagged_run_fits_each_members_statistics_calibrates_out_of_bag_and_resumes_bit_identically(tmp_path):
    from vadpipe.calibration import OUT_OF_BAG, out_of_bag_scores

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    full = train(_bagged(tmp_path / "f", iterations=10), out=tmp_path / "full", progress=False)
    part = train(_bagged(tmp_path / "f", iterations=6), out=tmp_path / "part", progress=False)
    resume(part.run_dir, iterations=10, progress=False)
    a, b = read_checkpoint(full.run_dir, "last"), read_checkpoint(part.run_dir, "last")   # weights_only=True
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["calibration"] == b["calibration"]
    # one scene bound per member, each on the normal videos that member fitted its statistics on
    assert len(a["scene"]["members"]) == 3 and all(r["quiet_share"] == 0.1 for r in a["scene"]["members"])
    assert a["scene"] == b["scene"]
    assert "normal_stats.mean" not in a["model"]                   # no statistics on top: one per member,
    means = [a["model"][f"members.{m}.normal_stats.mean"] for m in range(3)]   # each from its own normals
    assert all(a["model"][f"members.{m}.normal_stats.scale"][4] == 1 for m in range(3))
    assert not torch.equal(means[0], means[1]) and not torch.equal(means[1], means[2])
    split = a["last"]["split"]
    held_normal = set().union(*split["members_val"])
    assert a["calibration"]["source"] == OUT_OF_BAG and a["calibration"]["n_videos"] == len(held_normal)
    assert a["model"]["levels.fitted"] == 1                         # levels set out of bag: auto reads 0.5
    assert a["calibration"]["normal_frame_score_quantiles"]["0.99"] == pytest.approx(0.5, abs=1e-4)

    model, _ = load_checkpoint(full.run_dir / "best.pt", "cpu")
    x = np.random.default_rng(0).random((12, 1, 16)).astype(np.float32)
    check = SceneCheck.of(model, a["scene"])                       # each member's statistics, its own bound
    assert check.snippet_z(x).shape == (12, 3) and check.reading(check.snippet_z(x)).heads == 3

    class Video:          # what out_of_bag_scores reads of a video
        def __init__(self, vid):
            self.id = vid

        def raw(self):
            return x
    oob = out_of_bag_scores(model, [Video("alone"), Video("pair"), Video("all")], [(1,), (0, 2), (0, 1, 2)], "cpu")
    whole = score_features(model, x)
    assert np.allclose(oob["all"], whole, atol=1e-6)              # held out by every member: the ensemble
    member = members_of(model)[1]
    member.scoring_rule, member.levels = model.scoring_rule, model.levels   # as the ensemble reports them
    assert np.allclose(oob["alone"], score_features(member, x), atol=1e-5)   # one member, fused with its own
    assert not np.allclose(oob["pair"], whole, atol=1e-4)                    # statistics, as alone
    res, _ = evaluate_run(full.run_dir, tmp_path / "f", tmp_path / "f" / "gt.json", device="cpu", progress=False)
    assert 0.0 <= res.metrics["auc"] <= 1.0


def test_a_bagged_run_gives_each_member_its_own_pseudo_label_stage_fitted_on_the_videos_it_trained_on(tmp_path):
    """model.pseudo_weight with model.bagging: every member fits its own stage (never on the normal
    videos it holds out, which calibrate it out of bag), after its own normal statistics."""
    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    cfg = _bagged(tmp_path / "f", iterations=6)
    cfg.model.pseudo_weight, cfg.model.pseudo_share = 1.0, 0.1
    validate(cfg)
    lines = []
    run = train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    raw = read_checkpoint(run.run_dir, "last")                            # weights_only=True
    assert "pseudo_stage.coef" not in raw["model"]
    coefs = [raw["model"][f"members.{m}.pseudo_stage.coef"] for m in range(3)]
    assert all(raw["model"][f"members.{m}.pseudo_stage.scale"][4] == 2 for m in range(3))
    assert not torch.equal(coefs[0], coefs[1]) and not torch.equal(coefs[1], coefs[2])
    split = raw["last"]["split"]
    fits = [line for line in lines if line.startswith("pseudo-label stage")]
    trained_on = sorted(len(split["train"]) - len(held) for held in split["members_val"])
    assert sorted(int(line.split(" of ")[1].split()[0]) for line in fits[:3]) == trained_on
    model, _ = load_checkpoint(run.run_dir / "best.pt", "cpu")
    x = np.random.default_rng(0).random((12, 1, 16)).astype(np.float32)
    with_stages = score_features(model, x)
    for member in members_of(model):
        member.pseudo_stage.scale[4] = 0
    assert not np.allclose(with_stages, score_features(model, x))


def test_bagged_folds_hold_out_every_normal_video_exactly_once_and_calibrate_on_all_of_them(tmp_path):
    """model.bag_folds: the members' held-out shares are disjoint folds covering every normal video (the
    anomalous ones all train, holdout "normal"), so out-of-bag calibration sees every normal video; a
    class of one video, folds without bagging and bagging with a distance prior are refused."""
    from vadpipe.data import stratified_folds
    from vadpipe.calibration import OUT_OF_BAG
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    cfg = _small(tmp_path / "f", 3, iterations=6, val_fraction=0.0)
    cfg.model.bagging = cfg.model.bag_folds = True
    cfg.model.terms_fit = "train"      # as --preset ensemble; "all" on folds: tests/test_terms_fit.py
    cfg.train.calibration_pooling = "clips"                        # travels to the out-of-bag calibration
    validate(cfg)                                                  # val_fraction is not read with folds
    bag = _Trainer(cfg, tmp_path / "a", None, lambda m: None)
    normal = {i for i, v in enumerate(bag.data.videos) if v.label == 0}
    held = [h.tolist() for h in bag.member_held]
    assert sorted(i for h in held for i in h) == sorted(normal)    # each normal video in exactly one fold
    assert sorted(len(h) for h in held) == [3, 3, 4]
    run = train(cfg, out=tmp_path / "run", progress=False)
    cal = read_checkpoint(run.run_dir, "last")["calibration"]
    assert cal["source"] == OUT_OF_BAG and cal["n_videos"] == len(normal) == 10
    assert cal["pooling"] == "clips" and cal["normal_frame_score_quantiles"] == cal["pooled"]["clips"]

    folds = stratified_folds([0, 0, 1, 1, 1, 0, 1], 2, seed=5)     # both classes dealt on from one to the next
    assert sorted(np.concatenate(folds).tolist()) == list(range(7)) and sorted(map(len, folds)) == [3, 4]
    assert sorted(int(np.isin(f, [0, 1, 5]).sum()) for f in folds) == [1, 2]      # each class split evenly
    loose = _small(tmp_path / "f", 3, iterations=6)
    loose.model.bag_folds = True
    with pytest.raises(ConfigError, match="bag_folds"):
        validate(loose)
    by_distance = _small(tmp_path / "f", 3, iterations=6)
    by_distance.model.bagging, by_distance.train.loss.topk_by = True, "fused"   # its prior sees held-out normals
    with pytest.raises(ConfigError, match="the distance prior is fitted on every normal training video"):
        validate(by_distance)
    make_store(tmp_path / "one", 3, 1, dim=16, seed=3, t_range=(5, 20))
    lonely = _small(tmp_path / "one", 2, iterations=2)
    lonely.model.bagging = lonely.model.bag_folds = True
    with pytest.raises(ConfigError, match="only one normal"):
        _Trainer(lonely, tmp_path / "b", None, lambda m: None)


def test_the_ensemble_preset_is_the_default_as_five_heads_on_folds_and_trains_from_the_cli(tmp_path):
    """`--preset ensemble`: the default with seven model fields changed (five bagged heads on disjoint folds,
    a ±1-snippet window, terms on each member's own training videos), valid, and the CLI's list of presets is the
    module's."""
    import dataclasses

    from click.testing import CliRunner

    from vadpipe.cli import TRAIN_PRESETS, main
    from vadpipe.presets import PRESETS

    assert TRAIN_PRESETS == PRESETS
    default, ensemble = preset("default"), preset("ensemble")
    validate(ensemble)
    changed = {f.name: getattr(ensemble.model, f.name) for f in dataclasses.fields(ensemble.model)
               if getattr(ensemble.model, f.name) != getattr(default.model, f.name)}
    assert changed == {"horizon": 2, "horizon_cap": 0, "horizon_share": 0.0, "members": 5, "bagging": True,
                       "bag_folds": True, "terms_fit": "train"}
    assert ensemble.train == default.train
    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 40))
    res = CliRunner().invoke(main, ["train", "--features", str(tmp_path / "f"), "--preset", "ensemble", "--iters",
                                    "3", "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(tmp_path / "run", "last")
    assert ckpt["model_config"]["members"] == 5 and ckpt["calibration"]["n_videos"] == 10   # every normal, out of bag
