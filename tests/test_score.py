"""`vadpipe score`: clip -> per-frame CSV, JSON, plot, overlay; thresholds; recipes; bad inputs.

The model is a seeded random LTGS head (small) saved in the real checkpoint
format, on Inception I3D features with random weights and the ``tiny`` preset
(112 px crops), scoring generated clips of a few dozen frames.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import make_video
from vadpipe.checkpoint import Checkpoint, build_model
from vadpipe.cli import main
from vadpipe.config import ModelConfig
from vadpipe.errors import CheckpointError, ConfigError, WeightsError
from vadpipe.extractors.presets import make_recipe
from vadpipe.intervals import find_intervals
from vadpipe.plot import figure_size_px
from vadpipe.recipe import save_recipe
from vadpipe.encode import backbone_for_recipe, scoring_recipe
from vadpipe.score import ScoreOptions, run_score
from vadpipe.threshold import SITE_CALIBRATION, resolve_threshold, whole_clip_note
from vadpipe.score_io import output_names, read_scores_csv
from vadpipe.video import VideoReader

CALIBRATION = {"normal_frame_score_quantiles": {"0.95": 0.2, "0.99": 0.3, "0.999": 0.4}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)       # two cores are shared with other test runs
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def recipe():
    return make_recipe("i3d-inception", "tiny", weights_sha256=None)


def save_head(path: Path, recipe, calibration=CALIBRATION, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig(feature_dim=1024, heads=4, ffn_dim=64, hidden=(32, 16))
    model = build_model(config)
    Checkpoint.of(model, config, recipe=recipe, calibration=calibration).save(path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, recipe):
    return save_head(tmp_path_factory.mktemp("run") / "best.pt", recipe)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, ckpt):
    """One clip (45 frames at 20 fps: a partial last snippet) scored with --plot --overlay --gt."""
    root = tmp_path_factory.mktemp("scored")
    clip = make_video(root / "clip.mp4", 45, width=96, height=72, fps=20.0)
    gt = root / "gt.json"
    gt.write_text(json.dumps({"videos": {"clip": {"frames": 45, "intervals": [[10, 30]]}}}))
    out = root / "out"
    code = run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=out, plot=True, overlay=True, gt=gt, progress=False))
    return code, clip, out


def test_csv_has_every_frame_and_times_follow_fps(scored):
    code, clip, out = scored
    assert code == 0
    frames, times, scores = read_scores_csv(out / "clip.scores.csv")
    assert frames.tolist() == list(range(45))
    assert np.allclose(times, frames / 20.0)
    # frame f carries snippet f // 16's score; the partial last snippet covers frames 32..44
    report = json.loads((out / "clip.json").read_text())
    assert report["frames"] == 45 and report["snippets"] == 3 and report["fps"] == 20.0
    for block in (scores[:16], scores[16:32], scores[32:]):
        assert np.all(block == block[0])
    assert report["max_score"] == pytest.approx(scores.max(), abs=1e-6)


def test_json_records_ids_threshold_intervals_and_speed(scored, ckpt, recipe):
    _, _, out = scored
    report = json.loads((out / "clip.json").read_text())
    assert report["recipe"]["id"] == recipe.recipe_id == report["trained_recipe_id"]
    assert len(report["checkpoint"]["id"]) == 12
    assert report["threshold"] == {"value": 0.3, "source": "calibration", "quantile": "0.99", "calibrated_on": None,
                                   "pooling": "frames"}
    assert report["scores"] == "raw"                   # a head made outside training: no levels fitted
    _, _, scores = read_scores_csv(out / "clip.scores.csv")
    expected = find_intervals(scores, 0.3, 20.0, 1.0, 0.5)
    assert [(iv["start_frame"], iv["end_frame"]) for iv in report["intervals"]] == \
        [(iv.start_frame, iv.end_frame) for iv in expected]
    assert report["real_time_factor"] > 0 and report["timings_s"]["extract_s"] > 0
    assert report["ground_truth"]["intervals"] == [[10, 30]]
    assert report["video"]["width"] == 96 and report["video"]["frames_exact"]


def test_png_and_overlay(scored):
    _, _, out = scored
    assert Image.open(out / "clip.png").size == figure_size_px(with_thumbnails=True)
    reader = VideoReader(out / "clip.overlay.mp4")
    assert sum(1 for _ in reader.frames()) == 45
    assert reader.info.fps == pytest.approx(20.0)
    assert not list(out.glob(".*"))          # atomic writes left no temporary files


def test_threshold_auto_and_given():
    assert resolve_threshold("auto", CALIBRATION).value == 0.3
    auto = resolve_threshold("auto:0.999", CALIBRATION)
    assert (auto.value, auto.source, auto.quantile) == (0.4, "calibration", "0.999")
    given = resolve_threshold("0.75", CALIBRATION)
    assert (given.value, given.source, given.quantile) == (0.75, "given", None)
    assert resolve_threshold("0.5", None).value == 0.5
    with pytest.raises(CheckpointError, match="--threshold 0.5"):
        resolve_threshold("auto", None)
    with pytest.raises(ConfigError, match="0.95, 0.99, 0.999"):
        resolve_threshold("auto:0.9", CALIBRATION)
    with pytest.raises(ConfigError):
        resolve_threshold("high", CALIBRATION)


def test_threshold_calibrated_on_training_videos_is_flagged(tmp_path, recipe, capsys):
    from vadpipe.checkpoint import OPTIMISTIC_CALIBRATION

    optimistic = {**CALIBRATION, "source": OPTIMISTIC_CALIBRATION, "n_videos": 3}
    threshold = resolve_threshold("auto", optimistic)
    assert threshold.optimistic and "optimistic" in threshold.label()
    assert not resolve_threshold("auto", {**CALIBRATION, "source": "held-out normal training videos"}).optimistic
    assert not resolve_threshold("0.5", optimistic).optimistic          # a given number is the user's choice
    ckpt = save_head(tmp_path / "head.pt", recipe, calibration=optimistic)
    clip = make_video(tmp_path / "c.mp4", 20, fps=25.0)
    assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out", progress=False)) == 0
    assert "calibrated on the training videos themselves" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "c.json").read_text())
    assert report["threshold"]["calibrated_on"] == OPTIMISTIC_CALIBRATION


def test_given_threshold_sets_the_intervals(tmp_path, ckpt):
    clip = make_video(tmp_path / "c.mp4", 40, fps=25.0)
    for threshold, expected in (("0", [[0, 40]]), ("1", [])):
        out = tmp_path / f"out{threshold}"
        assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                         options=ScoreOptions(out_dir=out, threshold=threshold, progress=False,
                                              min_duration_s=0.0)) == 0
        report = json.loads((out / "c.json").read_text())
        assert report["threshold"]["source"] == "given"
        assert [[iv["start_frame"], iv["end_frame"]] for iv in report["intervals"]] == expected
        whole = [n for n in report["notes"] if "of its frames at or above the threshold" in n]
        # flagged from the first frame to the last: the note says what else than an event does that
        assert len(whole) == (1 if expected else 0)
        if whole:
            assert whole[0].startswith("100% of its frames") and f"--checkpoint {ckpt}" in whole[0]


def test_whole_clip_note_only_for_a_clip_flagged_nearly_throughout():
    training = resolve_threshold("auto", CALIBRATION)                      # 0.3, from training videos
    scores = np.full(100, 0.1)
    assert whole_clip_note(scores, training, "best.pt") is None
    scores[:89] = 0.5                                                      # 89 %: an event, not the clip
    assert whole_clip_note(scores, training, "best.pt") is None
    scores[89] = 0.3                                                       # 90 %, at the threshold counts
    assert whole_clip_note(scores, training, "best.pt").startswith("90% of its frames")
    assert whole_clip_note(scores, resolve_threshold("0.2", CALIBRATION), "best.pt") is not None
    site = resolve_threshold("auto", {**CALIBRATION, "source": SITE_CALIBRATION})
    assert whole_clip_note(scores, site, "best.pt") is None               # set on the camera's own clips


def test_feature_file_scores_equal_video_scores(tmp_path, ckpt, recipe, scored):
    """`vadpipe extract` output scored without the video gives the very same CSV."""
    from vadpipe.extract import ExtractOptions, run_extract
    from vadpipe.extractors import create_backbone

    _, clip, video_out = scored
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(clip.read_bytes())
    backbone = create_backbone("i3d-inception", weights="random")
    run_extract(videos, tmp_path / "features", recipe, backbone, "cpu",
                ExtractOptions(workers=0, batch_size=4, progress=False))
    out = tmp_path / "out"
    lines = []
    code = run_score([str(tmp_path / "features" / "clip.npy")], checkpoint=str(ckpt), echo=lines.append,
                     options=ScoreOptions(out_dir=out, plot=True, progress=False))
    assert code == 0
    _, t_feat, s_feat = read_scores_csv(out / "clip.scores.csv")
    _, t_vid, s_vid = read_scores_csv(video_out / "clip.scores.csv")
    assert np.array_equal(t_feat, t_vid)
    assert np.allclose(s_feat, s_vid, atol=1e-5)
    assert json.loads((out / "clip.json").read_text())["input"]["kind"] == "features"
    assert Image.open(out / "clip.png").size == figure_size_px(with_thumbnails=False)
    # the whole feature folder as the input: every .npy in it is a clip
    assert run_score([str(tmp_path / "features")], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "all", progress=False)) == 0
    assert [p.name for p in (tmp_path / "all").glob("*.json")] == ["clip.json"]


def test_a_feature_folder_is_scored_by_its_manifest_under_its_own_recipe(tmp_path, ckpt, recipe):
    """Its manifest's videos are the clips: a .npy an earlier recipe left is named, never scored; --recipe
    cannot stand in for the folder's own recipe.json."""
    from vadpipe.features import FeatureStore, ManifestRecord
    folder = tmp_path / "features"
    store = FeatureStore(folder)
    folder.mkdir()
    store.write_recipe(recipe)
    np.save(folder / "kept.npy", np.zeros((3, 1, 1024), np.float32))
    np.save(folder / "stale.npy", np.zeros((3, 1, 1024), np.float32))     # a failed re-extraction left it
    store.append(ManifestRecord("kept", "kept.mp4", 0, None, frames=48, fps=25.0, T=3, crops=1, file="kept.npy",
                                recipe_id=recipe.recipe_id))
    store.merge()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["score", str(folder), "--checkpoint", str(ckpt), "-o", str(out),
                                       "--no-progress"])
    assert result.exit_code == 1
    assert [p.name for p in out.glob("*.json")] == ["kept.json"]
    assert "frame count unknown" not in (out / "kept.json").read_text()    # the manifest's record was read
    stale = [x for x in result.output.splitlines() if "stale.npy" in x]
    assert len(stale) == 1 and "earlier extraction" in stale[0], result.output
    other = tmp_path / "other"
    other.mkdir()
    save_recipe(other, recipe.replace(resize_short_side=320))
    result = CliRunner().invoke(main, ["score", str(folder / "kept.npy"), "--checkpoint", str(ckpt), "-o",
                                       str(tmp_path / "out2"), "--recipe", str(other / "recipe.json")])
    assert result.exit_code == 1 and "differs from" in result.output and "resize_short_side" in result.output
    assert not (tmp_path / "out2" / "kept.json").exists()


def test_unreadable_or_nan_feature_files_are_named_and_the_others_scored(tmp_path, ckpt, recipe):
    folder = tmp_path / "npys"
    folder.mkdir()
    np.save(folder / "good.npy", np.zeros((3, 1, 1024), np.float32))
    bad = np.zeros((3, 1, 1024), np.float32)
    bad[1, 0, 5] = np.nan
    np.save(folder / "nan.npy", bad)
    (folder / "empty.npy").write_bytes(b"")
    save_recipe(tmp_path, recipe)
    files = [str(folder / n) for n in ("empty.npy", "nan.npy", "good.npy")]
    result = CliRunner().invoke(main, ["score", *files, "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                       "--recipe", str(tmp_path / "recipe.json"), "--no-progress"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any("empty.npy" in x and "empty file" in x for x in lines), result.output
    assert any("nan.npy" in x and "NaN" in x for x in lines), result.output
    assert [p.name for p in (tmp_path / "out").glob("*.json")] == ["good.json"]


def test_recipe_mismatch_is_refused(tmp_path, ckpt):
    folder = tmp_path / "features"
    folder.mkdir()
    save_recipe(folder, make_recipe("i3d-inception", "center", weights_sha256=None))
    np.save(folder / "x.npy", np.zeros((3, 1, 1024), np.float32))
    runner = CliRunner()
    result = runner.invoke(main, ["score", str(folder / "x.npy"), "--checkpoint", str(ckpt), "-o",
                                  str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1
    assert "different feature recipes" in result.output and "crop_size" in result.output
    assert not (tmp_path / "out" / "x.json").exists()


def test_a_one_view_head_scores_the_first_view_of_mirror_features(tmp_path):
    """Features extracted with --mirror, scored by a head of the plain frame recipe: view 0 is that
    recipe's very input, so it is scored alone (as the centre crop of ten for a centre-crop head)."""
    frame = make_recipe("i3d-inception", "frame", weights_sha256=None)
    head = save_head(tmp_path / "frame.pt", frame)
    views = np.random.default_rng(0).normal(size=(4, 2, 1024)).astype(np.float32)
    for name, recipe, x in (("mirror", frame.replace(crop="mirror"), views), ("plain", frame, views[:, :1])):
        (tmp_path / name).mkdir()
        save_recipe(tmp_path / name, recipe)
        np.save(tmp_path / name / "x.npy", x)
        assert run_score([str(tmp_path / name / "x.npy")], checkpoint=str(head), echo=lambda s: None,
                         options=ScoreOptions(out_dir=tmp_path / f"out-{name}", fps=25.0, progress=False)) == 0
    _, _, mirrored = read_scores_csv(tmp_path / "out-mirror" / "x.scores.csv")
    _, _, plain = read_scores_csv(tmp_path / "out-plain" / "x.scores.csv")
    assert np.array_equal(mirrored, plain)
    # a mirror head is not given one view's features: refused, naming the difference
    mirror_head = save_head(tmp_path / "mirror.pt", frame.replace(crop="mirror"))
    result = CliRunner().invoke(main, ["score", str(tmp_path / "plain" / "x.npy"), "--checkpoint", str(mirror_head),
                                       "-o", str(tmp_path / "refused"), "--fps", "25", "--no-progress"])
    assert result.exit_code == 1 and "crop" in result.output


def test_wrong_backbone_weights_are_refused(recipe):
    expected = recipe.replace(weights_sha256="ab" * 32)
    with pytest.raises(WeightsError, match="expects weights abababababab"):
        backbone_for_recipe(expected, weights=None, device="cpu")


def test_a_head_trained_on_imported_features_extracts_no_video(tmp_path):
    """Features imported without a recipe name no weights: a video would go through a random backbone."""
    from vadpipe.rtfm_lists import imported_recipe_factory
    ckpt = save_head(tmp_path / "imported.pt", imported_recipe_factory()(1024, 1))
    make_video(tmp_path / "clip.mp4", 20)
    result = CliRunner().invoke(main, ["score", str(tmp_path / "clip.mp4"), "--checkpoint", str(ckpt),
                                       "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    line = [x for x in result.output.splitlines() if "imported without a recipe" in x]
    assert len(line) == 1 and "clip.mp4" in line[0], result.output
    assert not (tmp_path / "out" / "clip.csv").exists()


def test_crops_option():
    ten = make_recipe("i3d-inception", "rtfm", weights_sha256=None)
    assert scoring_recipe(ten, None) is ten and scoring_recipe(ten, 10) is ten
    one = scoring_recipe(ten, 1)
    assert one.num_crops == 1 and not one.differences(make_recipe("i3d-inception", "center", weights_sha256=None))
    with pytest.raises(ConfigError):
        scoring_recipe(one, 10)
    mirror = make_recipe("i3d-inception", "frame", weights_sha256=None, crop="mirror")
    frame = scoring_recipe(mirror, 1)          # the first view of mirror is the frame recipe's input
    assert frame.num_crops == 1 and not frame.differences(make_recipe("i3d-inception", "frame", weights_sha256=None))
    assert scoring_recipe(mirror, None) is mirror
    with pytest.raises(ConfigError, match="single view of ten or mirror"):
        scoring_recipe(frame, 10)


def test_the_single_view_of_region_features_is_its_regions():
    """Ten crops or a mirror stored with regions hold each view's regions one view after another: the
    single view is all of its regions, never one region of another view."""
    from vadpipe.encode import stored_view
    for crop, view in (("ten", 4), ("mirror", 0)):
        stored = make_recipe("i3d-inception", "frame" if crop == "mirror" else "rtfm", weights_sha256=None,
                             crop=crop, regions="2x2")
        assert stored.num_crops == 4 * stored.input_crops
        assert stored_view(stored, scoring_recipe(stored, 1)) == slice(4 * view, 4 * view + 4)
        assert stored_view(stored, stored) is None


def test_bad_clip_and_equal_stems(tmp_path, ckpt):
    """Two clips named clip.mp4 in different folders and a broken file: two results, one error line, exit 1."""
    root = tmp_path / "videos"
    make_video(root / "a" / "clip.mp4", 20)
    make_video(root / "b" / "clip.mp4", 20, seed=1)
    (root / "broken.mp4").write_bytes(b"not a video at all")
    runner = CliRunner()
    result = runner.invoke(main, ["score", str(root), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                  "--threshold", "0.5", "--no-progress"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["a__clip.json", "b__clip.json"]
    assert any(line.startswith("a__clip  00:01") for line in result.output.splitlines())   # the table


def test_output_names_never_collide():
    names = output_names([Path("/v/a/clip.mp4"), Path("/v/b/clip.mp4"), Path("/v/b/clip.avi"),
                          Path("/v/other.mp4")])
    assert len(set(names)) == 4 and names[0] == "a__clip" and names[3] == "other"


def test_missing_run_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "c.mp4", 16)
    result = CliRunner().invoke(main, ["score", "c.mp4", "--no-progress"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: no trained run at runs/latest")


def test_resampling_recipe_scores_every_native_frame(tmp_path):
    """A recipe that resamples to 10 fps still yields one score per frame of the 25 fps video."""
    from vadpipe.score import native_frame_scores

    recipe10 = make_recipe("i3d-inception", "tiny", weights_sha256=None, fps="10")
    ckpt10 = save_head(tmp_path / "best.pt", recipe10)
    clip = make_video(tmp_path / "c.mp4", 50, fps=25.0)
    assert run_score([str(clip)], checkpoint=str(ckpt10), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out", threshold="0.5", progress=False)) == 0
    frames, times, _ = read_scores_csv(tmp_path / "out" / "c.scores.csv")
    assert frames.size == 50 and np.allclose(times, frames / 25.0)
    report = json.loads((tmp_path / "out" / "c.json").read_text())
    assert report["video"]["resampled_frames"] == 20 and report["snippets"] == 2
    # native frame j takes the resampled frame nearest in time (j * 10 / 25)
    mapped = native_frame_scores(np.array([0.0, 1.0]), 20, recipe10, 50, 25.0, 10.0)
    assert mapped[:39].max() == 0.0 and mapped[39:].min() == 1.0   # 39 * 0.4 = 15.6 -> frame 16


def test_resampled_features_are_scored_on_the_videos_frames_as_the_video_is(tmp_path):
    """`extract --fps 10` features of a 25 fps clip give the video's CSV (50 frames at 25 fps, not 20 at
    10); features extracted before the manifest kept the source's frames stay on the resampled ones, noted."""
    from vadpipe.extract import ExtractOptions, run_extract
    from vadpipe.extractors import create_backbone

    recipe10 = make_recipe("i3d-inception", "tiny", weights_sha256=None, fps="10")
    ckpt10 = save_head(tmp_path / "best.pt", recipe10)
    make_video(tmp_path / "videos" / "c.mp4", 50, fps=25.0)
    backbone = create_backbone("i3d-inception", weights="random")
    run_extract(tmp_path / "videos", tmp_path / "features", recipe10, backbone, "cpu",
                ExtractOptions(workers=0, batch_size=4, progress=False))

    def score(clip, out):
        assert run_score([str(clip)], checkpoint=str(ckpt10), echo=lambda s: None,
                         options=ScoreOptions(out_dir=tmp_path / out, threshold="0.5", progress=False)) == 0
        return read_scores_csv(tmp_path / out / "c.scores.csv"), json.loads((tmp_path / out / "c.json").read_text())

    (_, t_vid, s_vid), from_video = score(tmp_path / "videos" / "c.mp4", "ov")
    (_, t_feat, s_feat), from_features = score(tmp_path / "features" / "c.npy", "of")
    assert t_feat.size == 50 and np.allclose(t_feat, t_vid) and np.allclose(s_feat, s_vid, atol=1e-5)
    assert (from_features["frames"], from_features["fps"]) == (50, 25.0)
    assert from_features["video"]["resampled_frames"] == from_video["video"]["resampled_frames"] == 20
    manifest = tmp_path / "features" / "manifest.jsonl"
    old = {k: v for k, v in json.loads(manifest.read_text()).items() if not k.startswith("source_f")}
    manifest.write_text(json.dumps(old) + "\n")
    (frames, _, _), before = score(tmp_path / "features" / "c.npy", "old")
    assert frames.size == 20 and before["fps"] == 10.0
    assert any("resampled ones" in note for note in before["notes"])
    assert not any("resampled ones" in note for note in from_features["notes"])


def test_variable_frame_rate_duration_and_thumbnails_follow_timestamps(tmp_path, ckpt, monkeypatch):
    """The clip lasts to its last timestamp (4.8 s) plus a frame, not frames / average fps (1.8 s): the
    JSON's duration and the plot's time axis cover every frame."""
    from test_video import write_timed

    pts_ms = [0, 40, 80, 120, 600, 640, 680, 1400, 1440, 1480, 1520, 1560, 1600, 1640, 1680, 1720, 4800]
    clip = write_timed(tmp_path / "vfr.mp4", pts_ms, width=96, height=72)
    drawn = {}

    def spy(path, times, scores, fps, **kwargs):
        drawn.update(kwargs, times=times)

    monkeypatch.setattr("vadpipe.plot.plot_clip", spy)
    assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out", threshold="0", plot=True, progress=False)) == 0
    report = json.loads((tmp_path / "out" / "vfr.json").read_text())
    assert report["vfr"] and report["duration_s"] > 4.8
    assert report["duration_s"] == pytest.approx(report["intervals"][-1]["end_s"])
    assert drawn["duration_s"] == report["duration_s"]
    thumbs = drawn["thumbnails"]
    assert [t.time_s for t in thumbs] == pytest.approx([pts_ms[t.frame] / 1000 for t in thumbs])
