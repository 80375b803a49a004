"""Plain folders of per-video score files (any method) read into the ScoreSet that evaluate_scores takes."""
from __future__ import annotations

import numpy as np
import pytest

from score_world import SNIPPET, make_scores
from vadpipe.errors import GroundTruthError
from vadpipe.evaluate import ScoreSet, evaluate_score_path, evaluate_scores, write_scores
from vadpipe.groundtruth import write_vadpipe_json
from vadpipe.score_sets import crop_layout, load_score_source, match_names, read_score_folder, read_text_scores


def _auc(loaded, gts):
    ss = loaded.score_set
    return evaluate_scores(ss.scores, gts, snippet_len=ss.snippet_len, frames=ss.frames).metrics


def _index_metrics(tmp_path, gts, scores):
    write_vadpipe_json(tmp_path / "gt.json", gts.values())
    write_scores(tmp_path / "index", ScoreSet(dict(scores), {v: None for v in scores}))
    return evaluate_score_path(tmp_path / "index", tmp_path / "gt.json").metrics


def test_plain_npy_folder_equals_index_folder(tmp_path):
    gts, scores = make_scores(seed=1)
    expected = _index_metrics(tmp_path, gts, scores)
    folder = tmp_path / "pel4vad"
    folder.mkdir()
    for i, (vid, s) in enumerate(scores.items()):
        # public repos' names: with _pred, with or without _x264
        name = f"{vid}_pred.npy" if i % 2 else vid.replace("_x264", "") + ".npy"
        np.save(folder / name, s)
    loaded = load_score_source(folder, gts)
    assert loaded.kind == "files" and loaded.unmatched == [] and loaded.score_set.snippet_len == SNIPPET
    assert set(loaded.score_set.scores) == set(gts)
    got = _auc(loaded, gts)
    assert got["auc"] == expected["auc"] and got["ap"] == expected["ap"]
    assert got["auc_anomalous_videos"] == expected["auc_anomalous_videos"]
    assert all(f.layout == "(T,)" for f in loaded.files)
    assert "snippet scores" in loaded.notes[0]


@pytest.mark.parametrize("variant", ["T1", "1T", "TC", "CT"])
def test_shape_variants_average_crops_and_say_so(tmp_path, variant):
    gts, scores = make_scores(seed=2)
    plain = tmp_path / "plain"
    folder = tmp_path / variant
    plain.mkdir()
    folder.mkdir()
    rng = np.random.default_rng(0)
    for vid, s in scores.items():
        np.save(plain / f"{vid}.npy", s)
        dev = rng.normal(size=(s.size, 10))
        crops = s[:, None] + (dev - dev.mean(axis=1, keepdims=True))       # crop mean is exactly s
        arr = {"T1": s[:, None], "1T": s[None, :], "TC": crops, "CT": crops.T}[variant]
        np.save(folder / f"{vid}.npy", arr.astype(np.float64))
    loaded = read_score_folder(folder, gts)
    expected = {"T1": "(T, 1)", "1T": "(1, T)", "TC": "(T, C=10): 10 crops averaged",
                "CT": "(C=10, T): 10 crops averaged"}[variant]
    # videos of <= 10 snippets are ambiguous alone; the folder's other files decide, and the note says so
    assert all(f.layout in (expected, expected + " (as the folder's other files)") for f in loaded.files)
    assert any(f.layout == expected for f in loaded.files)
    ref = _auc(read_score_folder(plain, gts), gts)["auc"]
    assert _auc(loaded, gts)["auc"] == pytest.approx(ref, abs=1e-6)


def test_crop_layout_rules():
    assert crop_layout((40,)) == (None, "(T,)")
    assert crop_layout((40, 10))[0] == 1 and crop_layout((5, 40))[0] == 0
    assert crop_layout((8, 10), crop_axis_hint=(1, 10))[0] == 1      # short video: the folder's layout decides
    assert crop_layout((8, 10))[0] == 0                                # alone: the longer axis is time
    for bad in ((10, 10), (40, 30), (3, 4, 5)):
        with pytest.raises(ValueError):
            crop_layout(bad, crop_axis_hint=None if bad != (10, 10) else (1, 4))


def test_short_ten_crop_video_follows_the_folder(tmp_path):
    gts, scores = make_scores(n_anomalous=3, n_normal=3, seed=3, t_range=(20, 30))
    vid = next(iter(scores))
    scores[vid] = scores[vid][:8]
    gts[vid].frames, gts[vid].intervals = 8 * SNIPPET, [(0, 32)]
    for v, s in scores.items():
        np.save(tmp_path / f"{v}.npy", np.repeat(s[:, None], 10, axis=1))     # (T, 10); the short one (8, 10)
    loaded = read_score_folder(tmp_path, gts)
    short = next(f for f in loaded.files if f.video == vid)
    assert short.layout.startswith("(T, C=10)") and "folder" in short.layout
    assert np.array_equal(loaded.score_set.scores[vid], scores[vid])


def test_crop_files_of_one_video_are_averaged(tmp_path):
    gts, scores = make_scores(n_anomalous=4, n_normal=4, seed=4)
    for vid, s in scores.items():
        for k in range(10):
            np.save(tmp_path / f"{vid}__{k}.npy", s + (k - 4.5) * 0.01)
    loaded = read_score_folder(tmp_path, gts)
    assert set(loaded.score_set.scores) == set(gts) and loaded.unmatched == []
    vid = next(iter(scores))
    assert np.allclose(loaded.score_set.scores[vid], scores[vid], atol=1e-6)
    assert all("10 crop files" in f.note for f in loaded.files)


def test_per_frame_scores_are_recognised_by_frame_count(tmp_path):
    gts, scores = make_scores(seed=5)
    idx = _index_metrics(tmp_path, gts, scores)
    folder = tmp_path / "frames"
    folder.mkdir()
    for vid, s in scores.items():
        np.save(folder / f"{vid}.npy", np.repeat(s, SNIPPET)[:gts[vid].frames])
    loaded = read_score_folder(folder, gts)
    assert loaded.score_set.snippet_len == 1 and "per-frame" in loaded.notes[0]
    assert _auc(loaded, gts)["auc"] == idx["auc"]
    # one video per frame, the others per snippet: refused, not guessed
    vid = next(iter(scores))
    for v, s in scores.items():
        if v != vid:
            np.save(folder / f"{v}.npy", s)
    with pytest.raises(GroundTruthError, match="one score per frame"):
        read_score_folder(folder, gts)
    assert read_score_folder(folder, gts, per_frame=False).score_set.snippet_len == SNIPPET


def test_text_and_csv_scores(tmp_path):
    gts, scores = make_scores(n_anomalous=4, n_normal=4, seed=6)
    expected = _auc(read_score_folder(_npy_folder(tmp_path / "npy", scores), gts), gts)["auc"]
    folder = tmp_path / "text"
    folder.mkdir()
    for i, (vid, s) in enumerate(scores.items()):
        if i % 3 == 0:
            (folder / f"{vid}.txt").write_text("\n".join(f"{v:.9g}" for v in s) + "\n")
        elif i % 3 == 1:
            (folder / f"{vid}.csv").write_text("frame,score\n" + "".join(f"{k},{v:.9g}\n" for k, v in enumerate(s)))
        else:
            (folder / f"{vid}.csv").write_text("".join(f"{k},{v:.9g}\n" for k, v in enumerate(s)))
    loaded = read_score_folder(folder, gts)
    assert _auc(loaded, gts)["auc"] == pytest.approx(expected, abs=1e-9)
    (tmp_path / "three.csv").write_text("frame,time_s,score\n0,0.0,0.25\n1,0.04,0.5\n")
    values, how = read_text_scores(tmp_path / "three.csv")
    assert values.tolist() == [0.25, 0.5] and "'score'" in how
    (tmp_path / "bad.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="3 columns"):
        read_text_scores(tmp_path / "bad.csv")
    (tmp_path / "bom.txt").write_text("0.51\n0.45\n0.9\n", encoding="utf-8-sig")     # as Windows tools write
    values, how = read_text_scores(tmp_path / "bom.txt")
    assert values.tolist() == [0.51, 0.45, 0.9] and how == "one score per line"
    (tmp_path / "comma.txt").write_text("0,5\n0,45\n0,9\n")                          # a decimal comma
    with pytest.raises(ValueError, match="decimal comma"):
        read_text_scores(tmp_path / "comma.txt")


def _npy_folder(folder, scores):
    folder.mkdir()
    for vid, s in scores.items():
        np.save(folder / f"{vid}.npy", s)
    return folder


def test_unmatched_files_are_listed_not_evaluated(tmp_path):
    gts, scores = make_scores(n_anomalous=3, n_normal=3, seed=7)
    folder = _npy_folder(tmp_path / "s", scores)
    np.save(folder / "Stealing999_x264.npy", np.ones(5))
    (folder / "readme.md").write_text("not scores")
    loaded = read_score_folder(folder, gts)
    assert loaded.unmatched == ["Stealing999_x264.npy"] and len(loaded.score_set.scores) == 6
    assert any("1 file(s)" in line for line in loaded.summary_lines())
    with pytest.raises(GroundTruthError, match="none of the"):
        read_score_folder(folder, {"Other001_x264": gts[next(iter(gts))]})


def test_name_matching():
    gt = ["Abuse028_x264", "Normal_Videos_003_x264", "cam/3", "Arson011_x264"]
    names = ["Abuse028_pred", "Normal_Videos_003", "cam__3", "Arson011_x264_i3d", "Burglary001"]
    assert match_names(names, gt) == {"Abuse028_pred": "Abuse028_x264", "Normal_Videos_003": "Normal_Videos_003_x264",
                                      "cam__3": "cam/3", "Arson011_x264_i3d": "Arson011_x264"}
    # two files claiming one video: neither is taken
    assert match_names(["Abuse028", "Abuse028_pred"], ["Abuse028_x264"]) == {}
