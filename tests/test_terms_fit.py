"""``model.terms_fit``: the held-out normal videos join the fitted terms (normal statistics, pseudo-label
stage) once they have calibrated, and calibration scores them cross-fitted (vadpipe/calibration.py)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from feature_world import make_store, tiny_default
from vadpipe.calibration import CROSS_FITTED, CROSSFIT_FOLDS, calibrate_split, calibration_scores, crossfit_scores
from vadpipe.checkpoint import build_model, load_checkpoint, read_checkpoint
from vadpipe.config import model_config_from_dict, validate
from vadpipe.data import open_features
from vadpipe.errors import ConfigError
from vadpipe.fitted_terms import fit_terms, held_out_normals, terms_videos
from vadpipe.presets import preset
from vadpipe.run_split import RunSplit
from vadpipe.train import same_state, train
from vadpipe.train_plan import resolve_terms_fit
from vadpipe.validation import score_videos

torch.set_num_threads(1)
CPU = torch.device("cpu")


def _default_head(dim: int) -> torch.nn.Module:
    m = preset("default").model
    m.feature_dim, m.heads, m.ffn_dim = dim, 4, 64
    return build_model(m)


def _split(data, n_held_normal: int) -> RunSplit:
    normal = [i for i, v in enumerate(data.videos) if v.label == 0]
    held = np.array(normal[:n_held_normal])
    return RunSplit(np.array([i for i in range(len(data.videos)) if i not in set(held)]), held)


def test_the_presets_old_checkpoints_a_bad_value_and_where_all_is_not_built():
    assert preset("default").model.terms_fit == "all"
    assert preset("paper").model.terms_fit == "train" and preset("ensemble").model.terms_fit == "train"
    old = {k: v for k, v in vars(preset("default").model).items() if k != "terms_fit"}
    assert model_config_from_dict(old).terms_fit == "train"        # written before the switch: as it was fitted
    bad = preset("default")
    bad.model.terms_fit = "held"
    with pytest.raises(ConfigError, match="terms_fit must be one of"):
        validate(bad)
    # members calibrated out of bag, a pair, the stage's held-out unit: their terms stay on the training split
    for fields, why in (({"bagging": True, "members": 2}, "model.bagging without model.bag_folds"),
                        ({"partner": "rtfm"}, "model.partner"),
                        ({"pseudo_unit": "held-out"}, "model.pseudo_unit held-out")):
        cfg, lines = preset("default"), []
        for key, value in fields.items():
            setattr(cfg.model, key, value)
        resolve_terms_fit(cfg, lines.append)
        assert cfg.model.terms_fit == "train" and lines == [
            f"model.terms_fit: train with {why} (all is built for one head and for members on disjoint folds, "
            "whose held-out normal videos calibrate cross-fitted)"]
    for built in (preset("default"), preset("ensemble")):          # one head; members on disjoint folds
        built.model.terms_fit, lines = "all", []
        resolve_terms_fit(built, lines.append)
        assert built.model.terms_fit == "all" and not lines


def test_crossfit_scores_each_held_out_video_with_terms_fitted_without_it(tmp_path):
    make_store(tmp_path / "f", 6, 9, dim=16, seed=1, signal=0.8, t_range=(12, 24))
    data = open_features(tmp_path / "f")
    split = _split(data, 6)                       # 6 held-out normal videos: CROSSFIT_FOLDS folds
    torch.manual_seed(0)
    model = _default_head(16)
    train_videos = terms_videos(data, split, with_held_out=False)
    held = held_out_normals(data, split.held_idx)
    assert terms_videos(data, split, with_held_out=True) == train_videos + held
    fit_terms(model, train_videos + held, 0, CPU, lambda line: None)    # the final terms: every normal video
    before = copy.deepcopy(model.state_dict())
    scores = crossfit_scores(model, train_videos, held, 0, CPU)
    assert same_state(before, model.state_dict())                     # the model itself is left as it was
    assert set(scores) == {v.id for v in held} and CROSSFIT_FOLDS == 5
    own = score_videos(model, held, CPU)
    for fold in range(CROSSFIT_FOLDS):                                  # by position: fold 0 holds videos 0 and 5
        members = [v for i, v in enumerate(held) if i % CROSSFIT_FOLDS == fold]
        other = copy.deepcopy(model)
        fit_terms(other, train_videos + [v for v in held if v not in members], 0, CPU, lambda line: None)
        direct = score_videos(other, members, CPU)
        for v in members:
            assert np.array_equal(scores[v.id], direct[v.id])
            assert not np.array_equal(scores[v.id], own[v.id])          # the final terms saw it: other scores
    # the run's calibration asks for it by seed; without one (terms_fit train) the model scores as it is
    got, videos, source = calibration_scores(model, data, split, None, None, CPU, crossfit_seed=0)
    assert source == CROSS_FITTED and [v.id for v in videos] == [v.id for v in held]
    assert all(np.array_equal(got[k], scores[k]) for k in scores)
    got, _, source = calibration_scores(model, data, split, None, None, CPU)
    assert source != CROSS_FITTED and all(np.array_equal(got[k], own[k]) for k in own)


def test_a_default_run_fits_its_terms_on_every_normal_video_and_calibrates_cross_fitted(tmp_path, monkeypatch):
    import vadpipe.calibration as calibration

    make_store(tmp_path / "train", 8, 10, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    lines, crossfits = [], []
    monkeypatch.setattr(calibration, "crossfit_scores",
                        lambda *a, **k: crossfits.append(1) or crossfit_scores(*a, **k))
    cfg = tiny_default(tmp_path / "train", lr=1e-3, iterations=30, eval_every=20, log_every=5)
    run = train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    assert len(crossfits) == 1                    # the levels' raw scores, mapped for the threshold
    monkeypatch.undo()
    assert sum("fitted terms: the training split and 3 held-out normal videos" in line for line in lines) == 1
    model, ckpt = load_checkpoint(run.run_dir, "cpu")
    assert ckpt.model_config.terms_fit == "all" and ckpt.calibration["source"] == CROSS_FITTED
    assert ckpt.calibration["normal_frame_score_quantiles"]["0.99"] == pytest.approx(0.5, abs=1e-4)
    # its normal statistics are the ones fitted on the training split and the held-out normal videos
    data = open_features(tmp_path / "train")
    split = RunSplit.from_record(data, read_checkpoint(run.run_dir, "last")["last"]["split"], "test")
    refit = copy.deepcopy(model)
    fit_terms(refit, terms_videos(data, split, with_held_out=True), cfg.train.seed, CPU, lambda line: None)
    for key in ("normal_stats.mean", "normal_stats.precision", "normal_stats.scale", "pseudo_stage.scale"):
        assert torch.allclose(refit.state_dict()[key], model.state_dict()[key], atol=1e-6), key
    fit_terms(refit, terms_videos(data, split, with_held_out=False), cfg.train.seed, CPU, lambda line: None)
    assert not torch.allclose(refit.state_dict()["normal_stats.mean"], model.state_dict()["normal_stats.mean"])
    # training cross-fits once: the threshold maps the raw scores the levels were fitted on; scoring (and
    # cross-fitting) the held-out normal videos again in levels gives the same table to float32 rounding
    t = cfg.train
    again = calibrate_split(model, data, split, None, None, t.calibration_quantiles, ckpt.model_config.frame_scores,
                            CPU, t.calibration_pooling, crossfit_seed=t.seed)
    assert sum(line.startswith("score levels:") for line in lines) == 1
    for q, value in again["normal_frame_score_quantiles"].items():
        assert ckpt.calibration["normal_frame_score_quantiles"][q] == pytest.approx(value, rel=1e-5, abs=1e-7), q
    assert {v: r["frames"] for v, r in again["videos"].items()} == {
        v: r["frames"] for v, r in ckpt.calibration["videos"].items()}


def test_select_best_fits_the_terms_on_each_checkpoints_own_weights(tmp_path):
    """select last fits once and both checkpoints carry it; a best checkpoint of other weights is fitted on
    its own (train._finish)."""
    make_store(tmp_path / "train", 8, 10, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    for select, fits in (("last", 1), ("best", 2)):
        lines = []
        # a rate at which validation peaks before the last step (at 1e-3 the default kept improving to it)
        cfg = tiny_default(tmp_path / "train", lr=3e-3, iterations=30, eval_every=5, log_every=5, select=select,
                           holdout="both", val_fraction=0.4)
        run = train(cfg, out=tmp_path / select, progress=False, log=lines.append)
        best, last = (read_checkpoint(run.run_dir, which) for which in ("best", "last"))
        assert sum(line.startswith("score levels:") for line in lines) == fits
        assert best["model"]["levels.fitted"] == 1 and best["model"]["normal_stats.scale"][4] == 1
        same = same_state(best["model"], last["model"])
        assert same if select == "last" else (not same and best["metrics"]["best_iteration"] < 30)


def test_the_probe_refits_a_train_run_into_what_a_run_trained_with_all_holds(tmp_path):
    """tools/probe_terms_fit.py ``--terms both`` on a run trained with ``terms_fit`` train gives the terms,
    levels and threshold of the same run trained with ``all`` (the head trains alike); ``statistics`` fits
    the stage on the training split alone."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from probe_terms_fit import refit_with_held_out

    make_store(tmp_path / "train", 8, 10, dim=16, seed=0, signal=0.8, t_range=(20, 40))
    runs = {}
    for terms in ("train", "all"):
        cfg = tiny_default(tmp_path / "train", lr=1e-3, iterations=20, eval_every=10, log_every=5)
        cfg.model.terms_fit = terms
        runs[terms] = train(cfg, out=tmp_path / terms, progress=False, log=lambda line: None).run_dir
    bench = SimpleNamespace(train=str(tmp_path / "train"))
    model, ckpt = load_checkpoint(runs["train"], "cpu")
    refitted = refit_with_held_out(model, ckpt, runs["train"], bench, "both")
    trained, trained_ckpt = load_checkpoint(runs["all"], "cpu")
    for key in ("normal_stats.mean", "normal_stats.scale", "pseudo_stage.coef", "levels.centre", "levels.unit"):
        assert torch.allclose(model.state_dict()[key], trained.state_dict()[key], atol=1e-6), key
    q = "normal_frame_score_quantiles"
    assert refitted.calibration["source"] == CROSS_FITTED
    assert refitted.calibration[q]["0.99"] == pytest.approx(trained_ckpt.calibration[q]["0.99"], abs=1e-6)
    with pytest.raises(SystemExit, match="already saw the held-out normal videos"):
        refit_with_held_out(trained, trained_ckpt, runs["all"], bench, "both")
    stats_only, ckpt = load_checkpoint(runs["train"], "cpu")
    refit_with_held_out(stats_only, ckpt, runs["train"], bench, "statistics")
    assert torch.allclose(stats_only.state_dict()["normal_stats.mean"], trained.state_dict()["normal_stats.mean"])
    assert not torch.allclose(stats_only.state_dict()["pseudo_stage.coef"], trained.state_dict()["pseudo_stage.coef"])


def test_the_camera_probe_groups_clips_by_whether_their_camera_has_a_normal_clip_in_the_terms(tmp_path):
    """tools/probe_cameras.py: a run with terms on the training split; the held-out normal clips and test clips
    grouped by camera coverage (itself left out), every clip counted once with finite figures."""
    import json
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from probe_cameras import camera_groups, world_cameras

    make_store(tmp_path / "train", 6, 8, dim=16, seed=0, signal=0.8, t_range=(20, 30))
    make_store(tmp_path / "test", 4, 4, dim=16, seed=1, signal=0.8, t_range=(20, 30))
    cfg = tiny_default(tmp_path / "train", lr=1e-3, iterations=10, eval_every=10, log_every=5)
    cfg.model.terms_fit = "train"
    run = train(cfg, out=tmp_path / "run", progress=False, log=lambda line: None).run_dir
    data, test = open_features(tmp_path / "train"), open_features(tmp_path / "test", "none")
    names = [v.id.split("/")[-1] for v in data.videos + test.videos]
    assert len(set(names)) == len(names)
    held = set(read_checkpoint(run, "last")["last"]["split"]["val"])
    lonely = {v.id.split("/")[-1] for v in data.videos if v.id in held}      # each held-out clip its own camera
    cameras = {name: (100 + i if name in lonely else i % 2) for i, name in enumerate(names)}
    (tmp_path / "world.json").write_text(json.dumps({"clips": [{"name": n, "camera": c} for n, c in cameras.items()]}))
    assert world_cameras(str(tmp_path / "gt.json")) == cameras
    bench = SimpleNamespace(train=str(tmp_path / "train"), test=str(tmp_path / "test"))
    model, ckpt = load_checkpoint(run, "cpu")
    groups = camera_groups(model, ckpt, run, bench, test, cameras)
    assert len(groups["held-out normal, camera without a normal clip in the terms"]) == len(held) > 0
    assert sum(len(rows) for key, rows in groups.items() if key.startswith("test")) == len(test.videos)
    assert all(np.isfinite(row).all() and 0 <= row[4] <= 1 for rows in groups.values() for row in rows)
    with pytest.raises(SystemExit, match="no world description"):
        world_cameras(str(tmp_path / "none" / "gt.json"))


def test_members_on_folds_fit_their_terms_on_their_fold_too_and_calibrate_out_of_bag_cross_fitted(tmp_path):
    """``model.terms_fit`` all with ``model.bag_folds``: each member's terms see its training videos and the
    normal videos it held out; calibration scores each of those by that member alone (out of bag), with its
    terms fitted without the video (cross-fitted within the fold), once per run."""
    import vadpipe.calibration as calibration
    from vadpipe.calibration import OUT_OF_BAG_CROSS_FITTED, members_view
    from vadpipe.fitted_terms import member_terms_videos
    from vadpipe.models.ensemble import members_of
    from vadpipe.train_plan import member_seed

    make_store(tmp_path / "f", 6, 10, dim=16, seed=3, t_range=(8, 40))
    cfg = tiny_default(tmp_path / "f", iterations=6, val_fraction=0.0)
    cfg.model.members, cfg.model.bagging, cfg.model.bag_folds = 3, True, True
    lines, crossfits = [], []
    real = calibration.crossfit_out_of_bag
    calibration.crossfit_out_of_bag = lambda *a, **k: crossfits.append(1) or real(*a, **k)
    try:
        run = train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    finally:
        calibration.crossfit_out_of_bag = real
    assert len(crossfits) == 1
    assert sum(line.startswith("fitted terms: each member's training videos and its 4/3/3 held-out")
               for line in lines) == 1
    model, ckpt = load_checkpoint(run.run_dir, "cpu")
    cal = ckpt.calibration
    assert ckpt.model_config.terms_fit == "all" and cal["source"] == OUT_OF_BAG_CROSS_FITTED
    assert cal["n_videos"] == 10 and cal["normal_frame_score_quantiles"]["0.99"] == pytest.approx(0.5, abs=1e-4)
    data = open_features(tmp_path / "f")
    split = RunSplit.from_record(data, read_checkpoint(run.run_dir, "last")["last"]["split"], "test")
    with_held, without = (member_terms_videos(data, split, h) for h in (True, False))
    for m, (member, held) in enumerate(zip(members_of(model), split.member_held)):
        normals = held_out_normals(data, held)
        assert with_held[m] == without[m] + normals and not set(v.id for v in normals) & {v.id for v in without[m]}
        refit = copy.deepcopy(member)                               # the member's terms: its fold included
        fit_terms(refit, with_held[m], member_seed(cfg.train.seed, m), CPU, lambda line: None)
        assert torch.allclose(refit.state_dict()["normal_stats.mean"], member.state_dict()["normal_stats.mean"])
        # its fold, cross-fitted: each video scored by the member with terms fitted without it
        scores = crossfit_scores(members_view(model, (m,)), without[m], normals, member_seed(cfg.train.seed, m), CPU,
                                 calibration._fit_only_member)
        folds = min(CROSSFIT_FOLDS, len(normals))
        for fold in range(folds):
            out = [v for i, v in enumerate(normals) if i % folds == fold]
            view = copy.deepcopy(members_view(model, (m,)))
            fit_terms(view.members[0], without[m] + [v for v in normals if v not in out],
                      member_seed(cfg.train.seed, m), CPU, lambda line: None)
            direct = score_videos(view, out, CPU)
            assert all(np.array_equal(scores[v.id], direct[v.id]) for v in out)
