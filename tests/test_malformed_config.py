"""Configs, recipes and checkpoints that load but are malformed: one line naming the file and the cause.

cli review D5 (config YAML shapes and scalar types, non-UTF-8).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from vadpipe.cli import main
from vadpipe.config import load_config
from vadpipe.errors import ConfigError
from vadpipe.presets import apply_overrides, preset


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
])
def test_config_not_shaped_like_a_config(tmp_path, text, cause):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert one_error(train_with(path)) == f"error: {path}: {cause}"


@pytest.mark.parametrize("text,cause", [
    ('train:\n  lr: "x"\n', "train.lr: expected a number, got 'x'"),
    ('train:\n  iterations: "four"\n', "train.iterations: expected an integer, got 'four'"),
    ("model:\n  hidden: [a, b]\n", "model.hidden: expected an integer, got 'a'"),
    ("model:\n  use_lt: maybe\n", "model.use_lt: expected true or false, got 'maybe'"),
    ("train:\n  device: 5\n", "train.device: expected text, got 5 (quote it: '5')"),
    ("model:\n  head_span: [0]\n", "model.head_span: expected a list of 2 values, got [0]"),
])
def test_config_scalar_of_the_wrong_type(tmp_path, text, cause):
    path = tmp_path / "typed.yaml"
    path.write_text(text)
    assert one_error(train_with(path)) == f"error: {path}: {cause}"


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
