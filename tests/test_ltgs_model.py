"""LTGS head and baselines: shapes, padding masks, the temporal matrix H and its readings, ablations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vadpipe.checkpoint import Checkpoint, build_model, load_checkpoint, score_batch, score_features
from vadpipe.config import Config, ModelConfig
from vadpipe.presets import ABLATIONS, apply_ablations, use_model
from vadpipe.errors import CheckpointError, ConfigError
from vadpipe.models import create_head
from vadpipe.models.ltgs import TemporalAttention, temporal_relation_matrix

torch.set_num_threads(1)
D = 32


def small(name="ltgs", **kw):
    cfg = {"name": name, "feature_dim": D, "heads": 4, "ffn_dim": 48, **kw}
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.mark.parametrize("name", ["ltgs", "rtfm", "mil"])
@pytest.mark.parametrize("t", [1, 7, 32, 50])
def test_shapes_any_t(name, t):
    out = small(name)(torch.rand(3, t, D))
    assert out.scores.shape == (3, t)
    assert ((out.scores >= 0) & (out.scores <= 1)).all()
    if name == "mil":
        assert out.features is None
    else:
        assert out.features.shape == (3, t, D)


@pytest.mark.parametrize("name,kw", [("ltgs", {}), ("ltgs", {"h_reading": "literal"}), ("ltgs", {"gs": "avg"}),
                                     ("rtfm", {}), ("mil", {})])
def test_padding_does_not_leak(name, kw):
    """A video scored alone equals the same video inside a padded batch; padding scores are 0."""
    model = small(name, **kw)
    lengths = [9, 23, 16]
    videos = [torch.rand(n, D) for n in lengths]
    x = torch.zeros(3, 23, D)
    mask = torch.zeros(3, 23, dtype=torch.bool)
    for i, v in enumerate(videos):
        x[i, :len(v)] = v
        x[i, len(v):] = 100.0        # garbage in the padding must not matter
        mask[i, :len(v)] = True
    with torch.no_grad():
        batched = model(x, mask)
        for i, v in enumerate(videos):
            alone = model(v[None]).scores[0]
            assert torch.allclose(batched.scores[i, :len(v)], alone, atol=1e-5), i
            assert (batched.scores[i, len(v):] == 0).all()


def test_score_batch_matches_score_features():
    model = small()
    vids = [np.random.default_rng(i).random((n, 2, D), dtype=np.float32) for i, n in enumerate([5, 12])]
    for a, b in zip(score_batch(model, vids), [score_features(model, v) for v in vids]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_h_matches_both_forms_of_its_formula():
    h = temporal_relation_matrix(torch.tensor([6, 4]), 6)
    for t, mat in ((6, h[0]), (4, h[1])):
        for i in range(t):
            for j in range(t):
                d = abs(i - j)
                assert mat[i, j] == pytest.approx(math.sin(math.pi * (t + d) / (2 * t)), abs=1e-6)
                assert mat[i, j] == pytest.approx(math.cos(math.pi * d / (2 * t)), abs=1e-6)
    assert torch.all(torch.diagonal(h[0]) == 1)
    assert h[0, 0, 5] < h[0, 0, 1] < 1                       # nearer segments weigh more
    assert torch.all(h[1, 4:, :] == 1) and torch.all(h[1, :, 4:] == 1)   # padding entries are neutral
    assert torch.all(temporal_relation_matrix(torch.tensor([5]), 5, decay=False) == 1)


def _manual_attention(att: TemporalAttention, x, h, reading):
    n, t, d = x.shape
    q, k, v = att.in_proj(x).view(n, t, 3, att.heads, d // att.heads).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-2, -1) / math.sqrt(d // att.heads)
    if reading == "reweight":
        p = torch.softmax(s, -1) * h[:, None]
        p = p / p.sum(-1, keepdim=True)                        # P·H renormalised per row
    else:
        p = torch.softmax((q @ k.transpose(-2, -1)) * h[:, None] / math.sqrt(d // att.heads), -1)
    return att.out_proj((p @ v).transpose(1, 2).reshape(n, t, d))


@pytest.mark.parametrize("reading", ["reweight", "literal"])
@pytest.mark.parametrize("t", [10, 1100])        # 1100: the literal reading works in query blocks
def test_attention_readings(reading, t):
    torch.manual_seed(1)
    att = TemporalAttention(D, 4, 0.0, reading).eval()
    x = torch.randn(1, t, D)
    h = temporal_relation_matrix(torch.tensor([t]), t)
    with torch.no_grad():
        got = att(x, h, torch.ones(1, t, dtype=torch.bool))
        assert torch.allclose(got, _manual_attention(att, x, h, reading), atol=1e-5)


def test_readings_differ_and_no_decay_makes_them_equal():
    x = torch.rand(2, 12, D)
    a, b = small(h_reading="reweight"), small(h_reading="literal")
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a(x).scores, b(x).scores, atol=1e-6)
    a, b = small(h_reading="reweight", decay=False), small(h_reading="literal", decay=False)
    b.load_state_dict(a.state_dict())
    assert torch.allclose(a(x).scores, b(x).scores, atol=1e-6)   # H = 1: both are plain attention


def test_no_decay_is_plain_multihead_attention():
    torch.manual_seed(0)
    att = TemporalAttention(D, 4, 0.0).eval()
    ref = torch.nn.MultiheadAttention(D, 4, batch_first=True).eval()
    ref.in_proj_weight.data.copy_(att.in_proj.weight)
    ref.in_proj_bias.data.copy_(att.in_proj.bias)
    ref.out_proj.weight.data.copy_(att.out_proj.weight)
    ref.out_proj.bias.data.copy_(att.out_proj.bias)
    x = torch.randn(2, 9, D)
    ones = temporal_relation_matrix(torch.tensor([9, 9]), 9, decay=False)
    assert torch.allclose(att(x, ones, torch.ones(2, 9, dtype=torch.bool)), ref(x, x, x)[0], atol=1e-5)


def _model(cfg: Config):
    cfg.model.feature_dim, cfg.model.ffn_dim = D, 48
    if cfg.model.heads != 1:
        cfg.model.heads = 4
    return build_model(cfg.model)


def test_each_ablation_changes_what_it_names():
    base = Config()
    full = _model(base)
    assert full.lt is not None and full.gs is not None and full.fusion.in_features == 2 * D
    assert full.lt.attn.heads == 4 and full.lt.decay and full.lt.attn.reading == "reweight"

    def abl(name):
        cfg = apply_ablations(base, [name])
        assert cfg.train.ablations == (name,)
        return cfg

    m = _model(abl("w/o LT"))
    assert m.lt is None and m.gs is not None
    m = _model(abl("w/o GS"))
    assert m.gs is None and m.gs_mode == "none" and m.fusion.in_features == D
    m = _model(abl("GS->avg"))
    assert m.gs is None and m.gs_mode == "avg" and m.fusion.in_features == 2 * D
    n_full = sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in m.parameters()) < n_full
    assert not _model(abl("No-Decay")).lt.decay
    assert _model(abl("LT-1Head")).lt.attn.heads == 1
    assert _model(abl("H-literal")).lt.attn.reading == "literal"
    assert abl("w/o Dyn").train.dynamic == "off"
    assert abl("Hard-Update").train.dynamic == "hard"
    assert abl("w/o Sparse").train.loss.w_sparse == 0 and abl("w/o Sparse").train.loss.w_smooth > 0
    assert abl("w/o Smooth").train.loss.w_smooth == 0 and abl("w/o Smooth").train.loss.w_sparse > 0
    assert set(ABLATIONS) >= {"w/o LT", "w/o GS", "GS->avg", "w/o Dyn", "No-Decay", "LT-1Head", "w/o Sparse",
                              "w/o Smooth", "Hard-Update"}
    # spellings
    assert apply_ablations(base, ["wo-lt", "NO_DECAY", "gs→avg"]).train.ablations == ("w/o LT", "No-Decay", "GS->avg")
    with pytest.raises(ConfigError):
        apply_ablations(base, ["w/o everything"])
    assert base.train.ablations == () and base.model.use_lt     # the input is not modified


def test_no_decay_changes_scores():
    x = torch.rand(2, 12, D)
    a, b = small(decay=True), small(decay=False)
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a(x).scores, b(x).scores, atol=1e-6)


@pytest.mark.parametrize("dim", [1024, 2048])
def test_paper_sizes(dim):
    torch.manual_seed(0)
    model = build_model({"name": "ltgs", "feature_dim": dim}).eval()
    assert model.lt.attn.heads == 16
    with torch.no_grad():
        assert model(torch.rand(1, 5, dim)).scores.shape == (1, 5)


def test_heads_must_divide_dim():
    with pytest.raises(ConfigError):
        build_model({"name": "ltgs", "feature_dim": 30, "heads": 16})


def test_baseline_defaults():
    rtfm = use_model(Config(), "rtfm")
    assert rtfm.train.loss.cls_target == "video-mean" and rtfm.train.dynamic == "off" and rtfm.train.loss.w_mag > 0
    mil = use_model(Config(), "mil")
    assert mil.train.loss.w_mag == 0 and mil.train.loss.w_cls == 0 and mil.model.hidden == (512, 32)


def test_rtfm_baseline_follows_rtfm():
    """--model rtfm: RTFM's regulariser forms, its masked top-k, and its dropout on the representation (in
    training only); --model mil: Sultani's per-video sums."""
    from vadpipe.presets import preset, use_model

    rtfm, mil = use_model(preset("paper"), "rtfm").train.loss, use_model(preset("paper"), "mil").train.loss
    assert (rtfm.reg_form, rtfm.topk_keep, mil.reg_form, mil.topk_keep) == ("rtfm", 0.3, "sultani", 1.0)
    head = create_head("rtfm", feature_dim=16, hidden=(8, 4), dropout=0.7)
    x = torch.randn(2, 6, 16)
    torch.manual_seed(0)
    head.train()
    first, second = head(x).features, head(x).features
    assert not torch.equal(first, second) and (first == 0).float().mean() > 0.5
    head.eval()
    assert torch.equal(head(x).features, head(x).features)
    from vadpipe.config import validate

    for field, value, words in (("topk_keep", 0.0, "topk_keep must lie in"), ("reg_form", "l2", "choose one of"),
                                ("topk_keep_k", "all", "topk_keep_k must be video or kept")):
        cfg = Config()
        setattr(cfg.train.loss, field, value)
        with pytest.raises(ConfigError, match=words):
            validate(cfg)


def test_checkpoint_roundtrip_is_weights_only(tmp_path):
    model = small()
    path = tmp_path / "best.pt"
    Checkpoint.of(model, ModelConfig(name="ltgs", feature_dim=D, heads=4, ffn_dim=48),
                  train_config=Config().train).save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "vadpipe-checkpoint/1"
    loaded, ckpt = load_checkpoint(path)
    assert not loaded.training
    feats = np.random.default_rng(0).random((11, 3, D), dtype=np.float32)
    expected = np.mean([score_features(model, feats[:, c]) for c in range(3)], axis=0)
    np.testing.assert_allclose(score_features(loaded, feats), expected, atol=1e-6)
    assert score_features(loaded, feats[:, 0]).shape == (11,)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
