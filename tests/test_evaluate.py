"""Ground-truth formats, snippet→frame alignment (incl. off-by-one cases), metrics = sklearn, score files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vadpipe.evaluate import ScoreSet, align_video, evaluate_score_path, evaluate_scores, read_scores, write_scores
from vadpipe.groundtruth import (VideoGT, load_ground_truth, match_ids, parse_ucf_line, read_ucf_annotation,
                                 split_concat_gt, write_vadpipe_json)
from vadpipe.errors import GroundTruthError

UCF = """Abuse028_x264.mp4  Abuse  165  240  -1  -1
Arson011_x264.mp4  Arson  150  420  680  1267
Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1
"""


def test_ucf_text_is_one_based_inclusive_by_default(tmp_path):
    path = tmp_path / "Temporal_Anomaly_Annotation.txt"
    path.write_text(UCF)
    gts = read_ucf_annotation(path)
    assert gts["Abuse028_x264"].intervals == [(164, 240)] and gts["Abuse028_x264"].cls == "Abuse"
    assert gts["Arson011_x264"].intervals == [(149, 420), (679, 1267)]
    assert gts["Normal_Videos_003_x264"].intervals == [] and not gts["Normal_Videos_003_x264"].anomalous
    labels, _ = gts["Abuse028_x264"].labels(300)
    # frame numbers 165..240 (1-based, inclusive) are indices 164..239
    assert labels[163] == 0 and labels[164] == 1 and labels[239] == 1 and labels[240] == 0
    assert labels.sum() == 240 - 165 + 1
    zero = read_ucf_annotation(path, "0-based-exclusive")
    assert zero["Abuse028_x264"].intervals == [(165, 240)]
    assert zero["Abuse028_x264"].labels(300)[0].sum() == 240 - 165


def test_ucf_single_frame_and_bad_lines():
    assert parse_ucf_line("a.mp4 X 1 1 -1 -1").labels(3)[0].tolist() == [1, 0, 0]
    assert parse_ucf_line("   ") is None
    for bad in ("a.mp4 X 0 5", "a.mp4 X 9 5", "a.mp4 X 5"):
        with pytest.raises(ValueError):
            parse_ucf_line(bad)
    with pytest.raises(ValueError):
        parse_ucf_line("a.mp4 X 5 5", "0-based-exclusive")


def test_vadpipe_json_roundtrip_and_validation(tmp_path):
    gts = [VideoGT("cam/a", 100, [(10, 20), (50, 51)], "Fighting"), VideoGT("cam/b", 80, [], "Normal")]
    write_vadpipe_json(tmp_path / "gt.json", gts)
    back = load_ground_truth(tmp_path / "gt.json")
    assert back["cam/a"].intervals == [(10, 20), (50, 51)] and back["cam/a"].frames == 100
    labels, _ = back["cam/a"].labels(100)
    assert labels[9] == 0 and labels[10] == 1 and labels[19] == 1 and labels[20] == 0 and labels[50] == 1
    assert labels.sum() == 11
    (tmp_path / "bad.json").write_text(json.dumps({"videos": {"x": {"frames": 10, "intervals": [[5, 5]]}}}))
    with pytest.raises(GroundTruthError, match="end exclusive"):
        load_ground_truth(tmp_path / "bad.json")


def test_frame_mask_folder(tmp_path):
    (tmp_path / "masks").mkdir()
    np.save(tmp_path / "masks" / "01_0014.npy", np.array([0, 0, 1, 1, 0]))
    gts = load_ground_truth(tmp_path / "masks")
    assert gts["01_0014"].frames == 5 and gts["01_0014"].labels(5)[0].tolist() == [0, 0, 1, 1, 0]
    np.save(tmp_path / "masks" / "bad.npy", np.array([0, 2]))
    with pytest.raises(GroundTruthError):
        load_ground_truth(tmp_path / "masks")


def test_concatenated_gt_split_by_snippets_or_frames_never_truncated(tmp_path):
    gt = np.concatenate([np.zeros(32), np.r_[np.zeros(8), np.ones(8)]])
    parts = split_concat_gt(gt, ["a", "b"], snippets=[2, 1])
    assert parts["a"].frames == 32 and parts["b"].mask.tolist() == [0] * 8 + [1] * 8
    by_frames = split_concat_gt(np.zeros(45), ["a", "b"], snippets=[2, 1], frames=[30, 15])
    assert by_frames["a"].frames == 30 and "frame counts" in by_frames["a"].note
    with pytest.raises(GroundTruthError, match="refusing"):
        split_concat_gt(np.zeros(47), ["a", "b"], snippets=[2, 1], frames=[30, 15])
    np.save(tmp_path / "gt.npy", np.zeros(3))
    with pytest.raises(GroundTruthError, match="list order"):
        load_ground_truth(tmp_path / "gt.npy")
    for bad in (np.r_[0.0, np.nan, 1.0], np.r_[0, 2, 1], np.r_[0.0, 0.5, 1.0]):   # not labels: refused, not cast
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(GroundTruthError, match="must hold only 0 and 1"):
            load_ground_truth(tmp_path / "bad.npy", order=["a"], snippets=[1], snippet_len=3)
        np.save(tmp_path / "scores.npy", np.r_[0.1, 0.2, 0.3])
        with pytest.raises(GroundTruthError, match="must hold only 0 and 1"):
            evaluate_score_path(tmp_path / "scores.npy", tmp_path / "bad.npy")


@pytest.mark.parametrize("frames,action", [(48, "exact"), (40, "tail"), (33, "tail"), (50, "extended"),
                                           (63, "extended")])
def test_alignment_known_conventions(frames, action):
    scores = np.array([0.1, 0.5, 0.9])                      # T = 3 -> covers 33..48 frames
    gt = VideoGT("v", frames, [(0, 1)])
    f, y, rep = align_video(scores, gt, snippet_len=16)
    assert rep.action == action and f.size == y.size == frames
    assert f[15] == 0.1 and f[16] == 0.5 and f[32] == 0.9 and f[-1] == 0.9


@pytest.mark.parametrize("frames,snippets,action", [(40, 4, "exact"), (36, 4, "tail"), (40, 5, "mismatch"),
                                                    (36, 5, "mismatch"), (30, 3, "tail"), (32, 3, "exact")])
def test_alignment_of_overlapping_snippets_follows_what_extraction_makes(frames, snippets, action):
    """Snippets of 16 every 8 frames: 36 frames make 4 (the last padded), never 5."""
    from vadpipe.features import expected_snippets

    _, _, rep = align_video(np.zeros(snippets), VideoGT("v", frames, []), snippet_len=16, stride=8)
    assert rep.action == action
    assert (expected_snippets(frames, 16, 8) == snippets) == (action != "mismatch")


def test_metrics_without_normal_videos_and_the_tie_share():
    gts = {"a": VideoGT("a", 32, [(0, 16)]), "b": VideoGT("b", 32, [(16, 32)])}
    res = evaluate_scores({"a": np.r_[1.0, 0.0], "b": np.r_[0.2, 1.0]}, gts, threshold=0.3)
    m = res.metrics
    assert m["false_alarm_rate"] is None and m["threshold"] == 0.3 and m["tied"] == pytest.approx(0.75)
    assert m["whole_flagged"]["anomalous"] == 0 and "tied at 0/1 75.00%" in res.summary()
    assert "flagged over" in evaluate_scores({"a": np.ones(2), "b": np.ones(2)}, gts, threshold=0.3).summary()


@pytest.mark.parametrize("frames", [32, 64, 100])
def test_alignment_mismatch_is_reported_not_truncated(frames):
    f, y, rep = align_video(np.zeros(3), VideoGT("v", frames, []), snippet_len=16)
    assert f is None and rep.action == "mismatch" and str(frames) in rep.detail
    with pytest.raises(GroundTruthError, match="on-mismatch"):
        evaluate_scores({"v": np.zeros(3), "w": np.zeros(2)},
                        {"v": VideoGT("v", frames, []), "w": VideoGT("w", 32, [(0, 5)])})
    res = evaluate_scores({"v": np.zeros(3), "w": np.r_[1.0, 0.0]},
                          {"v": VideoGT("v", frames, []), "w": VideoGT("w", 32, [(0, 5)])}, on_mismatch="skip")
    assert res.metrics["n_videos"] == 1 and any(a.action == "mismatch" for a in res.alignments)


def test_alignment_frame_count_sources_and_clipping():
    scores = np.array([0.2, 0.4])
    _, _, rep = align_video(scores, VideoGT("v", None, [(20, 40)]), video_frames=30)
    assert rep.frames == 30 and "manifest" in rep.detail
    _, y, rep = align_video(scores, VideoGT("v", None, [(20, 40)]))
    assert rep.frames == 32 and "no frame count" in rep.detail and y.sum() == 12
    _, y, rep = align_video(scores, VideoGT("v", 30, [(20, 40)]))
    assert "clipped" in rep.detail and y.sum() == 10


def test_resampled_features_align_on_the_videos_own_frames():
    """Features of a 10 fps recipe of a 50-frame 25 fps video: scored on its 50 frames (as `vadpipe score`
    maps them) against a ground truth that counts those; a ground truth of the 20 resampled frames is read
    as before, with a note."""
    from vadpipe.intervals import NativeFrames

    native = NativeFrames(50, 25.0, 10.0)
    f, y, rep = align_video(np.r_[0.0, 1.0], VideoGT("v", 50, [(40, 50)]), 20, 16, native=native)
    assert rep.action == "tail" and rep.frames == f.size == y.size == 50 and "own 50 frames" in rep.detail
    assert f[:39].max() == 0.0 and f[39:].min() == 1.0         # native frame 39 is resampled frame 16
    f, _, rep = align_video(np.r_[0.0, 1.0], VideoGT("v", None, [(40, 50)]), 20, 16, native=native)
    assert f.size == 50                                         # no gt count: the video's own frames
    f, _, rep = align_video(np.r_[0.0, 1.0], VideoGT("v", 20, []), 20, 16, native=native)
    assert f.size == 20 and "scored on the resampled frames" in rep.detail
    f, _, rep = align_video(np.r_[0.0, 1.0, 1.0], VideoGT("v", 50, []), 20, 16, native=native)
    assert f is None and rep.action == "mismatch"               # 3 snippets cannot come from 20 frames


def test_eval_run_scores_resampled_features_as_vadpipe_score_does(tmp_path):
    """`vadpipe eval --run` on features whose manifest records the source's frames: the same frame
    scores as `vadpipe score` of the features, written to and read back from the score folder."""
    import dataclasses

    import torch
    from feature_world import make_store
    from vadpipe.checkpoint import Checkpoint, build_model
    from vadpipe.config import ModelConfig
    from vadpipe.evaluate import evaluate_run
    from vadpipe.features import FeatureStore
    from vadpipe.score import ScoreOptions, run_score
    from vadpipe.score_io import read_scores_csv

    make_store(tmp_path / "f", 2, 2, dim=16, t_range=(3, 6), seed=5)
    store = FeatureStore(tmp_path / "f")
    gts = []
    for record in store.all_records().values():    # as `extract --fps 10` of 25 fps videos records them
        native_frames = round(record.frames * 2.5)
        store.append(dataclasses.replace(record, fps=10.0, source_frames=native_frames, source_fps=25.0))
        gts.append(VideoGT(record.id, native_frames, [(0, 30)] if record.label else []))
    store.merge(0, 1)
    write_vadpipe_json(tmp_path / "gt.json", gts)
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=16, heads=2, ffn_dim=16, hidden=(8, 4))
    Checkpoint.of(build_model(config), config, recipe=store.recipe()).save(tmp_path / "head.pt")

    res, out = evaluate_run(tmp_path / "head.pt", tmp_path / "f", tmp_path / "gt.json", out=tmp_path / "eval",
                            device="cpu", progress=False)
    assert {a.frames for a in res.alignments} == {gt.frames for gt in gts}
    assert all(a.action != "mismatch" and "own" in a.detail for a in res.alignments)
    again = evaluate_score_path(out / "scores", tmp_path / "gt.json")
    assert again.metrics == res.metrics                     # index.json keeps the source's frames
    by_id = {gt.id: gt for gt in gts}                       # RTFM's concatenated gt counts the videos' own frames
    np.save(tmp_path / "gt.npy", np.concatenate([by_id[v].labels(by_id[v].frames)[0] for v in read_scores(
        out / "scores").scores]))
    assert evaluate_score_path(out / "scores", tmp_path / "gt.npy").metrics == res.metrics
    assert run_score([str(tmp_path / "f")], checkpoint=str(tmp_path / "head.pt"), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "scored", threshold="0.5", progress=False)) == 0
    ss = read_scores(out / "scores")
    for gt in gts:
        f, _, _ = align_video(ss.scores[gt.id], gt, ss.frames[gt.id], ss.snippet_len, ss.stride, ss.frame_mode,
                              ss.native[gt.id])
        _, times, scored = read_scores_csv(tmp_path / "scored" / (gt.id.replace("/", "__") + ".scores.csv"))
        assert scored.size == gt.frames and np.allclose(times[1], 1 / 25.0)
        np.testing.assert_allclose(scored, f, atol=1e-5)


def test_metrics_equal_sklearn_on_concatenated_arrays():
    rng = np.random.default_rng(0)
    scores, gts, cat_y, cat_s = {}, {}, [], []
    for i, t in enumerate([5, 9, 3, 7, 12, 4]):
        frames = t * 16 - int(rng.integers(0, 16))
        s = rng.random(t)
        intervals = [(int(rng.integers(0, frames // 2)), frames - 3)] if i % 2 == 0 else []
        gt = VideoGT(f"v{i}", frames, intervals, "Theft" if i in (0, 2) else ("Fire" if i == 4 else "Normal"))
        scores[gt.id], gts[gt.id] = s, gt
        y, _ = gt.labels(frames)
        cat_y.append(y)
        cat_s.append(s[np.arange(frames) // 16])
    y, s = np.concatenate(cat_y), np.concatenate(cat_s)
    res = evaluate_scores(scores, gts, threshold=0.5)
    m = res.metrics
    assert m["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    anom = [0, 2, 4]
    ya = np.concatenate([cat_y[i] for i in anom])
    sa = np.concatenate([cat_s[i] for i in anom])
    assert m["auc_anomalous_videos"] == pytest.approx(roc_auc_score(ya, sa))
    theft = [0, 2, 1, 3, 5]
    assert m["auc_per_class"]["Theft"] == pytest.approx(
        roc_auc_score(np.concatenate([cat_y[i] for i in theft]), np.concatenate([cat_s[i] for i in theft])))
    assert set(m["auc_per_class"]) == {"Theft", "Fire"}
    normal_s = np.concatenate([cat_s[i] for i in (1, 3, 5)])
    assert m["false_alarm_rate"] == pytest.approx((normal_s >= 0.5).mean())
    assert m["n_frames"] == y.size and m["n_anomalous_videos"] == 3
    whole = {kind: sum((cat_s[i] >= 0.5).mean() >= 0.9 for i in vids) for kind, vids in
             (("normal", (1, 3, 5)), ("anomalous", anom))}
    assert m["whole_flagged"] == whole
    flagged_all = evaluate_scores(scores, gts, threshold=0.0)          # every frame flagged: every video
    assert flagged_all.metrics["whole_flagged"] == {"normal": 3, "anomalous": 3}
    assert "flagged over 90% or more of their frames @ 0.0: 3 of 3 normal videos, 3 of 3 anomalous" in \
        flagged_all.summary()
    assert "flagged over" not in evaluate_scores(scores, gts, threshold=2.0).summary()   # none: no line


def test_match_ids_across_naming_styles():
    mapping = match_ids(["Abuse__Abuse028_x264", "Normal_Videos_003_x264_i3d", "other"],
                        ["Abuse028_x264", "Normal_Videos_003_x264"])
    assert mapping == {"Abuse__Abuse028_x264": "Abuse028_x264",
                       "Normal_Videos_003_x264_i3d": "Normal_Videos_003_x264"}
    assert match_ids(["a/x", "b/x"], ["x"]) == {}          # ambiguous loose matches are refused
    # folders that differ are other places, never paired; a folder path that ends the other's is the same
    assert match_ids(["cam2/clip001", "cam2__clip002"], ["cam1/clip001", "cam1/clip002"]) == {}
    assert match_ids(["Anomaly/Test019", "Fight__f_0"], ["test/Anomaly/Test019", "Fight/f_0"]) == {
        "Anomaly/Test019": "test/Anomaly/Test019", "Fight__f_0": "Fight/f_0"}


def test_score_files_roundtrip_and_eval_paths(tmp_path):
    ss = ScoreSet({"cam/a": np.array([0.1, 0.9, 0.2], np.float32), "cam/b": np.array([0.3, 0.1], np.float32)},
                  {"cam/a": 40, "cam/b": None}, 16, {"classes": {"cam/a": "Fighting"}})
    write_scores(tmp_path / "scores", ss)
    back = read_scores(tmp_path / "scores")
    assert list(back.scores) == ["cam/a", "cam/b"] and back.frames == {"cam/a": 40, "cam/b": None}
    np.testing.assert_array_equal(back.scores["cam/a"], ss.scores["cam/a"])
    write_vadpipe_json(tmp_path / "gt.json", [VideoGT("cam/a", 40, [(16, 32)]), VideoGT("cam/b", 32, [])])
    res = evaluate_score_path(tmp_path / "scores", tmp_path / "gt.json")
    assert res.metrics["auc"] == pytest.approx(1.0) and res.metrics["auc_per_class"] == {"Fighting": 1.0}
    # inline single-file variant
    index = json.loads((tmp_path / "scores" / "index.json").read_text())
    for vid, rec in index["videos"].items():
        rec["scores"] = back.scores[vid].tolist()
        del rec["file"]
    (tmp_path / "one.json").write_text(json.dumps(index))
    assert evaluate_score_path(tmp_path / "one.json", tmp_path / "gt.json").metrics["auc"] == pytest.approx(1.0)
    # concatenated gt in the scores' order: a is 3 snippets (48 frames), b 2 (32)
    np.save(tmp_path / "gt.npy", np.r_[np.zeros(16), np.ones(16), np.zeros(16), np.zeros(32)])
    res = evaluate_score_path(tmp_path / "scores", tmp_path / "gt.npy")
    assert res.metrics["auc"] == pytest.approx(1.0) and res.metrics["n_frames"] == 80
    # RTFM-style concatenated frame scores
    np.save(tmp_path / "pred.npy", np.r_[np.zeros(16), np.ones(16), np.zeros(48)])
    assert evaluate_score_path(tmp_path / "pred.npy", tmp_path / "gt.npy").metrics["auc"] == pytest.approx(1.0)
    np.save(tmp_path / "short.npy", np.zeros(79))
    with pytest.raises(GroundTruthError, match="refusing"):
        evaluate_score_path(tmp_path / "short.npy", tmp_path / "gt.npy")


def test_evaluate_feature_scores_reads_snippet_length_stride_frames_and_classes_from_the_set(tmp_path):
    from feature_world import make_store
    from vadpipe.data import open_features
    from vadpipe.evaluate import evaluate_feature_scores

    gts = make_store(tmp_path / "f", 3, 3, dim=8, seed=2, stride=8)
    fs = open_features(tmp_path / "f", list_anomalous="none")
    rng = np.random.default_rng(0)
    scores = {v.id: rng.random(v.raw().shape[0]) for v in fs.videos}
    got = evaluate_feature_scores(scores, fs, gts, frame_mode="linear")
    want = evaluate_scores(scores, gts, snippet_len=16, stride=8, frames={v.id: v.frames for v in fs.videos},
                           classes={v.id: v.cls for v in fs.videos if v.cls is not None}, frame_mode="linear")
    assert fs.stride == 8 and got.metrics == want.metrics and got.metrics["n_videos"] == 6


def _one_view_copy(src, dst, view: int, crop: str) -> None:
    """The feature store ``src`` with only its stored crop ``view`` kept, under the recipe ``crop``."""
    import dataclasses
    from vadpipe import atomic
    from vadpipe.features import FeatureStore

    store = FeatureStore(src)
    recipe = store.recipe().replace(crop=crop)
    out = FeatureStore(dst)
    out.write_recipe(recipe)
    for record in store.all_records().values():
        atomic.save_npy(dst / record.file, np.ascontiguousarray(store.load(record)[:, view:view + 1]))
        out.append(dataclasses.replace(record, crops=1, recipe_id=recipe.recipe_id))
    out.merge(0, 1)


def test_eval_crops_1_scores_a_ten_crop_head_on_its_centre_crop_alone_or_among_the_ten(tmp_path):
    """``vadpipe eval --run R --crops 1``, as ``vadpipe score --crops 1``: the head sees the centre crop,
    whether the features hold it alone or as view 4 of ten; without ``--crops`` one view is refused; a
    one-crop head scores the centre crop of ten; a head without a recipe cannot take views."""
    import torch
    from click.testing import CliRunner
    from feature_world import make_store
    from vadpipe.checkpoint import Checkpoint, build_model, score_features
    from vadpipe.cli import main
    from vadpipe.config import ModelConfig
    from vadpipe.errors import ConfigError, RecipeMismatchError
    from vadpipe.evaluate import evaluate_run
    from vadpipe.features import FeatureStore

    make_store(tmp_path / "ten", 3, 3, dim=16, crops=10, seed=4)
    _one_view_copy(tmp_path / "ten", tmp_path / "centre", 4, "center")
    ten = FeatureStore(tmp_path / "ten")
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=16, heads=2, ffn_dim=16, hidden=(8, 4))
    model = build_model(config)
    Checkpoint.of(model, config, recipe=ten.recipe()).save(tmp_path / "head.pt")
    gt = tmp_path / "ten" / "gt.json"

    results = {}
    for name in ("ten", "centre"):
        res, out = evaluate_run(tmp_path / "head.pt", tmp_path / name, gt, out=tmp_path / f"eval-{name}",
                                device="cpu", progress=False, crops=1)
        results[name] = (res.metrics, read_scores(out / "scores"))
    assert results["ten"][0] == results["centre"][0]
    record = next(iter(ten.all_records().values()))
    alone = score_features(model.eval(), ten.load(record)[:, 4:5])
    for name in ("ten", "centre"):
        np.testing.assert_array_equal(results[name][1].scores[record.id], alone)
    all_ten, _ = evaluate_run(tmp_path / "head.pt", tmp_path / "ten", gt, out=tmp_path / "eval-all", device="cpu",
                              progress=False)
    assert all_ten.metrics != results["ten"][0]            # ten crops averaged: other scores
    with pytest.raises(RecipeMismatchError, match="crop"):
        evaluate_run(tmp_path / "head.pt", tmp_path / "centre", gt, out=tmp_path / "eval-x", device="cpu",
                     progress=False)
    # a one-crop head given ten crops scores their centre crop, with or without --crops, as `score` does
    Checkpoint.of(model, config, recipe=FeatureStore(tmp_path / "centre").recipe()).save(tmp_path / "one.pt")
    for crops in (None, 1):
        res, _ = evaluate_run(tmp_path / "one.pt", tmp_path / "ten", gt, out=tmp_path / f"eval-one-{crops}",
                              device="cpu", progress=False, crops=crops)
        assert res.metrics == results["centre"][0]
    Checkpoint.of(model, config, recipe=None).save(tmp_path / "bare.pt")      # trained on RTFM lists, say
    with pytest.raises(ConfigError, match="carries no feature recipe"):
        evaluate_run(tmp_path / "bare.pt", tmp_path / "ten", gt, out=tmp_path / "eval-y", device="cpu",
                     progress=False, crops=1)
    refused = CliRunner().invoke(main, ["eval", "--scores", str(tmp_path / "eval-all" / "scores"), "--gt", str(gt),
                                        "--crops", "1"])
    assert refused.exit_code != 0 and "--crops takes --run" in refused.output
