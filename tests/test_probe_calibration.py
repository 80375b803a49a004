"""tools/probe_calibration.py: how steady a quantile threshold is, calibrated on n of a pool of videos;
tools/probe_heldout.py: its crowd proxy."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from probe_calibration import false_alarms  # noqa: E402


def test_threshold_from_more_videos_lets_through_its_quantile_and_varies_less():
    """Videos of one score distribution: the 0.99 quantile of n of them lets through about 1 % of the
    others' frames, with a spread over draws that shrinks as n grows; a video that scores high as a
    whole (as Ped1's do) makes a draw that misses it let through more. Draws repeat with the seed."""
    rng = np.random.default_rng(0)
    pool = [rng.uniform(size=200) for _ in range(60)]
    few, many = false_alarms(pool, 3, 300, 0.99, seed=1), false_alarms(pool, 30, 300, 0.99, seed=1)
    assert abs(100 * many.mean() - 1.0) < 0.5 and many.std() < few.std()
    np.testing.assert_array_equal(few, false_alarms(pool, 3, 300, 0.99, seed=1))
    loud = pool[:59] + [rng.uniform(0.9, 1.0, size=200)]
    assert false_alarms(loud, 10, 300, 0.99, seed=1).mean() > many.mean()


def test_motion_grows_with_moving_pixels(tmp_path):
    """tools/probe_heldout.py's crowd proxy: a still clip moves ~0 grey levels a frame, a clip of many
    moving squares more than one of a single square; a missing file gives None."""
    from probe_heldout import motion
    from vadpipe.video import write_video

    def squares(count: int):
        for t in range(12):
            frame = np.full((48, 64, 3), 40, np.uint8)
            for k in range(count):
                x, y = (4 * t + 13 * k) % 56, (9 * k) % 40
                frame[y:y + 8, x:x + 8] = 220
            yield frame

    paths = {n: tmp_path / f"{n}.mp4" for n in (0, 1, 6)}
    for n, path in paths.items():
        write_video(path, squares(n), fps=10, crf=12)
    still, one, crowd = (motion(paths[n]) for n in (0, 1, 6))
    assert still < 0.5 < one < crowd
    assert motion(tmp_path / "missing.mp4") is None


def test_site_calibration_probe_never_measures_a_fold_with_its_own_threshold():
    """tools/probe_site_calibration.py: normal videos of one score distribution and one that scores high
    as a whole (a crowd). Each fold's threshold comes from the other folds only: with the crowd in the
    measured fold its frames pass (the calibrating folds never saw it), and event frames above every
    normal frame are all hit."""
    from probe_site_calibration import folds_of, site_figures

    rng = np.random.default_rng(0)
    frames = {f"n{i}": (rng.uniform(0.0, 0.5, size=100), np.zeros(100)) for i in range(8)}
    frames["crowd"] = (np.full(100, 0.8), np.zeros(100))
    frames["a0"] = (np.r_[rng.uniform(0.0, 0.5, 50), np.full(50, 0.9)], np.r_[np.zeros(50), np.ones(50)])
    folds = folds_of(sorted(k for k in frames if k != "a0"), 3, seed=1)
    assert sorted(sum(folds, [])) == sorted(k for k in frames if k != "a0") and len(folds) == 3
    fa, hit, n = site_figures(frames, 3, seed=1, quantile=0.99)
    assert hit == 1.0 and n == 6
    assert 100 / 900 <= fa < 130 / 900       # the crowd's 100 frames pass, about 1 % of the others
    # pooled by clips (--pooling clips): each fold's threshold is a typical clip's, never the crowd's
    fa_clips, hit_clips, _ = site_figures(frames, 3, seed=1, quantile=0.99, pooling="clips")
    assert hit_clips == 1.0 and fa <= fa_clips < 130 / 900    # the crowd never raises it: as many pass or more


def test_bagged_calibration_probe_scores_each_member_as_the_ensemble_averages_them(tmp_path):
    """tools/probe_bagged_calibration.py measures the averaging gap from one view per member: the mean of
    the members' logits is the ensemble's logit (so the gap is the average's own narrowing), and a head
    that is not a bagged ensemble is its own one member."""
    from feature_world import make_store, tiny_default
    from probe_bagged_calibration import member_views
    from vadpipe.checkpoint import load_checkpoint, score_features
    from vadpipe.plot import logit
    from vadpipe.train import train

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    cfg = tiny_default(tmp_path / "f", iterations=4, val_fraction=0.3)
    cfg.model.members, cfg.model.bagging = 3, True
    model, _ = load_checkpoint(train(cfg, out=tmp_path / "bag", progress=False).run_dir, "cpu")
    x = np.random.default_rng(0).random((12, 1, 16)).astype(np.float32)
    views = member_views(model)
    members = np.array([logit(score_features(view, x)) for view in views])
    assert len(views) == 3 and not np.allclose(members[0], members[1])
    np.testing.assert_allclose(members.mean(0), logit(score_features(model, x)), atol=1e-3)
    single, _ = load_checkpoint(train(tiny_default(tmp_path / "f", iterations=2), out=tmp_path / "one",
                                      progress=False).run_dir, "cpu")
    assert member_views(single) == [single]


def test_pooling_probe_makes_each_runs_calibration_again_as_training_made_it(tmp_path):
    """tools/probe_pooling.py measures both poolings on a run's own calibration videos, drawn again from
    its config and seed: for a bagged ensemble on folds (out of bag) and for one head with a held-out
    share, the table made again is the one training stored, whichever pooling training used."""
    from feature_world import make_store, tiny_default
    from probe_pooling import recalibrate
    from vadpipe.checkpoint import load_checkpoint
    from vadpipe.config import load_config
    from vadpipe.data import open_features
    from vadpipe.train import train

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(5, 60))
    bagged = tiny_default(tmp_path / "f", iterations=3)
    bagged.model.members, bagged.model.bagging, bagged.model.bag_folds = 3, True, True
    one = tiny_default(tmp_path / "f", iterations=3, val_fraction=0.3)
    one.train.calibration_pooling = "clips"
    data = open_features(tmp_path / "f")
    for name, cfg in (("bag", bagged), ("one", one)):
        run = train(cfg, out=tmp_path / name, progress=False).run_dir
        model, ckpt = load_checkpoint(run, "cpu")
        record = recalibrate(model, load_config(run / "config.yaml"), data)
        stored = ckpt.calibration
        assert record["n_videos"] == stored["n_videos"] and record["source"] == stored["source"]
        assert record["pooled"][stored["pooling"]]["0.99"] == pytest.approx(
            stored["normal_frame_score_quantiles"]["0.99"], rel=1e-6)
