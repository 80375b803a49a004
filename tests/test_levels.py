"""Score levels (``model.score_levels``, models/levels.py): the default's scores mapped after training so
that 0.5 is its ``auto`` threshold and a typical held-out normal frame 0.01, ranking kept."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from feature_world import make_store, tiny_default
from vadpipe.calibration import calibration_frames, calibration_scores
from vadpipe.checkpoint import build_model, load_checkpoint, read_checkpoint, score_features
from vadpipe.config import model_config_from_dict, validate
from vadpipe.data import open_features
from vadpipe.errors import ConfigError
from vadpipe.models.levels import MIN_SPREAD, ScoreLevels, logit64
from vadpipe.presets import preset
from vadpipe.run_split import RunSplit
from vadpipe.train import train

torch.set_num_threads(1)


def test_levels_put_the_threshold_at_half_a_typical_normal_frame_at_one_percent_and_keep_the_order():
    levels = ScoreLevels()
    raw = np.array([1e-7, 0.2, 0.9, 0.99, 0.997, 0.9995, 1 - 6e-8], dtype=np.float32)
    assert np.array_equal(levels.apply(raw), raw.astype(np.float64))       # unfitted: the identity
    centre, spread = levels.fit(0.997, 0.9)
    assert centre == pytest.approx(float(logit64(np.array(0.997))))
    assert spread == pytest.approx(float(logit64(np.array(0.997)) - logit64(np.array(0.9))))
    out = levels.apply(raw)
    assert out[raw == np.float32(0.997)][0] == pytest.approx(0.5, abs=1e-5)   # 0.997 in float32
    assert out[raw == np.float32(0.9)][0] == pytest.approx(0.01, rel=1e-5)
    assert np.all(np.diff(out) > 0)                                         # strictly monotone
    as32 = out.astype(np.float32)
    assert as32.min() > 0 and as32.max() < 1                               # never rounds to 0 or 1 in float32
    assert np.all(np.diff(as32) > 0)
    before = float(levels.centre)                         # a quantile no centre moves: the centre stays
    assert levels.centre_at(lambda: 0.7) == before and float(levels.centre) == before
    moved = levels.centre_at(lambda: float(levels.apply(np.array([0.999]))[0]))   # one frame at 0.999 reads 0.5
    assert moved == pytest.approx(float(logit64(np.array(0.999))), abs=1e-6)
    levels.fit(0.8, 0.8)                                  # normal frames all alike: the least spread, no 0/0
    assert float(levels.unit) == pytest.approx(MIN_SPREAD / np.log(99))
    levels.reset()
    assert not levels.is_fitted and np.array_equal(levels.apply(raw), raw.astype(np.float64))


def _small_default(features, **train_fields):
    """The default shrunk (``tiny_default``) with its batches, windows and schedule of 30 iterations."""
    return tiny_default(features, lr=1e-3, iterations=30, eval_every=20, log_every=5, max_segments=256,
                        batch_anomalous=16, batch_normal=16, **train_fields)


def test_default_run_reports_levels_its_threshold_at_half_and_ranks_as_its_raw_scores(tmp_path):
    make_store(tmp_path / "train", 8, 10, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    lines = []
    run = train(_small_default(tmp_path / "train"), out=tmp_path / "run", progress=False, log=lines.append)
    model, ckpt = load_checkpoint(run.run_dir, "cpu")                     # weights_only=True inside
    assert model.levels.is_fitted
    # select last: fitted once
    assert sum(line.startswith("score levels: 0.5 at the raw auto threshold") for line in lines) == 1
    assert read_checkpoint(run.run_dir, "last")["model"]["levels.fitted"] == 1
    # the held-out normal videos that set the threshold, scored as calibration scores them (cross-fitted: the
    # default's terms saw them, tests/test_terms_fit.py): their 0.99 quantile reads 0.5, their median 0.01
    data = open_features(tmp_path / "train")
    videos = data.videos
    split = RunSplit.from_record(data, read_checkpoint(run.run_dir, "last")["last"]["split"], "test")
    scores, held, _ = calibration_scores(model, data, split, None, None, torch.device("cpu"), crossfit_seed=0)
    frames = np.concatenate([calibration_frames(scores[v.id], v.frames, 16, 16, "linear") for v in held])
    assert ckpt.calibration["normal_frame_score_quantiles"]["0.99"] == pytest.approx(0.5, abs=1e-4)
    assert np.quantile(frames, 0.99) == pytest.approx(0.5, abs=1e-4)
    # the median snippet maps to 0.01; frames between levels, and the centre moved so that their 0.99
    # quantile reads 0.5, put the median frame near it
    assert np.quantile(frames, 0.5) == pytest.approx(0.01, rel=0.5)
    # a snippet's level is a strictly increasing function of its raw score: the same order in every video
    levels = dict(model.levels.state_dict())
    for video in videos:
        model.levels.reset()
        raw = score_features(model, video.raw())
        model.levels.load_state_dict(levels)
        lv = score_features(model, video.raw())
        assert np.array_equal(np.argsort(raw, kind="stable"), np.argsort(lv, kind="stable"))
        assert lv.min() > 0 and lv.max() < 1
    # vadpipe score says what its numbers are, and flags at the level 0.5
    from vadpipe.score import ScoreOptions, run_score

    (tmp_path / "one").mkdir()
    shutil.copy(tmp_path / "train" / "recipe.json", tmp_path / "one")       # the features' recipe, as extract writes
    np.save(tmp_path / "one" / "clip.npy", np.asarray(videos[0].raw()))
    assert run_score([str(tmp_path / "one" / "clip.npy")], checkpoint=str(run.run_dir / "best.pt"), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "scores", fps=10.0, progress=False)) == 0
    report = json.loads(next((tmp_path / "scores").glob("*.json")).read_text())
    assert report["scores"] == "levels" and report["threshold"]["value"] == pytest.approx(0.5, abs=1e-4)


def test_the_articles_head_and_old_checkpoints_report_raw_scores_and_a_bad_value_is_refused():
    paper = preset("paper")
    assert paper.model.score_levels == "raw" and preset("default").model.score_levels == "calibrated"
    assert not hasattr(build_model(paper.model), "levels")
    assert not any(k.startswith("levels.") for k in build_model(paper.model).state_dict())
    old = {k: v for k, v in vars(preset("default").model).items() if k != "score_levels"}
    assert model_config_from_dict(old).score_levels == "raw"              # made before levels: as it scored
    paper.model.score_levels = "percent"
    with pytest.raises(ConfigError, match="score_levels"):
        validate(paper)


def test_nothing_held_out_sets_the_levels_on_the_training_normals_and_says_so(tmp_path):
    make_store(tmp_path / "train", 6, 6, dim=16, seed=2, signal=0.8, t_range=(20, 30))
    lines = []
    run = train(_small_default(tmp_path / "train", val_fraction=0.0), out=tmp_path / "run", progress=False,
                log=lines.append)
    assert any("training normal videos (none held out: optimistic)" in line and line.startswith("score levels")
               for line in lines)
    assert read_checkpoint(run.run_dir, "last")["model"]["levels.fitted"] == 1
