"""Feature sets (store and RTFM lists), 32-segment bags, hold-out split, balanced sampling."""
from __future__ import annotations

import numpy as np
import pytest

from feature_world import make_store
from vadpipe.data import (BalancedSampler, build_bags, list_labels, open_features, resample_segments,
                          stratified_split)
from vadpipe.errors import ConfigError, FeatureStoreError


def test_resample_longer_video_averages_contiguous_chunks():
    x = np.arange(64, dtype=np.float32)[:, None]
    out = resample_segments(x, 32)
    np.testing.assert_allclose(out[:, 0], np.arange(32) * 2 + 0.5)
    x = np.arange(70, dtype=np.float32)[:, None]      # chunks of 2 or 3 snippets, contiguous, covering all
    out = resample_segments(x, 32)[:, 0]
    bounds = (np.arange(33) * 70) // 32
    np.testing.assert_allclose(out, [x[bounds[i]:bounds[i + 1], 0].mean() for i in range(32)])
    assert np.all(np.diff(out) > 0)


def test_resample_identity_and_shorter_video_repeats_snippets():
    x = np.random.default_rng(0).random((32, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(resample_segments(x, 32), x, rtol=1e-6)
    x = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    out = resample_segments(x, 32)
    assert out.shape == (32, 2, 3)
    picked = out[:, 0, 0]
    assert set(picked.tolist()) == set(range(10))          # every snippet used, nothing averaged
    assert np.all(np.diff(picked) >= 0)                       # in temporal order
    np.testing.assert_array_equal(picked, (np.arange(32) * 10) // 32)
    assert np.all(resample_segments(np.ones((1, 4), np.float32) * 7, 32) == 7)


def test_store_reading_and_bags(tmp_path):
    gts = make_store(tmp_path / "f", n_anomalous=3, n_normal=2, dim=8, crops=10, t_range=(5, 40))
    fs = open_features(tmp_path / "f")
    assert fs.kind == "store" and fs.recipe.feature_dim == 8 and fs.snippet_len == 16
    assert len(fs) == 5 and sorted(fs.labels().tolist()) == [0, 0, 1, 1, 1]
    assert fs.shape() == (10, 8)
    v = fs.videos[0]
    assert v.frames == gts[v.id].frames and v.load().shape == (v.T, 10, 8)
    bags = build_bags(fs.videos, 32)
    assert bags.shape == (5, 10, 32, 8) and bags.dtype == np.float32
    np.testing.assert_allclose(bags[0, 3], resample_segments(v.load()[:, 3], 32), rtol=1e-6)


def test_missing_feature_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureStoreError, match="no such feature folder or list file; `vadpipe extract VIDEOS/`"):
        open_features(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatureStoreError, match="vadpipe extract"):
        open_features(tmp_path / "empty")


def _write_list(tmp_path, names, shape=(7, 10, 4)):
    folder = tmp_path / "feats"
    folder.mkdir()
    for i, n in enumerate(names):
        np.save(folder / n, np.full(shape, i, dtype=np.float32))
    return folder


def test_rtfm_list_by_name_and_path_fallbacks(tmp_path):
    names = ["Abuse001_x264_i3d.npy", "Arson002_x264_i3d.npy", "Normal_Videos003_x264_i3d.npy"]
    folder = _write_list(tmp_path, names)
    lines = [f"G:\\UCF_Train_ten_crop_i3d\\{names[0]}",      # a foreign absolute path: found by name
             str(folder / names[1]),                          # absolute
             names[2]]                                        # relative to the list
    lst = folder / "ucf-i3d.list"
    lst.write_text("\n".join(lines) + "\n")
    fs = open_features(lst)
    assert fs.kind == "list" and fs.recipe is None and fs.snippet_len == 16
    assert [v.id for v in fs.videos] == ["Abuse001_x264", "Arson002_x264", "Normal_Videos003_x264"]
    assert fs.labels().tolist() == [1, 1, 0]
    assert [v.cls for v in fs.videos] == ["Abuse", "Arson", "Normal"]
    assert fs.videos[1].load().shape == (7, 10, 4) and fs.videos[1].load()[0, 0, 0] == 1


def test_rtfm_list_split_by_index_and_plain_2d_arrays(tmp_path):
    names = ["01_0014_i3d.npy", "01_0016_i3d.npy", "01_002_i3d.npy", "01_003_i3d.npy", "01_005_i3d.npy"]
    folder = _write_list(tmp_path, names, shape=(6, 4))
    lst = folder / "shanghai.list"
    lst.write_text("\n".join(str(folder / n) for n in names))
    assert open_features(lst, "first:2").labels().tolist() == [1, 1, 0, 0, 0]   # RTFM: anomalous first
    assert open_features(lst, "last:2").labels().tolist() == [0, 0, 0, 1, 1]
    unknown = open_features(lst)              # auto: no "normal" in any name -> unknown labels
    assert unknown.labels().tolist() == [-1] * 5
    assert unknown.videos[0].load().shape == (6, 1, 4)
    with pytest.raises(ConfigError):
        open_features(lst, "first:9")
    with pytest.raises(ConfigError):
        list_labels(["a"], "middle:1", "x")
    (folder / "bad.list").write_text(str(folder / "missing_i3d.npy"))
    with pytest.raises(FeatureStoreError, match="not found"):
        open_features(folder / "bad.list")


def test_stratified_split():
    labels = np.array([1] * 10 + [0] * 20)
    tr, va = stratified_split(labels, 0.1, seed=0)
    assert len(va) == 3 and labels[va].tolist().count(1) == 1 and labels[va].tolist().count(0) == 2
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(30))
    np.testing.assert_array_equal(va, stratified_split(labels, 0.1, seed=0)[1])
    tiny = np.array([1, 1, 0])                # a class of one stays entirely in training
    tr, va = stratified_split(tiny, 0.5, seed=0)
    assert 2 in tr and labels[va].size == 1
    assert stratified_split(labels, 0.0, 0)[1].size == 0
    tr, va = stratified_split(labels, 0.1, seed=0, only=(0,))   # normals only: every anomalous video trains
    assert labels[va].tolist() == [0, 0] and labels[tr].tolist().count(1) == 10


def test_a_capped_held_out_share_gives_the_rest_back_to_training():
    """``train.val_max``: 30 % of 400 normal videos would hold out 120; a cap of 20 holds out 20 of those
    same 120 (the draw is the uncapped one, cut), and a class under the cap is not touched."""
    labels = np.array([1] * 40 + [0] * 400)
    _, uncapped = stratified_split(labels, 0.3, seed=3, only=(0,))
    tr, va = stratified_split(labels, 0.3, seed=3, only=(0,), cap=20)
    assert uncapped.size == 120 and va.size == 20 and set(va) <= set(uncapped)
    assert tr.size == 420 and sorted(np.concatenate([tr, va]).tolist()) == list(range(440))
    small = np.array([1] * 5 + [0] * 17)          # Ped1's 17 normal training videos: 5 held out either way
    np.testing.assert_array_equal(stratified_split(small, 0.3, 0, only=(0,), cap=20)[1],
                                  stratified_split(small, 0.3, 0, only=(0,))[1])
    tr, va = stratified_split(labels, 0.1, seed=0, cap=2)        # both classes capped
    assert labels[va].tolist().count(1) == 2 and labels[va].tolist().count(0) == 2


def test_balanced_sampler_is_deterministic_clamped_and_covers_pools():
    s = BalancedSampler(anomalous=[0, 1, 2, 3, 4], normal=[10, 11, 12], batch_anomalous=2, batch_normal=32, seed=3)
    assert s.sizes == (2, 3)
    a0, n0 = s.batch(0)
    assert len(a0) == 2 and sorted(n0.tolist()) == [10, 11, 12]
    again = BalancedSampler([0, 1, 2, 3, 4], [10, 11, 12], 2, 32, seed=3)
    for i in range(7):
        assert all(np.array_equal(x, y) for x, y in zip(s.batch(i), again.batch(i)))
    first_pass = np.concatenate([s.batch(0)[0], s.batch(1)[0], s.batch(2)[0][:1]])
    assert sorted(first_pass.tolist()) == [0, 1, 2, 3, 4]    # one pass = every video once
    other_seed = BalancedSampler([0, 1, 2, 3, 4], [10, 11, 12], 2, 3, seed=4)
    assert any(not np.array_equal(s.batch(i)[0], other_seed.batch(i)[0]) for i in range(5))
    with pytest.raises(ConfigError):
        BalancedSampler([], [1], 1, 1)


def test_a_run_holds_out_at_most_val_max_normal_videos(tmp_path):
    """The default's held-out share with a cap: half of 12 normal videos would be 6; ``train.val_max`` 2
    holds out 2, both normal, and the other 10 train, as the run says at its start; a negative cap is
    refused by name."""
    from vadpipe.presets import apply_overrides, preset
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 4, 12, dim=8, t_range=(6, 10))
    cfg = apply_overrides(preset("default"), ["train.val_fraction=0.5", "train.val_max=2", "train.device=cpu",
                                              "model.heads=2", "model.ffn_dim=8"])
    cfg.train.features = str(tmp_path / "f")
    said = []
    trainer = _Trainer(cfg, tmp_path / "run", None, said.append)
    labels = trainer.data.labels()
    assert labels[trainer.held_idx].tolist() == [0, 0] and labels[trainer.train_idx].tolist().count(0) == 10
    assert "held out of training: 2 of 12 normal videos (train.val_fraction 0.5, at most 2 a class)" in said
    with pytest.raises(ConfigError, match="train.val_max"):
        apply_overrides(preset("default"), ["train.val_max=-1"])


def test_a_set_without_both_classes_is_refused_before_loading_with_its_counts(tmp_path):
    """Features of normal videos only (e.g. the anomalous clips failed to extract): one line naming the
    folder, what it holds and where labels come from, before any video is loaded."""
    from vadpipe.presets import apply_overrides, preset
    from vadpipe.train import _Trainer

    make_store(tmp_path / "f", 0, 3, dim=8, t_range=(6, 10))
    cfg = apply_overrides(preset("default"), ["model.heads=2", "model.ffn_dim=8"])
    cfg.train.features, cfg.train.device = str(tmp_path / "f"), "cpu"
    said = []
    with pytest.raises(FeatureStoreError, match="0 anomalous and 3 normal") as err:
        _Trainer(cfg, tmp_path / "run", None, said.append)
    assert str(tmp_path / "f") in str(err.value) and "--labels" in str(err.value) and "\n" not in str(err.value)
    assert not any(line.startswith("loading") for line in said)


def test_a_recorded_split_maps_to_positions_and_a_video_gone_is_named(tmp_path):
    make_store(tmp_path / "f", 2, 2, dim=8, t_range=(4, 6))
    data = open_features(tmp_path / "f")
    ids = [data.videos[3].id, data.videos[0].id]
    assert data.positions(ids, "cannot resume").tolist() == [3, 0]
    with pytest.raises(FeatureStoreError, match=r"f: video 'Normal/gone' of the run is gone; cannot resume"):
        data.positions(ids + ["Normal/gone"], "cannot resume")


def test_a_split_round_trips_through_its_record_and_names_a_video_gone(tmp_path):
    """vadpipe/run_split.py: a drawn split (one share, or one per bagged member) stored as ids comes back
    as the same positions; a member trains on every training video but its own held-out ones; a record
    naming a video the features no longer hold is refused by name."""
    from vadpipe.presets import preset
    from vadpipe.run_split import RunSplit, draw_split

    make_store(tmp_path / "f", 4, 8, dim=8, t_range=(6, 10))
    data = open_features(tmp_path / "f")
    cfg = preset("default")
    t, m = cfg.train, cfg.model
    t.features = str(tmp_path / "f")
    for members, bagging in ((1, False), (3, True)):
        m.members, m.bagging = members, bagging
        split = draw_split(t, m, data, lambda msg: None)
        back = RunSplit.from_record(data, split.record(data), "cannot resume")
        for a, b in [(split.train_idx, back.train_idx), (split.held_idx, back.held_idx),
                     *zip(split.member_held, back.member_held)]:
            np.testing.assert_array_equal(a, b)
        assert len(back.member_held) == (members if bagging else 0)
    everyone = np.arange(split.train_idx.size)
    for m, held in enumerate(split.member_held):
        assert set(split.train_idx[everyone[split.trains(m, everyone)]].tolist()) == \
            set(split.train_idx.tolist()) - set(held.tolist())
    record = split.record(data)
    record["val"] = record["val"] + ["gone/clip"]
    with pytest.raises(FeatureStoreError, match="cannot resume.*gone/clip|gone/clip.*cannot resume"):
        RunSplit.from_record(data, record, "cannot resume")
