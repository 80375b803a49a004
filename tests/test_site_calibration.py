"""`vadpipe calibrate`: a run's `auto` threshold re-fitted on a camera's normal clips (videos or features).

A seeded random LTGS head (small) in the real checkpoint format, on Inception I3D features with the
``tiny`` recipe; feature folders of random snippet features; one generated clip extracted with random
backbone weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_video
from vadpipe.checkpoint import Checkpoint, build_model, load_checkpoint, score_features, scoring_rule
from vadpipe.cli import main
from vadpipe.config import ModelConfig
from vadpipe.errors import VadpipeError
from vadpipe.extractors.presets import make_recipe
from vadpipe.intervals import snippet_reach, snippets_to_frames
from vadpipe.recipe import save_recipe
from vadpipe.score import ScoreOptions, run_score
from vadpipe.score_io import read_scores_csv
from vadpipe.site_calibration import site_calibrate
from vadpipe.threshold import SITE_CALIBRATION, resolve_threshold

TRAINING_CALIBRATION = {"normal_frame_score_quantiles": {"0.95": 0.2, "0.99": 0.3, "0.999": 0.4},
                        "source": "held-out normal training videos", "n_videos": 5, "videos": {}}
QUIET = ScoreOptions(threshold=None, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def recipe():
    return make_recipe("i3d-inception", "tiny", weights_sha256=None)


def save_head(path: Path, recipe) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=1024, heads=4, ffn_dim=64, hidden=(32, 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    Checkpoint.of(build_model(config), config, recipe=recipe, calibration=TRAINING_CALIBRATION).save(path)
    return path


def feature_folder(folder: Path, recipe, lengths=(6, 9, 12, 7), seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    save_recipe(folder, recipe)
    rng = np.random.default_rng(seed)
    for i, t in enumerate(lengths):
        np.save(folder / f"normal_{i}.npy", rng.normal(size=(t, 1, 1024)).astype(np.float32))
    return folder


def expected_frames(ckpt_path: Path, folder: Path, recipe) -> np.ndarray:
    """Every clip's frame scores, computed here from the head and the snippet-to-frame rule."""
    model, _ = load_checkpoint(ckpt_path)
    mode = scoring_rule(model).frame_scores
    out = []
    for npy in sorted(folder.glob("*.npy")):
        snippets = score_features(model, np.load(npy))
        out.append(snippets_to_frames(snippets, snippet_reach(snippets.size, recipe.snippet_len, recipe.stride),
                                      recipe.snippet_len, recipe.stride, mode))
    return np.concatenate(out)


def test_quantiles_of_the_clips_replace_the_calibration_and_the_old_one_is_kept(tmp_path, recipe):
    ckpt = save_head(tmp_path / "run" / "best.pt", recipe)
    original = ckpt.read_bytes()
    folder = feature_folder(tmp_path / "site", recipe)
    out = tmp_path / "cam2.pt"
    result = site_calibrate([str(folder)], ckpt, out, QUIET)
    assert ckpt.read_bytes() == original                  # --out: the run's own checkpoint untouched
    stored = torch.load(out, weights_only=True)["calibration"]     # plain types still
    frames = expected_frames(ckpt, folder, recipe)
    for q in ("0.95", "0.99", "0.999"):                   # the quantiles the checkpoint had
        assert stored["normal_frame_score_quantiles"][q] == pytest.approx(np.quantile(frames, float(q)), abs=1e-6)
    assert stored["source"] == SITE_CALIBRATION and stored["n_videos"] == 4 and len(stored["videos"]) == 4
    assert stored["previous"] == TRAINING_CALIBRATION
    threshold = resolve_threshold("auto", Checkpoint.load(out).calibration)
    assert threshold.value == stored["normal_frame_score_quantiles"]["0.99"]
    assert threshold.calibrated_on == SITE_CALIBRATION and not threshold.optimistic
    assert "(auto: site normal q0.99)" in threshold.label()
    assert result.frames == frames.size and not result.errors
    lines = result.summary_lines()
    assert f"q0.99 0.3 -> {stored['normal_frame_score_quantiles']['0.99']:.4g}" in lines[0]
    assert any(line.startswith("replaced: calibration from 5 held-out normal training videos") for line in lines)
    # calibrating again keeps one level: the calibration it replaced, not a chain
    again = site_calibrate([str(folder / "normal_0.npy")], out, None, QUIET, quantiles=[0.5, 0.99])
    record = Checkpoint.load(out).calibration
    assert set(record["normal_frame_score_quantiles"]) == {"0.5", "0.99"}
    assert "previous" not in record["previous"] and record["previous"]["source"] == SITE_CALIBRATION
    assert any("only 1 clip(s)" in note for note in again.notes())


def test_pooling_follows_the_checkpoint_unless_given(tmp_path, recipe):
    """`vadpipe calibrate` pools the clips as the calibration it replaces did (one written before the
    choice: frames); --pooling clips stores the median over clips of each clip's quantile, and a later
    calibration without the option keeps pooling clips."""
    ckpt = save_head(tmp_path / "run" / "best.pt", recipe)
    folder = feature_folder(tmp_path / "site", recipe)
    assert site_calibrate([str(folder)], ckpt, tmp_path / "a.pt", QUIET).calibration["pooling"] == "frames"
    model, _ = load_checkpoint(ckpt)
    mode = scoring_rule(model).frame_scores
    per_clip = []
    for npy in sorted(folder.glob("*.npy")):
        snippets = score_features(model, np.load(npy))
        per_clip.append(np.quantile(snippets_to_frames(snippets, snippet_reach(snippets.size, recipe.snippet_len,
                                                                                recipe.stride),
                                                       recipe.snippet_len, recipe.stride, mode), 0.99))
    result = CliRunner().invoke(main, ["calibrate", str(folder), "--checkpoint", str(ckpt), "--out",
                                       str(tmp_path / "b.pt"), "--pooling", "clips", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "median over clips" in result.output
    stored = Checkpoint.load(tmp_path / "b.pt").calibration
    assert stored["pooling"] == "clips"
    assert stored["normal_frame_score_quantiles"]["0.99"] == pytest.approx(np.median(per_clip), abs=1e-6)
    again = site_calibrate([str(folder)], tmp_path / "b.pt", tmp_path / "c.pt", QUIET)
    assert again.calibration["pooling"] == "clips"


def test_cli_in_place_with_a_bad_clip_named_and_the_others_used(tmp_path, recipe):
    save_head(tmp_path / "run" / "best.pt", recipe)
    folder = feature_folder(tmp_path / "site", recipe)
    (folder / "broken.npy").write_bytes(b"not an array")
    np.save(folder / "narrow.npy", np.zeros((5, 1, 512), np.float32))
    result = CliRunner().invoke(main, ["calibrate", str(folder), "--run", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "broken.npy" in errors[0] and "cannot read features" in errors[0]
    assert "narrow.npy" in errors[1] and "D = 512" in errors[1]
    stored = Checkpoint.load(tmp_path / "run").calibration          # written over best.pt, the 4 good clips
    assert stored["n_videos"] == 4 and stored["source"] == SITE_CALIBRATION
    assert "calibrated on 4 normal clips" in result.output


def test_nothing_scored_leaves_the_checkpoint_as_it_was(tmp_path, recipe):
    ckpt = save_head(tmp_path / "best.pt", recipe)
    original = ckpt.read_bytes()
    other = feature_folder(tmp_path / "other", make_recipe("i3d-inception", "center", weights_sha256=None))
    result = CliRunner().invoke(main, ["calibrate", str(other), "--checkpoint", str(ckpt), "--no-progress"])
    assert result.exit_code == 1
    assert "different feature recipes" in result.output
    assert "none of the 4 clip(s) could be scored" in result.output and "unchanged" in result.output
    assert ckpt.read_bytes() == original
    with pytest.raises(VadpipeError, match="no normal clip to calibrate on"):
        site_calibrate([str(tmp_path / "nowhere")], ckpt, None, QUIET, echo_err=lambda s: None)


def test_a_video_is_calibrated_on_the_scores_vadpipe_score_gives_it(tmp_path, recipe):
    ckpt = save_head(tmp_path / "best.pt", recipe)
    clip = make_video(tmp_path / "videos" / "normal.mp4", 45, width=96, height=72, fps=20.0)
    site_calibrate([str(clip)], ckpt, None, QUIET, quantiles=[0.5, 0.99])
    assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out", progress=False)) == 0
    _, _, scores = read_scores_csv(tmp_path / "out" / "normal.scores.csv")
    table = Checkpoint.load(ckpt).calibration["normal_frame_score_quantiles"]
    assert table["0.5"] == pytest.approx(np.quantile(scores, 0.5), abs=1e-6)
    report = json.loads((tmp_path / "out" / "normal.json").read_text())
    assert report["threshold"]["calibrated_on"] == SITE_CALIBRATION
    assert report["threshold"]["value"] == pytest.approx(table["0.99"])


def test_bad_quantiles_are_one_line(tmp_path, recipe):
    ckpt = save_head(tmp_path / "best.pt", recipe)
    folder = feature_folder(tmp_path / "site", recipe, lengths=(4,))
    for value, words in (("0.9,1.5", "each must lie in (0, 1)"), ("high", "expected numbers")):
        result = CliRunner().invoke(main, ["calibrate", str(folder), "--checkpoint", str(ckpt), "--quantiles", value,
                                           "--no-progress"])
        assert result.exit_code != 0 and words in result.output
        assert "Traceback" not in result.output


def test_a_calibration_holding_only_its_quantiles_is_summarised_and_replaced(tmp_path, recipe):
    """Heads made outside training may carry only the quantiles; calibrate wrote the checkpoint, then died on
    the old calibration's missing n_videos / source."""
    from vadpipe.calibration import calibration_summary

    assert calibration_summary({"normal_frame_score_quantiles": {"0.99": 0.5}}).startswith("calibration from ?")
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=1024, heads=4, ffn_dim=64, hidden=(32, 16))
    ckpt = tmp_path / "best.pt"
    Checkpoint.of(build_model(config), config, recipe=recipe,
                  calibration={"normal_frame_score_quantiles": {"0.99": 0.5}}).save(ckpt)
    folder = feature_folder(tmp_path / "site", recipe, lengths=(4,))
    result = CliRunner().invoke(main, ["calibrate", str(folder), "--checkpoint", str(ckpt), "-o",
                                       str(tmp_path / "site.pt"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "replaced: calibration from ?" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args,words", [(["--fps", "0"], "expected a positive finite number"),
                                        (["--fps", "nan"], "expected a positive finite number"),
                                        (["--threshold", "nan"], "expected a finite number"),
                                        (["--threshold", "auto0.999"], "expected a finite number"),
                                        (["--threshold", "auto:"], "expected a finite number"),
                                        (["--min-duration", "inf"], "expected a finite number"),
                                        (["--merge-gap", "-1"], "expected a number >= 0"),
                                        (["--threads", "0"], "x>=1")])
def test_bad_rates_and_thresholds_are_one_line_before_any_clip(tmp_path, recipe, args, words):
    ckpt = save_head(tmp_path / "best.pt", recipe)
    folder = feature_folder(tmp_path / "site", recipe, lengths=(4,))
    result = CliRunner().invoke(main, ["score", str(folder), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                       "--no-progress", *args])
    assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
