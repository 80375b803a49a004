"""One home per idea: the head registry, the typed checkpoint, --set overrides, the one recipe check,
the stride-aware snippet->frame mapping, and the import layers."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vadpipe.checkpoint import FORMAT, Checkpoint, build_model, load_checkpoint
from vadpipe.cli import main
from vadpipe.config import Config, ModelConfig, head_names
from vadpipe.presets import apply_overrides, preset
from vadpipe.errors import CheckpointError, ConfigError, RecipeMismatchError
from vadpipe.evaluate import align_video
from vadpipe.groundtruth import VideoGT
from vadpipe.models import create_head, list_heads
from vadpipe.models.baselines import MILHead, RTFMHead
from vadpipe.models.ltgs import LTGS
from vadpipe.recipe import Recipe, check_compatible

ROOT = Path(__file__).resolve().parents[1]


# --- registry -----------------------------------------------------------------------------------

def test_registry_lists_the_heads_and_builds_the_same_weights_as_the_classes():
    assert list_heads() == ("ltgs", "rtfm", "mil") == head_names()
    direct = {"ltgs": lambda: LTGS(32, 4, 48, 0.1, "reweight", True, True, "full", (16, 8), 0.7),
              "rtfm": lambda: RTFMHead(32, (16, 8), 0.7), "mil": lambda: MILHead(32, (16, 8), 0.7)}
    for name in list_heads():
        torch.manual_seed(3)
        built = create_head(name, **{**vars(ModelConfig(name=name, feature_dim=32, heads=4, ffn_dim=48,
                                                        hidden=(16, 8), dropout=0.7))})
        torch.manual_seed(3)
        expected = direct[name]()
        assert type(built) is type(expected)
        for (k, a), (_, b) in zip(built.state_dict().items(), expected.state_dict().items()):
            assert torch.equal(a, b), (name, k)
    with pytest.raises(KeyError, match="unknown head 'nope'"):
        create_head("nope")
    with pytest.raises(ConfigError, match="model.name"):
        build_model({"name": "nope", "feature_dim": 8})


# --- checkpoint ---------------------------------------------------------------------------------

def _head_checkpoint(**fields) -> Checkpoint:
    config = ModelConfig(feature_dim=16, heads=4, ffn_dim=32, hidden=(8, 4))
    torch.manual_seed(0)
    return Checkpoint.of(build_model(config), config, **fields)


def test_checkpoint_roundtrip_and_formats(tmp_path):
    recipe = Recipe(backbone="i3d-inception", weights_sha256=None, feature_dim=16, stride=8)
    ckpt = _head_checkpoint(train_config=Config().train, recipe=recipe, metrics={"val_auc": 0.5}, iteration=7)
    path = tmp_path / "best.pt"
    ckpt.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["recipe"]["stride"] == 8 and raw["snippet_len"] == 16
    model, back = load_checkpoint(path)
    assert back.recipe == recipe and back.stride == 8 and back.iteration == 7 and back.train_config == Config().train
    assert back.model_config == ckpt.model_config and not model.training
    # a checkpoint written before format versions existed, and one from a newer vadpipe: one-line refusals
    for payload, match in (({k: v for k, v in raw.items() if k != "format"}, "without a format version"),
                           ({**raw, "format": "vadpipe-checkpoint/99"}, "newer than this vadpipe reads"),
                           ({**raw, "format": "something-else/1"}, "not a vadpipe checkpoint"),
                           ({k: v for k, v in raw.items() if k != "model"}, "without 'model'")):
        torch.save(payload, tmp_path / "x.pt")
        with pytest.raises(CheckpointError, match=match) as err:
            Checkpoint.load(tmp_path / "x.pt")
        assert "\n" not in str(err.value)


def test_checkpoint_checks_feature_size():
    ckpt = _head_checkpoint()
    ckpt.require_feature_dim(16, "features f")
    with pytest.raises(RecipeMismatchError, match="features f have D = 8, the checkpoint expects 16"):
        ckpt.require_feature_dim(8, "features f")


# --- --set --------------------------------------------------------------------------------------

def test_set_overrides_are_typed_by_the_field():
    cfg = apply_overrides(preset("demo"), ["train.lr=1e-3", "train.loss.k=8", "model.use_lt=false",
                                           "model.hidden=64,16", "train.val_gt=none", "train.holdout=normal"])
    assert (cfg.train.lr, cfg.train.loss.k, cfg.model.use_lt, cfg.model.hidden) == (1e-3, 8, False, (64, 16))
    assert cfg.train.val_gt is None and cfg.train.holdout == "normal"
    assert preset("demo").train.lr == 1e-4                      # a copy: the preset is untouched
    for bad, match in (("train.nope=1", "train has no field 'nope'"), ("trian.lr=1", "no section 'trian'"),
                       ("train.beta=1.5", "expected an integer"), ("model.use_lt=maybe", "expected true or false"),
                       ("lr=1", "expected SECTION.FIELD=VALUE"), ("model.gs=maybe", "model.gs")):
        with pytest.raises(ConfigError, match=match):
            apply_overrides(Config(), [bad])


def test_train_cli_takes_set(tmp_path):
    res = CliRunner().invoke(main, ["train", "--set", "train.nope=1", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        res.output.strip().splitlines()[0]] and "train has no field 'nope'" in res.output


# --- one recipe check, one snippet->frame mapping ------------------------------------------------

def test_one_recipe_check():
    a = Recipe(backbone="i3d-inception", weights_sha256=None, feature_dim=16)
    assert check_compatible(a, a, "x", "y") == []
    with pytest.raises(RecipeMismatchError, match=r"x and y were made with different feature recipes .*fps: "
                                                  r"'native' vs '25'; do this"):
        check_compatible(a, a.replace(fps="25"), "x", "y", "do this")
    assert check_compatible(None, a, "the checkpoint", "y")[0].startswith("recipe not checked: the checkpoint")


def test_alignment_honours_the_stride():
    scores = np.array([0.0, 1.0, 0.0])                # snippets of 16 every 8 frames reach 32 frames
    f, y, rep = align_video(scores, VideoGT("v", 32, [(8, 24)]), snippet_len=16, stride=8)
    assert rep.action == "exact" and f.shape == (32,)
    np.testing.assert_allclose(f[8:24], 0.5)           # frames covered by two snippets take their mean
    f, _, rep = align_video(scores, VideoGT("v", 30, []), snippet_len=16, stride=8)
    assert rep.action == "tail" and f.shape == (30,)
    _, _, rep = align_video(scores, VideoGT("v", 60, []), snippet_len=16, stride=8)
    assert rep.action == "mismatch"


# --- layers ---------------------------------------------------------------------------------------

LOWER = ["video", "recipe", "features", "claims", "groundtruth", "rtfm_lists", "intervals", "atomic", "errors",
         "device"]
DRIVERS = {"extract", "score", "train", "evaluate", "cli", "demo", "watch"}


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:                               # relative: .x, ..x
                names.add(module.split(".")[0] if module else "")
                names.update(a.name for a in node.names if not module)
            elif module.startswith("vadpipe."):
                names.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("vadpipe."))
    return names


def test_lower_layers_never_import_the_drivers():
    files = [ROOT / "vadpipe" / f"{m}.py" for m in LOWER]
    files += sorted((ROOT / "models").glob("*.py")) + sorted((ROOT / "extractors").glob("*.py"))
    for path in files:
        upward = _imports(path) & DRIVERS
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"
