"""Stored network layers (``vadpipe extract --layers``): the recipe, the encoder, and a head whose
normal statistics see a mid-level layer while the classifier trains on the last one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadpipe.errors import ConfigError

torch.set_num_threads(1)


def test_layer_recipe_keeps_old_ids_and_stores_each_endpoint_mean_side_by_side():
    from vadpipe.encode import SnippetEncoder, build_recipe
    from vadpipe.extractors import create_backbone
    from vadpipe.recipe import Recipe

    bb = create_backbone("i3d-inception", weights="random")
    plain = build_recipe(bb, "frame", short_side=64)
    both = build_recipe(bb, "frame", short_side=64, layers="Mixed_4f,Mixed_5c")
    assert "layers" not in plain._feature_fields() and plain.layer_spans == {}
    assert both.layers == (("Mixed_4f", 832), ("Mixed_5c", 1024)) and both.feature_dim == 1856
    assert both.layer_spans == {"Mixed_4f": (0, 832), "Mixed_5c": (832, 1856)}
    assert both.recipe_id != plain.recipe_id and Recipe.from_dict(both.to_dict()) == both
    assert any(d.startswith("layers:") for d in both.differences(plain))    # a mismatch names it
    clips = torch.randint(0, 255, (2, 16, 64, 96, 3), dtype=torch.uint8)
    stored = SnippetEncoder(bb, both, "cpu", 1)([clips])
    whole = SnippetEncoder(bb, plain, "cpu", 1)([clips])
    assert stored.shape == (2, 1, 1856)
    assert np.allclose(stored[:, 0, 832:], whole[:, 0], atol=1e-5)        # the last block is the usual features
    from vadpipe.extractors.transforms import preprocess

    x = preprocess(clips, both)
    with torch.no_grad():
        mid = bb.module.forward_endpoints(x)["Mixed_4f"].mean(dim=(2, 3, 4))
    assert np.allclose(stored[:, 0, :832], mid.numpy(), atol=1e-5)


@pytest.mark.parametrize("layers, backbone, match", [
    ("Mixed_9z", "i3d-inception", "Mixed_4f"),           # unknown endpoint: the known ones listed
    ("Mixed_5c,Mixed_5c", "i3d-inception", "distinct"),
    ("res9", "i3d-r50", "from res2, res3, res4, res5"),
])
def test_bad_layers_are_one_line_config_errors(layers, backbone, match):
    from vadpipe.encode import build_recipe
    from vadpipe.extractors import create_backbone

    with pytest.raises(ConfigError, match=match):
        build_recipe(create_backbone(backbone, weights="random"), "tiny", layers=layers)
    with pytest.raises(ConfigError, match="cannot be combined"):
        build_recipe(create_backbone("i3d-inception", weights="random"), "frame", regions="2x2", layers="Mixed_5c")


def test_a_backbone_without_endpoints_refuses_layers_and_names_those_with_them():
    from dataclasses import replace

    from vadpipe.encode import layer_fields
    from vadpipe.extractors import create_backbone

    config = replace(create_backbone("i3d-r50", weights="random").config, layers=())
    with pytest.raises(ConfigError, match="i3d-r50 stores only its own features; backbones with layers: ") as err:
        layer_fields(config, "res4")
    assert sorted(str(err.value).split(": ")[-1].split(", ")) == ["i3d-inception", "i3d-r50"]


def test_r50_layers_store_each_residual_stages_mean_side_by_side():
    from vadpipe.encode import SnippetEncoder, build_recipe
    from vadpipe.extractors import create_backbone
    from vadpipe.extractors.transforms import preprocess

    bb = create_backbone("i3d-r50", weights="random")
    plain = build_recipe(bb, "frame", short_side=64)
    both = build_recipe(bb, "frame", short_side=64, layers="res4,res5")
    assert both.layers == (("res4", 1024), ("res5", 2048)) and both.feature_dim == 3072
    assert both.layer_spans == {"res4": (0, 1024), "res5": (1024, 3072)} and both.recipe_id != plain.recipe_id
    clips = torch.randint(0, 255, (2, 16, 64, 96, 3), dtype=torch.uint8)
    stored = SnippetEncoder(bb, both, "cpu", 1)([clips])
    whole = SnippetEncoder(bb, plain, "cpu", 1)([clips])
    assert stored.shape == (2, 1, 3072)
    assert np.allclose(stored[:, 0, 1024:], whole[:, 0], atol=1e-5)       # res5 is the usual features
    with torch.no_grad():
        maps = bb.module.forward_endpoints(preprocess(clips, both))
    assert np.allclose(stored[:, 0, :1024], maps["res4"].mean(dim=(2, 3, 4)).numpy(), atol=1e-5)
    assert [name for name in maps if name != "features"] == ["stem", "res2", "pool2", "res3", "res4", "res5"]


def test_extract_cli_stores_the_layers_and_refuses_bad_ones_in_one_line(tmp_path):
    from click.testing import CliRunner

    from conftest import make_video
    from vadpipe.cli import main
    from vadpipe.recipe import load_recipe

    make_video(tmp_path / "videos" / "Fighting" / "a.mp4", 20)
    args = ["extract", str(tmp_path / "videos"), "--out", str(tmp_path / "f"), "--backbone", "i3d-inception",
            "--weights", "random", "--preset", "tiny", "--workers", "0", "--no-progress"]
    result = CliRunner().invoke(main, args + ["--layers", "Mixed_4f,Mixed_5c"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "f" / "Fighting__a.npy").shape == (2, 1, 1856)
    assert load_recipe(tmp_path / "f").layer_spans == {"Mixed_4f": (0, 832), "Mixed_5c": (832, 1856)}
    listed = CliRunner().invoke(main, ["features", "export-list", str(tmp_path / "f"), "-o", str(tmp_path / "f.list")])
    assert listed.exit_code == 0 and "reads all of them side by side" in listed.stderr
    bad = CliRunner().invoke(main, args + ["--out", str(tmp_path / "g"), "--layers", "Mixed_4z"])
    assert bad.exit_code != 0 and "--layers 'Mixed_4z'" in bad.output and "Traceback" not in bad.output


def _small_default(features, **model):
    from vadpipe.presets import preset

    cfg = preset("default")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    for k, v in model.items():
        setattr(cfg.model, k, v)
    t = cfg.train
    t.features, t.device, t.eval_every, t.log_every, t.epochs, t.iterations = str(features), "cpu", 20, 5, 0, 12
    return cfg


def test_head_reads_the_last_stored_layer_and_normal_statistics_the_named_one(tmp_path):
    from feature_world import make_store
    from vadpipe.checkpoint import head_scores, load_checkpoint, read_checkpoint
    from vadpipe.train import train

    make_store(tmp_path / "f", 6, 6, dim=32, seed=0, t_range=(8, 16), mid_dim=16)
    lines = []
    run = train(_small_default(tmp_path / "f", normal_layer="mid", pseudo_weight=1.0), out=tmp_path / "run",
                progress=False, log=lines.append).run_dir
    saved = read_checkpoint(run, "last")["model_config"]          # torch.load(weights_only=True) inside
    assert tuple(saved["head_span"]) == (16, 48) and tuple(saved["normal_span"]) == (0, 16)
    assert any("the head reads last, the normal statistics mid" in line for line in lines)
    model, _ = load_checkpoint(run / "last.pt", torch.device("cpu"))
    model.eval()
    x = torch.rand(1, 10, 48)
    other_mid, other_last = x.clone(), x.clone()
    other_mid[..., :16] += 3.0
    other_last[..., 16:] += 3.0
    with torch.no_grad():
        assert torch.equal(model(x).scores, model(other_mid).scores)               # the head never sees mid
        assert not torch.equal(model(x).scores, model(other_last).scores)
        stats = model.normal_stats
        assert stats.fitted and stats.mean.shape == (16,)
        assert torch.equal(stats.distance(x), stats.distance(other_last))          # the distance sees mid only
        assert not torch.equal(stats.distance(x), stats.distance(other_mid))
        assert model.pseudo_stage.fitted and model.pseudo_stage.coef.shape == (32,)   # the head's layer
        assert head_scores(model, x).shape == (1, 10)


def test_normal_layer_falls_back_to_the_head_features_when_not_stored(tmp_path):
    from feature_world import make_store
    from vadpipe.checkpoint import read_checkpoint
    from vadpipe.train import train

    make_store(tmp_path / "plain", 6, 6, dim=32, seed=0, t_range=(8, 16))
    make_store(tmp_path / "layered", 6, 6, dim=32, seed=0, t_range=(8, 16), mid_dim=16)
    for store, expected in (("plain", "store no layers"), ("layered", "(Mixed_4f is not stored)")):
        lines = []
        run = train(_small_default(tmp_path / store, normal_layer="Mixed_4f"), out=tmp_path / f"run-{store}",
                    progress=False, log=lines.append).run_dir
        m = read_checkpoint(run, "last")["model_config"]
        assert any(expected in line for line in lines), lines
        assert tuple(m["normal_span"]) == tuple(m["head_span"]) == ((0, 0) if store == "plain" else (16, 48))


def test_a_layered_store_trains_the_very_head_its_last_layer_alone_trains(tmp_path):
    from feature_world import make_store
    from vadpipe.checkpoint import read_checkpoint
    from vadpipe.train import train

    make_store(tmp_path / "plain", 6, 6, dim=32, seed=0, t_range=(8, 16))
    make_store(tmp_path / "layered", 6, 6, dim=32, seed=0, t_range=(8, 16), mid_dim=16)
    states = [read_checkpoint(train(_small_default(tmp_path / store, normal_layer="mid"), out=tmp_path / store / "run",
                                    progress=False, log=lambda line: None).run_dir, "last")["model"]
              for store in ("plain", "layered")]
    # the fitted terms (and the score levels) read the fused scores, whose normal statistics see another
    # layer: the head alone
    head = [k for k in states[0] if not k.startswith(("normal_stats.", "pseudo_stage.", "levels."))]
    assert head and all(torch.equal(states[0][k], states[1][k]) for k in head)
    assert states[0]["normal_stats.mean"].shape == (32,) and states[1]["normal_stats.mean"].shape == (16,)


def test_score_extracts_a_clip_with_the_checkpoints_layers(tmp_path, capsys):
    """`vadpipe score` on a video re-extracts it with the layered recipe the head was trained on; the
    plain features of that clip are refused with the recipe difference named."""
    from conftest import score_clip_with_a_head
    from vadpipe.config import ModelConfig
    from vadpipe.extractors.presets import make_recipe
    from vadpipe.score import ScoreOptions, run_score

    recipe = make_recipe("i3d-inception", "tiny", weights_sha256=None, layers=(("Mixed_4f", 832), ("Mixed_5c", 1024)),
                         feature_dim=1856)
    config = ModelConfig(feature_dim=1856, heads=4, ffn_dim=64, hidden=(32, 16), normal_weight=0.5,
                         normal_layer="Mixed_4f", head_span=(832, 1856), normal_span=(0, 832))
    frames, scores, _ = score_clip_with_a_head(tmp_path, config, recipe, 40)
    assert frames.tolist() == list(range(40)) and np.isfinite(scores).all()
    plain = tmp_path / "plain"
    plain.mkdir()
    np.save(plain / "clip.npy", np.zeros((3, 1, 1024), np.float32))
    from vadpipe.recipe import save_recipe

    save_recipe(plain, make_recipe("i3d-inception", "tiny", weights_sha256=None))
    capsys.readouterr()
    assert run_score([str(plain / "clip.npy")], checkpoint=str(tmp_path / "best.pt"), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out2", progress=False)) != 0
    error = capsys.readouterr().err
    assert "different feature recipes" in error and "layers: [['Mixed_4f', 832], ['Mixed_5c', 1024]] vs None" in error
