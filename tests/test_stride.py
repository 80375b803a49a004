"""Overlapping snippets (``vadpipe extract --stride N``): the recipe, the stored T, resuming, ground truth
split by the frames the snippets reach, and scoring a clip with a head trained on such features."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_video
from vadpipe.checkpoint import Checkpoint
from vadpipe.cli import main
from vadpipe.errors import ConfigError
from vadpipe.extractors.presets import make_recipe
from vadpipe.features import expected_snippets
from vadpipe.recipe import load_recipe

torch.set_num_threads(1)


def _extract_args(tmp_path, out="f"):
    return ["extract", str(tmp_path / "videos"), "--out", str(tmp_path / out), "--backbone", "i3d-inception",
            "--weights", "random", "--preset", "tiny", "--workers", "0", "--no-progress"]


def test_extract_cli_overlaps_snippets_records_the_stride_and_resumes(tmp_path):
    make_video(tmp_path / "videos" / "Fighting" / "a.mp4", 40)
    args = _extract_args(tmp_path)
    first = CliRunner().invoke(main, args + ["--stride", "8"])
    assert first.exit_code == 0, first.output
    # snippets start at 0, 8, 16, 24: the fourth reaches frame 40 exactly, so no padded tail
    assert np.load(tmp_path / "f" / "Fighting__a.npy").shape == (4, 1, 1024) == (expected_snippets(40, 16, 8), 1, 1024)
    recipe = load_recipe(tmp_path / "f")
    assert recipe.stride == 8 and recipe.recipe_id != make_recipe("i3d-inception", "tiny").recipe_id
    stamp = (tmp_path / "f" / "Fighting__a.npy").stat().st_mtime_ns
    again = CliRunner().invoke(main, args + ["--stride", "8"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "f" / "Fighting__a.npy").stat().st_mtime_ns == stamp    # complete: kept, not redone


@pytest.mark.parametrize("stride", ["17", "0"])
def test_a_stride_past_the_snippet_or_below_one_is_one_line(tmp_path, stride):
    make_video(tmp_path / "videos" / "Fighting" / "a.mp4", 20)
    bad = CliRunner().invoke(main, _extract_args(tmp_path) + ["--stride", stride])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "stride" in bad.output.strip().splitlines()[-1]
    with pytest.raises(ConfigError, match="no snippet sees"):
        make_recipe("i3d-inception", "tiny", stride=17)


def test_concatenated_ground_truth_splits_by_the_frames_overlapping_snippets_reach():
    from vadpipe.groundtruth import split_concat_gt

    gt = np.r_[np.zeros(40), np.ones(24)]         # video a: 4 snippets every 8 -> 40 frames; b: 2 -> 24
    parts = split_concat_gt(gt, ["a", "b"], snippets=[4, 2], stride=8)
    assert parts["a"].mask.sum() == 0 and parts["b"].mask.size == 24 and parts["b"].mask.all()
    assert "(T-1)*8+16" in parts["a"].note
    with pytest.raises(Exception, match=r"\(T-1\)\*8\+16"):
        split_concat_gt(np.zeros(65), ["a", "b"], snippets=[4, 2], stride=8)


def test_score_extracts_a_clip_with_the_checkpoints_stride_and_scores_every_frame(tmp_path):
    from conftest import score_clip_with_a_head
    from vadpipe.config import ModelConfig

    config = ModelConfig(feature_dim=1024, heads=4, ffn_dim=64, hidden=(32, 16), frame_scores="hold")
    frames, scores, report = score_clip_with_a_head(
        tmp_path, config, make_recipe("i3d-inception", "tiny", weights_sha256=None, stride=8), 44)
    assert frames.tolist() == list(range(44)) and np.isfinite(scores).all()
    assert report["snippets"] == expected_snippets(44, 16, 8) == 5      # 4 whole snippets and a padded tail
    assert (report["recipe"]["snippet_len"], report["recipe"]["stride"]) == (16, 8)


def test_training_validates_and_evaluates_overlapping_snippets_frame_by_frame(tmp_path):
    """A store of stride-8 snippets trains with frame-level validation (every held-out video aligned,
    none skipped as a mismatch), and evaluation aligns each test video exactly or by its tail."""
    from feature_world import make_store
    from vadpipe.presets import preset
    from vadpipe.evaluate import evaluate_run
    from vadpipe.train import train

    make_store(tmp_path / "train", 12, 12, dim=32, seed=0, signal=0.8, stride=8, t_range=(20, 60))
    make_store(tmp_path / "test", 6, 6, dim=32, seed=1, signal=0.8, stride=8, t_range=(20, 60))
    cfg = preset("default")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    t = cfg.train
    t.features, t.device, t.epochs, t.iterations, t.eval_every, t.log_every, t.lr = (
        str(tmp_path / "train"), "cpu", 0, 100, 50, 50, 1e-3)
    t.val_gt = str(tmp_path / "train" / "gt.json")
    result = train(cfg, out=tmp_path / "r", progress=False)
    assert result.best_metrics["val_metric"] == "frame_auc" and result.best_metrics["val_skipped"] == 0
    res, _ = evaluate_run(result.run_dir, tmp_path / "test", tmp_path / "test" / "gt.json", device="cpu",
                          progress=False)
    assert {a.action for a in res.alignments} <= {"exact", "tail"} and len(res.alignments) == 12
    assert res.metrics["auc"] > 0.85 and res.metrics["auc_anomalous_videos"] > 0.8, res.summary()
    m = Checkpoint.load(result.run_dir, "last").model_config     # the default's counts, meant at stride 16
    assert (m.horizon, m.horizon_cap, m.stride_base) == (10, 64, 8)


def test_segment_counts_follow_the_stride_they_were_written_for():
    """A window of 5 segments past 32, written for stride 16, spans the same frames at stride 8 (10 past
    64) and at 32 (3 past 16); centred windows rescale their reach and stay odd; off stays off, the
    stride it was written for changes nothing, and the result applies again as itself."""
    from vadpipe.config import ModelConfig, at_stride
    from vadpipe.presets import preset

    m = preset("default").model
    assert m.stride_base == 16 and at_stride(m, 16) is m
    s8 = at_stride(m, 8)
    assert (s8.horizon, s8.horizon_cap, s8.context, s8.smooth_window, s8.stride_base) == (10, 64, 0, 1, 8)
    assert at_stride(s8, 8) is s8 and (m.horizon, m.horizon_cap) == (5, 32)      # pure: m is untouched
    s32 = at_stride(m, 32)
    assert (s32.horizon, s32.horizon_cap) == (3, 16)
    windows = ModelConfig(context=3, smooth_window=5, normal_context=3, horizon=1, stride_base=16)
    assert (lambda w: (w.context, w.smooth_window, w.normal_context))(at_stride(windows, 8)) == (5, 9, 5)
    assert (lambda w: (w.context, w.smooth_window, w.horizon))(at_stride(windows, 64)) == (1, 3, 1)
    assert at_stride(ModelConfig(horizon=5), 8).horizon == 5                    # stride_base 0: as written
    assert preset("paper").model.stride_base == 0


def test_probe_snippet_labels_follow_the_stride():
    """tools/probe_features.py labels snippet i by frames [i*stride, i*stride + 16): an event at frames
    20..29 of a 40-frame video marks snippets 0..2 at stride 8 (the first covers 0..15: not it)."""
    import sys
    from pathlib import Path

    from vadpipe.groundtruth import VideoGT

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from probe_features import snippet_labels

    gt = VideoGT("v", 40, [(20, 30)])
    assert snippet_labels(gt, 4, 16, 8).tolist() == [0, 1, 1, 1]
    assert snippet_labels(gt, 3, 16).tolist() == [0, 1, 0]          # no overlap: frames 0-15, 16-31, 32-47
