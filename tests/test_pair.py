"""model.partner: a second head of another kind trained beside the run's own, logits standardised and averaged."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from feature_world import make_store, tiny_default
from vadpipe.checkpoint import Checkpoint, build_model, head_scores, load_checkpoint, read_checkpoint
from vadpipe.config import validate
from vadpipe.data import open_features
from vadpipe.errors import ConfigError
from vadpipe.evaluate import evaluate_run
from vadpipe.models.baselines import RTFMHead
from vadpipe.models.ltgs import LTGS
from vadpipe.models.normal_stats import logit
from vadpipe.models.pair import StandardisedPair
from vadpipe.pair_training import PARTNER, PRIMARY
from vadpipe.presets import SHARED_TRAIN_FIELDS, partner_config
from vadpipe.train import resume, train


def test_a_pair_averages_each_heads_standardised_logits_and_is_zero_at_padding():
    torch.manual_seed(0)
    pair = StandardisedPair(LTGS(feature_dim=16, heads=4, ffn_dim=32), RTFMHead(feature_dim=16)).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    a, b = logit(pair.primary(x, mask).scores), logit(pair.partner(x, mask).scores)
    unfitted = pair(x, mask).scores                                     # mean 0, sd 1: the plain mean of logits
    assert torch.allclose(unfitted[mask], torch.sigmoid((a + b) / 2)[mask], atol=1e-6)
    pair.fit(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([-20.0, 0.0, 20.0]))
    assert pair.location.tolist() == [3.0, 0.0] and pair.scale.tolist() == [2.0, 20.0]
    fused = pair(x, mask).scores
    assert torch.allclose(fused[mask], torch.sigmoid(((a - 3) / 2 + b / 20) / 2)[mask], atol=1e-6)
    assert (fused[~mask] == 0).all()


def _config(features, **train):
    cfg = tiny_default(features, **train)
    cfg.model.partner = "rtfm-real"
    return cfg


def test_the_partner_trains_with_its_own_head_and_losses_on_the_runs_data_split_and_schedule(tmp_path):
    cfg = _config(tmp_path / "f", iterations=7, seed=5, val_max=4)
    other = partner_config(cfg)
    assert other.model.name == "rtfm" and other.model.partner == ""
    assert other.train.loss.cls_target == "video-mean" and other.train.loss.w_rank == 0   # RTFM's own losses
    assert other.train.bags == "real" and other.model.normal_weight == 0         # on each video's own snippets
    cfg.model.partner = "rtfm"
    assert partner_config(cfg).train.bags == "resample"                         # on the article's 32 segments
    for name in SHARED_TRAIN_FIELDS:
        assert getattr(other.train, name) == getattr(cfg.train, name), name
    assert other.train.select == "last"
    bad = _config(tmp_path / "f")
    bad.model.partner = "mil"
    with pytest.raises(ConfigError, match="model.partner"):
        validate(bad)
    bad.model.partner, bad.model.members, bad.model.bagging = "rtfm", 2, True
    with pytest.raises(ConfigError, match="bagging"):
        validate(bad)


def test_a_pair_run_pairs_two_runs_on_one_split_and_resumes_bit_identically(tmp_path):
    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    full = train(_config(tmp_path / "f", iterations=10), out=tmp_path / "runs" / "full", progress=False)
    assert (tmp_path / "runs" / "latest").resolve() == full.run_dir.resolve()
    assert not (full.run_dir / "latest").exists()                  # the heads' own runs do not move it
    heads = {name: Checkpoint.load(full.run_dir / name, "last") for name in (PRIMARY, PARTNER)}
    assert heads[PRIMARY].last["split"] == heads[PARTNER].last["split"]
    for name in (PRIMARY, PARTNER):      # select last: each head's best is its last, so pairing fits one pair
        best = Checkpoint.load(full.run_dir / name, "best")
        assert best.iteration == heads[name].iteration and all(
            torch.equal(v, heads[name].model[k]) for k, v in best.model.items())
    assert heads[PRIMARY].model_config.name == "ltgs" and heads[PARTNER].model_config.name == "rtfm"

    stored = read_checkpoint(full.run_dir, "last")                  # weights_only=True
    assert stored["model_config"]["partner"] == "rtfm-real" and stored["partner"]["model_config"]["name"] == "rtfm"
    assert stored["partner"]["train_config"]["bags"] == "real"           # how the partner trained, recorded
    assert {"primary.normal_stats.mean", "partner.classifier.net.0.weight", "location", "scale"} <= set(stored["model"])
    held_normal = [v for v in heads[PRIMARY].last["split"]["val"] if v.startswith("Normal")]
    assert stored["calibration"]["n_videos"] == len(held_normal) > 0
    # score levels map what the pair fuses (the default's model.score_levels), not each head its own
    assert stored["model"]["levels.fitted"] == 1 and not any(k.startswith(("primary.levels", "partner.levels"))
                                                              for k in stored["model"])
    assert heads[PRIMARY].model_config.score_levels == "raw"
    assert stored["calibration"]["normal_frame_score_quantiles"]["0.99"] == pytest.approx(0.5, abs=1e-4)
    # the scene check reads the head with normal statistics (the partner has none): its own run's bound
    assert stored["scene"] == heads[PRIMARY].scene and np.isfinite(stored["scene"]["bound"])

    # the pair's scores are the two runs' own heads, each standardised on the videos both trained on
    pair, ckpt = load_checkpoint(full.run_dir, "cpu")
    own = {name: load_checkpoint(full.run_dir / name, "cpu")[0] for name in (PRIMARY, PARTNER)}
    data = open_features(tmp_path / "f")
    trained = [v for v in data.videos if v.id in set(heads[PRIMARY].last["split"]["train"])]
    rows = [torch.from_numpy(np.array(v.raw().transpose(1, 0, 2), dtype=np.float32)) for v in trained]
    with torch.no_grad():
        for h, name in enumerate((PRIMARY, PARTNER)):
            seen = torch.cat([logit(head_scores(own[name], x)).flatten() for x in rows])
            assert pair.location[h] == pytest.approx(seen.mean().item(), abs=1e-5)
            assert pair.scale[h] == pytest.approx(seen.std().item(), rel=1e-5)
        x = rows[0]
        z = [(logit(head_scores(own[name], x)) - pair.location[h]) / pair.scale[h]
             for h, name in enumerate((PRIMARY, PARTNER))]
        assert torch.allclose(head_scores(pair, x), torch.sigmoid((z[0] + z[1]) / 2), atol=1e-6)
    res, _ = evaluate_run(full.run_dir, tmp_path / "f", tmp_path / "f" / "gt.json", device="cpu", progress=False)
    assert 0.0 <= res.metrics["auc"] <= 1.0

    # stopped early, then stopped again before the primary head wrote anything: resumed, the same bits
    part = train(_config(tmp_path / "f", iterations=6), out=tmp_path / "runs" / "part", progress=False)
    shutil.rmtree(part.run_dir / PRIMARY)
    resume(part.run_dir, iterations=10, progress=False)
    for which in ("best", "last"):
        a, b = read_checkpoint(full.run_dir, which), read_checkpoint(part.run_dir, which)
        assert a["iteration"] == b["iteration"] == 10 and a["calibration"] == b["calibration"]
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), (which, k)


def test_a_pair_is_built_from_its_config_alone_for_heads_made_outside_training():
    cfg = _config("unused")
    cfg.model.feature_dim = 16
    pair = build_model(cfg.model)
    assert isinstance(pair, StandardisedPair) and isinstance(pair.partner, RTFMHead)
    assert pair.scoring_rule.frame_scores == cfg.model.frame_scores
