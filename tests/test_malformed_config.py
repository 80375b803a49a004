"""Configs, recipes and checkpoints that load but are malformed: one line naming the file and the cause.

cli review D5 (config YAML shapes and scalar types, non-UTF-8), D6 (recipe.json not a recipe), D7 (a
checkpoint whose fields have the wrong shape; a ``runs/latest`` text file with bad bytes); recipe review #5
(channel_order and tail: values vadpipe cannot produce) and #7 (a field this vadpipe does not know, a stored
recipe_id that is not the fields' id).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from feature_world import make_store
from vadpipe.checkpoint import Checkpoint, build_model, load_checkpoint
from vadpipe.cli import main
from vadpipe.config import ModelConfig, load_config
from vadpipe.errors import CheckpointError, ConfigError
from vadpipe.extractors import list_backbones, make_recipe
from vadpipe.presets import apply_overrides, preset
from vadpipe.recipe import Recipe, load_recipe, save_recipe


def one_error(result) -> str:
    """The single ``error:`` line of a failed command (no traceback, exit code 1)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def train_with(config: Path):
    return CliRunner().invoke(main, ["train", "-c", str(config), "--device", "cpu", "--no-progress"])


# --- D5: config YAML ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,cause", [
    ("- a\n- b\n", "expected a mapping (preset, model, train), got a list ['a', 'b']"),
    ("42\n", "expected a mapping (preset, model, train), got a number 42"),
    ("train: 5\n", "train: expected a mapping, got a number 5"),
    ("train: {loss: 5}\n", "train.loss: expected a mapping, got a number 5"),
    ('train:\n  lr: "x"\n', "train.lr: expected a number, got 'x'"),
    ('train:\n  iterations: "four"\n', "train.iterations: expected an integer, got 'four'"),
    ("model:\n  hidden: [a, b]\n", "model.hidden: expected an integer, got 'a'"),
    ("model:\n  use_lt: maybe\n", "model.use_lt: expected true or false, got 'maybe'"),
    ("train:\n  device: 5\n", "train.device: expected text, got 5 (quote it: '5')"),
    ("model:\n  head_span: [0]\n", "model.head_span: expected a list of 2 values, got [0]"),
])
def test_config_not_shaped_like_a_config_or_of_the_wrong_type(tmp_path, text, cause):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert one_error(train_with(path)) == f"error: {path}: {cause}"


@pytest.mark.parametrize("setting,cause", [
    ("train.lr=nan", "train.lr = nan: every number must be finite"),
    ("train.epochs=inf", "train.epochs = inf: every number must be finite"),
    ("model.normal_weight=inf", "model.normal_weight = inf: every number must be finite"),
    ("train.calibration_quantiles=", "train.calibration_quantiles = () must include 0.99: the auto threshold of "
                                     "score, watch and eval, which the score levels are set on"),
    ("train.calibration_quantiles=0.95", "train.calibration_quantiles = (0.95,) must include 0.99: the auto "
                                         "threshold of score, watch and eval, which the score levels are set on"),
    ("train.lr=-1", "train.lr must be > 0 and train.weight_decay >= 0, got -1.0 and 0.005"),
    ("model.dropout=1.5", "model.dropout must lie in [0, 1), got 1.5"),
    ("train.loss.w_cls=-1", "train.loss.w_cls must be >= 0, got -1.0"),
    ("model.hidden=0", "model.hidden must be one or more positive integers (the scorer's layer widths), got (0,)"),
    ("train.checkpoint_minutes=-1", "train.checkpoint_minutes must be >= 0 (0: after every iteration), got -1.0"),
])
def test_numbers_a_run_cannot_use_are_one_line_before_training(tmp_path, setting, cause):
    """Each used to be torch's traceback mid-run (lr, dropout, epochs) or a run that trained nothing or
    wrote NaN thresholds without a word (a negative loss weight, hidden 0, normal_weight inf)."""
    make_store(tmp_path / "f", 2, 2, dim=16, seed=0)
    result = CliRunner().invoke(main, ["train", "--features", str(tmp_path / "f"), "--device", "cpu",
                                       "--no-progress", "--out", str(tmp_path / "run"), "--set", setting])
    assert one_error(result) == f"error: {cause}"
    assert not (tmp_path / "run").exists()


def test_config_yaml_values_are_typed_as_set_overrides_are(tmp_path):
    """PyYAML reads 1e-4 (no dot) as text and 3.0e+2 as a float: both take the field's type, as --set does."""
    path = tmp_path / "ok.yaml"
    path.write_text("preset: demo\ntrain: {lr: 1e-4, iterations: 3.0e+2, val_gt: none, loss: {k: '4'}}\n"
                    "model: {hidden: '64,16', use_lt: 'no'}\n")
    cfg = load_config(path)
    assert cfg == apply_overrides(preset("demo"), ["train.lr=1e-4", "train.iterations=300", "train.val_gt=none",
                                                   "train.loss.k=4", "model.hidden=64,16", "model.use_lt=no"])
    assert type(cfg.train.lr) is float and type(cfg.train.iterations) is int and cfg.model.hidden == (64, 16)
    path.write_text("model: {heads: 3, feature_dim: 32}\n")          # validation errors name the file too
    with pytest.raises(ConfigError, match=rf"^{path}: model.heads = 3 does not divide"):
        load_config(path)


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe train: {}\n")
    assert one_error(train_with(path)) == f"error: {path}: not UTF-8 text (byte 0xff on line 1)"


# --- D6: recipe.json that is not a recipe ------------------------------------------------------------------
def _recipe(**changes) -> Recipe:
    return make_recipe("i3d-inception", "tiny", weights_sha256="ab" * 32, **changes)


@pytest.mark.parametrize("text,cause", [
    ("[1]", "not a recipe (a list, not a mapping of its fields)"),
    ('{"backbone": "i3d-inception"}', "recipe without weights_sha256, feature_dim"),
    ('{"backbone": "i3d-inception", "weights_sha256": null, "feature_dim": "32"}',
     "recipe field 'feature_dim': expected an integer, got '32'"),
    ('{"backbone": "i3d-inc', "unreadable recipe (not JSON: "),
])
def test_malformed_recipe_json_names_the_file(tmp_path, text, cause):
    make_store(tmp_path / "feat", 3, 3, dim=32, t_range=(6, 8))
    path = tmp_path / "feat" / "recipe.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: {cause}")
    line = one_error(CliRunner().invoke(main, ["train", "--features", str(tmp_path / "feat"), "--iters", "1",
                                               "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r")]))
    assert line.startswith(f"error: {path}: {cause}")


def test_score_recipe_option_that_is_not_a_recipe(tmp_path):
    """``score --recipe FILE`` for loose .npy features: the recipe file is named, not the clip."""
    config = ModelConfig(feature_dim=32, heads=4, ffn_dim=16, hidden=(8,))
    Checkpoint.of(build_model(config), config, recipe=None).save(tmp_path / "best.pt")
    np.save(tmp_path / "one.npy", np.ones((4, 1, 32), np.float32))
    (tmp_path / "rec.json").write_text("[1, 2]")
    line = one_error(CliRunner().invoke(main, ["score", str(tmp_path / "one.npy"), "--checkpoint",
                                               str(tmp_path / "best.pt"), "--recipe", str(tmp_path / "rec.json"),
                                               "--threshold", "0.5", "-o", str(tmp_path / "out"), "--no-progress"]))
    assert line == f"error: {tmp_path / 'rec.json'}: not a recipe (a list, not a mapping of its fields)"


# --- recipe review #5: channel_order and tail are what vadpipe produces -------------------------------------
@pytest.mark.parametrize("field,value,does", [("channel_order", "BGR", "decodes frames as RGB"),
                                              ("tail", "drop", "pads the last partial snippet"),
                                              ("resize", "bicubic", "resizes decoded frames bilinearly")])
def test_recipe_values_vadpipe_cannot_produce_are_refused(tmp_path, field, value, does):
    with pytest.raises(ConfigError, match=rf"recipe {field} '{value}' cannot be produced: vadpipe {does}"):
        _recipe(**{field: value})                                 # made (extract, features import)
    stored = {**_recipe().to_dict(), field: value}
    stored.pop("recipe_id")
    (tmp_path / "recipe.json").write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'recipe.json'}: recipe {field} '{value}' cannot"):
        load_recipe(tmp_path)                                     # read (features, checkpoints)


# --- recipe review #7: unknown fields and a stored id that is not the fields' --------------------------------
def test_recipe_field_unknown_to_this_vadpipe_is_refused(tmp_path):
    newer = {**_recipe().to_dict(), "resize_interpolation": "bicubic", "vadpipe_version": "9.0"}
    (tmp_path / "recipe.json").write_text(json.dumps(newer))
    with pytest.raises(ConfigError, match=r"recipe.json: recipe field\(s\) resize_interpolation unknown to "
                                          r"vadpipe .* \(made by a newer vadpipe 9.0\?"):
        load_recipe(tmp_path)


def test_recipe_whose_stored_id_is_not_its_fields_id_is_refused(tmp_path):
    edited = {**_recipe().to_dict(), "resize_short_side": 160}     # edited by hand, the id left as it was
    (tmp_path / "recipe.json").write_text(json.dumps(edited))
    with pytest.raises(ConfigError, match=rf"recipe_id '{_recipe().recipe_id}' is not the id of the recipe's "
                                          rf"fields \({_recipe(resize_short_side=160).recipe_id}\)"):
        load_recipe(tmp_path)


def test_every_recipe_vadpipe_writes_reads_back_with_its_id(tmp_path):
    """What extract, features import and feature_world write (all options) and old files without recipe_id."""
    recipes = [make_recipe(name, p, weights_sha256=w, **extra)
               for name in list_backbones() for p in ("rtfm", "center", "frame", "tiny")
               for w in (None, "cd" * 32)
               for extra in ({}, {"regions": "2x2", "light": "running", "fps": "10", "stride": 8},
                             {"crop": "mirror", "extra": (("origin", "imported"),), "compute_dtype": "bfloat16",
                                 "storage_dtype": "float16"})]
    recipes.append(Recipe("i3d-inception", None, 1856, layers=(("Mixed_4f", 832), ("Mixed_5c", 1024))))
    make_store(tmp_path / "feat", 2, 2, dim=16, t_range=(4, 5), mid_dim=8, stride=8)
    recipes.append(load_recipe(tmp_path / "feat"))
    for recipe in recipes:
        save_recipe(tmp_path, recipe)
        assert load_recipe(tmp_path) == recipe
        old = recipe.to_dict()
        old.pop("recipe_id")                                         # a recipe.json written without one
        assert Recipe.from_dict(old).recipe_id == recipe.recipe_id


# --- D7: a checkpoint that loads but is malformed -----------------------------------------------------------
def _head(folder: Path) -> Path:
    config = ModelConfig(feature_dim=32, heads=4, ffn_dim=16, hidden=(8,))
    torch.manual_seed(0)
    path = folder / "best.pt"
    Checkpoint.of(build_model(config), config, recipe=_recipe(feature_dim=32),
                  calibration={"normal_frame_score_quantiles": {"0.99": 0.5}},
                  scene={"quiet_share": 0.1, "bound": 2.0, "median": 1.0, "videos": 3}).save(path)
    return path


def _edited(path: Path, edit) -> Path:
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)
    return path


@pytest.mark.parametrize("edit,cause", [
    (lambda d: d.update(recipe=[1]), "recipe: not a recipe (a list, not a mapping of its fields)"),
    (lambda d: d.update(model=[1, 2]), "model: expected a state dict of named tensors, got a list"),
    (lambda d: d.update(model=None), "model: expected a state dict of named tensors, got nothing (None)"),
    (lambda d: d.update(model_config=[1]), "model_config: expected a mapping, got a list [1]"),
    (lambda d: d["model_config"].update(hidden=["a"]), "model_config.hidden: expected an integer, got 'a'"),
    (lambda d: d["model_config"].update(heads=5), "model_config: model.heads = 5 does not divide the head's D = 32"),
    (lambda d: d.update(partner=[1]), "partner: expected a mapping, got a list"),
    (lambda d: d.update(partner={"iteration": 3}), "partner: no 'model_config'"),
    (lambda d: d.update(calibration=[1]), "calibration: expected a mapping, got a list"),
    (lambda d: d.update(calibration={"normal_frame_score_quantiles": "x"}),
     "calibration: normal_frame_score_quantiles: expected a mapping of numbers, got 'x'"),
    (lambda d: d.update(scene=[1]), "scene: expected a mapping, got a list"),
    (lambda d: d.update(scene={"members": [1]}), "scene: members: expected a list of mappings"),
    (lambda d: d.update(snippet_len="x"), "snippet_len: expected an integer, got 'x'"),
    (lambda d: d.update(metrics=[1]), "metrics: expected a mapping, got a list"),
])
def test_checkpoint_with_a_malformed_field(tmp_path, edit, cause):
    path = _edited(_head(tmp_path), edit)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path}: unusable checkpoint ({cause})"
    np.save(tmp_path / "one.npy", np.ones((4, 1, 32), np.float32))
    line = one_error(CliRunner().invoke(main, ["score", str(tmp_path / "one.npy"), "--checkpoint", str(path),
                                               "-o", str(tmp_path / "out"), "--no-progress"]))
    assert line == f"error: {path}: unusable checkpoint ({cause})"


def test_checkpoint_as_written_still_loads(tmp_path):
    model, ckpt = load_checkpoint(_head(tmp_path))
    assert ckpt.recipe == _recipe(feature_dim=32) and ckpt.scene["bound"] == 2.0


def test_latest_run_pointer_with_bad_bytes(tmp_path):
    """``runs/latest`` is a text file holding the run's path where symlinks fail; bad bytes are one line."""
    (tmp_path / "runs").mkdir()
    latest = tmp_path / "runs" / "latest"
    latest.write_bytes(b"\xffrun1\n")
    np.save(tmp_path / "one.npy", np.ones((4, 1, 32), np.float32))
    line = one_error(CliRunner().invoke(main, ["score", str(tmp_path / "one.npy"), "--run", str(latest),
                                               "-o", str(tmp_path / "out"), "--no-progress"]))
    assert line == f"error: {latest}: not UTF-8 text (byte 0xff on line 1)"
