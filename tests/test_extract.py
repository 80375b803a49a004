"""`vadpipe extract`: shapes, manifest, labels, ids, resume, refusals, bad files, sharding, RTFM lists.

Runs the Inception I3D with random weights on the ``tiny`` preset (112 px crops),
on 64x48 generated clips, so the whole file stays fast on two CPU cores.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_video
from vadpipe import decode_workers, encode, ranks
from vadpipe.cli import main
from vadpipe.errors import ConfigError, RecipeMismatchError, VideoDecodeError
from vadpipe.encode import build_recipe, extract_video
from vadpipe.extract import ExtractOptions, discover, run_extract
from vadpipe.ranks import Shard, resolve_shard
from vadpipe.features import FeatureStore

BACKBONE_ARGS = ["--backbone", "i3d-inception", "--weights", "random", "--preset", "tiny"]


@pytest.fixture(scope="module")
def backbone():
    from vadpipe.extractors import create_backbone

    return create_backbone("i3d-inception", weights="random")


@pytest.fixture(scope="module")
def recipe(backbone):
    return build_recipe(backbone, "tiny")


@pytest.fixture
def videos(tmp_path):
    """A UCF-like tree: two classes, normals in two styles, a root clip, equal stems in two folders."""
    root = tmp_path / "videos"
    spec = {"Abuse/Abuse001_x264.mp4": 40, "Fighting/clip.mp4": 17, "Training_Normal_Videos_Anomaly/clip.mp4": 16,
            "normal/n2.mp4": 33, "loose.mp4": 5}
    for i, (rel, frames) in enumerate(spec.items()):
        make_video(root / rel, frames, seed=i)
    return root, spec


def run(root, out, recipe, backbone, **options):
    options.setdefault("progress", False)
    options.setdefault("workers", 0)
    options.setdefault("batch_size", 4)
    options.setdefault("clips_per_forward", options["batch_size"])  # no CPU tuning passes: short tests
    labels = options.pop("labels", None)
    return run_extract(root, out, recipe, backbone, "cpu", ExtractOptions(**options), labels_csv=labels)


def manifest(out) -> dict:
    lines = (Path(out) / "manifest.jsonl").read_text().splitlines()
    return {rec["id"]: rec for rec in map(json.loads, lines)}


def leftovers(out) -> list:
    """Hidden files a run left behind, less the lock files (they stay: removing a lock file another
    process waits on would let a third one lock a new file beside it)."""
    return sorted(p.name for p in Path(out).iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


# --- one run -------------------------------------------------------------------------------------

def test_shapes_manifest_and_recipe(tmp_path, videos, backbone, recipe):
    root, spec = videos
    out = tmp_path / "features"
    summary = run(root, out, recipe, backbone, workers=1)
    assert (summary.ok, summary.failed, summary.skipped) == (5, 0, 0) and summary.exit_code == 0
    assert summary.frames == sum(spec.values())
    assert summary.snippets == sum(math.ceil(f / 16) for f in spec.values())
    recs = manifest(out)
    assert list(recs) == sorted(recs)
    for rel, frames in spec.items():
        rec = recs[rel[:-4]]
        array = np.load(out / rec["file"])
        assert array.shape == (math.ceil(frames / 16), 1, 1024) and array.dtype == np.float32
        assert np.isfinite(array).all()
        assert (rec["frames"], rec["T"], rec["crops"], rec["fps"]) == (frames, array.shape[0], 1, 25.0)
        assert rec["status"] == "ok" and rec["error"] is None and rec["seconds"] >= 0
        assert "source_frames" not in rec and "source_fps" not in rec     # a native recipe: frames are the video's
        assert rec["decoder"] in ("decord", "pyav")
        assert rec["recipe_id"] == recipe.recipe_id and rec["path"] == str(root / rel)
    assert (recs["Abuse/Abuse001_x264"]["label"], recs["Abuse/Abuse001_x264"]["class"]) == (1, "Abuse")
    assert (recs["Fighting/clip"]["label"], recs["Fighting/clip"]["class"]) == (1, "Fighting")
    assert recs["Training_Normal_Videos_Anomaly/clip"]["label"] == 0 and recs["normal/n2"]["class"] == "Normal"
    assert (recs["loose"]["label"], recs["loose"]["class"]) == (None, None)
    # equal stems in different folders never share a file
    assert recs["Fighting/clip"]["file"] == "Fighting__clip.npy"
    assert recs["Training_Normal_Videos_Anomaly/clip"]["file"] == "Training_Normal_Videos_Anomaly__clip.npy"
    assert json.loads((out / "recipe.json").read_text()) == json.loads(json.dumps(recipe.to_dict()))
    assert leftovers(out) == [] and FeatureStore(out).journals() == []


def test_in_memory_extract_matches_the_store(tmp_path, videos, backbone, recipe):
    root, _ = videos
    out = tmp_path / "features"
    run(root, out, recipe, backbone, batch_size=3, clips_per_forward=2)
    seen = []
    features, info = extract_video(root / "normal/n2.mp4", recipe, backbone, "cpu", batch_size=2,
                                   progress=seen.append, clips_per_forward=4)
    assert features.shape == (3, 1, 1024) and info.frames == 33 and seen == [2, 1]
    np.testing.assert_allclose(features, np.load(out / "normal__n2.npy"), atol=1e-5)
    # the tail snippet is the last real frame repeated, not zeros: it differs from a black-padded one
    assert not np.allclose(features[-1], features[-2])
    other = build_recipe(backbone, "tiny", fps="10")
    with pytest.raises(RecipeMismatchError):
        extract_video(root / "loose.mp4", other.replace(weights_sha256="0" * 64), backbone)
    with pytest.raises(VideoDecodeError):
        extract_video(tmp_path / "missing.mp4", recipe, backbone)


def test_fps_resampling_and_float16_storage(tmp_path, backbone):
    make_video(tmp_path / "v" / "a.mp4", 50)  # 2 s at 25 fps -> 20 frames at 10 fps
    recipe = build_recipe(backbone, "tiny", fps="10", storage_dtype="float16")
    summary = run(tmp_path / "v", tmp_path / "f", recipe, backbone, batch_size=1, clips_per_forward="auto")
    rec = manifest(tmp_path / "f")["a"]
    assert summary.ok == 1 and (rec["frames"], rec["fps"], rec["T"]) == (20, 10.0, 2)
    assert (rec["source_frames"], rec["source_fps"]) == (50, 25.0)   # the video's own, for `vadpipe score`
    # resuming reads the record as complete: nothing is redone
    assert (run(tmp_path / "v", tmp_path / "f", recipe, backbone).skipped, manifest(tmp_path / "f")["a"]) == (1, rec)
    assert summary.clips_per_forward == 1  # CPU tuning ran (batches of one clip: only candidate 1)
    assert np.load(tmp_path / "f" / "a.npy").dtype == np.float16


def test_labels_csv_overrides_folders(tmp_path, videos, backbone, recipe):
    root, _ = videos
    csv = tmp_path / "labels.csv"
    csv.write_text("video,label,class\nloose.mp4,1,Explosion\nAbuse/Abuse001_x264,0\nnot_there,1\n")
    out = tmp_path / "features"
    run(root, out, recipe, backbone, labels=csv)
    recs = manifest(out)
    assert (recs["loose"]["label"], recs["loose"]["class"]) == (1, "Explosion")
    assert (recs["Abuse/Abuse001_x264"]["label"], recs["Abuse/Abuse001_x264"]["class"]) == (0, "Normal")
    assert recs["Fighting/clip"]["label"] == 1  # untouched rows keep their folder label
    # a later run with other labels refreshes them without recomputing anything
    csv.write_text("loose,0\n")
    summary = run(root, out, recipe, backbone, labels=csv)
    assert summary.ok == 0 and summary.skipped == 5
    assert manifest(out)["loose"]["label"] == 0


def test_same_stem_different_extension_gets_distinct_ids(tmp_path, backbone, recipe):
    root = tmp_path / "v"
    make_video(root / "x.mp4", 16)
    make_video(root / "x.mkv", 20)
    make_video(root / "a__b.mp4", 16)
    make_video(root / "a" / "b.mp4", 16)
    ids = {job.id: job.file for job in discover(root)}
    assert set(ids) == {"x.mp4", "x.mkv", "a__b", "a/b"}
    assert len(set(ids.values())) == 4 and ids["a/b"] == "a__b.npy" and ids["a__b"] != "a__b.npy"
    summary = run(root, tmp_path / "f", recipe, backbone)
    assert summary.ok == 4 and len(list((tmp_path / "f").glob("*.npy"))) == 4


# --- resume --------------------------------------------------------------------------------------

def test_second_run_does_no_work(tmp_path, videos, backbone, recipe, monkeypatch):
    root, _ = videos
    out = tmp_path / "features"
    run(root, out, recipe, backbone)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}

    def no_compute(*args, **kwargs):
        raise AssertionError("a resumed run must not run the backbone")

    monkeypatch.setattr(encode.SnippetEncoder, "__call__", no_compute)
    summary = run(root, out, recipe, backbone)
    assert (summary.ok, summary.skipped, summary.snippets) == (0, 5, 0)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == stamps
    # a deleted or truncated file is redone
    monkeypatch.undo()
    (out / "loose.npy").unlink()
    np.save(out / "normal__n2.npy", np.zeros((1, 1, 1024), np.float32))
    summary = run(root, out, recipe, backbone)
    assert (summary.ok, summary.skipped) == (2, 3)
    assert np.load(out / "normal__n2.npy").shape == (3, 1, 1024)


def test_interrupted_run_leaves_no_partial_file_and_resumes(tmp_path, videos, backbone, recipe, monkeypatch):
    root, spec = videos
    out = tmp_path / "features"
    real_call = encode.SnippetEncoder.__call__
    calls = {"n": 0}

    def dies_on_third_batch(self, groups):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the run were killed mid-way
        return real_call(self, groups)

    monkeypatch.setattr(encode.SnippetEncoder, "__call__", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run(root, out, recipe, backbone, batch_size=2)
    done = manifest(out)
    assert 0 < len(done) < 5 and all(r["status"] == "ok" for r in done.values())
    assert sorted(p.name for p in out.glob("*.npy")) == sorted(r["file"] for r in done.values())
    assert leftovers(out) == []
    monkeypatch.undo()
    summary = run(root, out, recipe, backbone, batch_size=2)
    assert summary.skipped == len(done) and summary.ok == 5 - len(done)
    assert len(manifest(out)) == 5 and leftovers(out) == []


def test_killed_run_leftovers_are_cleaned(tmp_path, videos, backbone, recipe):
    """What SIGKILL leaves: a spool, an atomic-write temp file, a journal with a torn last line."""
    root, _ = videos
    out = tmp_path / "features"
    out.mkdir()
    (out / ".loose.npy.part").write_bytes(b"\0" * 100)
    (out / ".loose.npy.abc123.tmp.npy").write_bytes(b"\0" * 100)
    store = FeatureStore(out)
    store.write_recipe(recipe)
    (out / "manifest.shard-0-of-1.jsonl").write_text('{"id": "loose", "status": "o')
    summary = run(root, out, recipe, backbone)
    assert summary.ok == 5 and leftovers(out) == [] and store.journals() == []


# --- refusals and failures -----------------------------------------------------------------------

def test_other_recipe_is_refused_unless_overwrite(tmp_path, videos, backbone, recipe):
    root, _ = videos
    out = tmp_path / "features"
    run(root, out, recipe, backbone)
    other = build_recipe(backbone, "tiny", fps="10")
    with pytest.raises(RecipeMismatchError, match=r"fps: 'native' vs '10'.*--overwrite"):
        run(root, out, other, backbone)
    with pytest.raises(ConfigError, match="float16"):
        run(root, out, recipe.replace(storage_dtype="float16"), backbone)
    summary = run(root, out, other, backbone, overwrite=True)
    assert summary.ok == 5 and summary.skipped == 0
    assert {r["recipe_id"] for r in manifest(out).values()} == {other.recipe_id}
    assert json.loads((out / "recipe.json").read_text())["fps"] == "10"


def test_two_shards_starting_with_different_recipes_cannot_both_write_one(tmp_path, backbone, recipe):
    """Each shard holds only its own lock: the recipe.json of an empty folder is checked and written under the
    folder's recipe lock, so the shard that comes second is refused instead of overwriting the first's."""
    import threading
    import time

    from vadpipe.claims import writer_lock
    from vadpipe.extract import prepare_store
    from vadpipe.recipe import load_recipe, save_recipe

    store = FeatureStore(tmp_path / "f")
    store.folder.mkdir()
    holding, first = threading.Event(), build_recipe(backbone, "tiny", fps="10")

    def first_shard():      # finds no recipe.json, then writes its own while holding the lock
        with writer_lock(store.folder, "recipe"):
            holding.set()
            time.sleep(0.3)
            save_recipe(store.folder, first)

    thread = threading.Thread(target=first_shard)
    thread.start()
    holding.wait()
    try:
        with pytest.raises(RecipeMismatchError):
            prepare_store(store, recipe, overwrite=False)   # waits for the lock, then reads the first's recipe
    finally:
        thread.join()
    assert load_recipe(store.folder).recipe_id == first.recipe_id


def test_bad_files_are_recorded_and_never_stop_the_run(tmp_path, backbone, recipe):
    root = tmp_path / "v"
    good = make_video(root / "good.mp4", 20)
    (root / "garbage.mp4").write_bytes(b"definitely not a video" * 10)
    (root / "empty.mp4").write_bytes(b"")
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    make_video(root / "z_good.mp4", 16)
    summary = run(root, tmp_path / "f", recipe, backbone, workers=1)
    recs = manifest(tmp_path / "f")
    assert recs["good"]["status"] == recs["z_good"]["status"] == "ok"
    assert recs["garbage"]["status"] == recs["empty"]["status"] == "failed"
    assert "empty file" in recs["empty"]["error"] and "\n" not in recs["garbage"]["error"]
    failed = {vid for vid, r in recs.items() if r["status"] == "failed"}
    assert summary.failed == len(failed) >= 2 and summary.exit_code == 1
    assert {vid for vid, _ in summary.failures} == failed
    assert not any((tmp_path / "f" / f"{vid}.npy").exists() for vid in failed)
    assert "failed: garbage:" in summary.format()


def test_a_decoder_that_kills_its_worker_is_retried_then_failed(tmp_path, backbone, recipe, monkeypatch):
    root = tmp_path / "v"
    for name in ("a", "crash", "b"):
        make_video(root / f"{name}.mp4", 16)
    real_reader = decode_workers.reader_for

    def segfaulting_reader(path, rec):
        if "crash" in path:
            os.kill(os.getpid(), signal.SIGKILL)  # runs in the forked decode worker
        return real_reader(path, rec)

    monkeypatch.setattr(decode_workers, "reader_for", segfaulting_reader)
    summary = run(root, tmp_path / "f", recipe, backbone, workers=1)
    recs = manifest(tmp_path / "f")
    assert recs["a"]["status"] == recs["b"]["status"] == "ok"
    assert recs["crash"]["status"] == "failed" and "crashed" in recs["crash"]["error"]
    assert summary.exit_code == 1


def test_cli_exit_codes_and_one_line_errors(tmp_path, videos):
    root, _ = videos
    out = tmp_path / "features"
    runner = CliRunner()
    args = ["extract", str(root), "-o", str(out), *BACKBONE_ARGS, "--workers", "0", "--threads", "1",
            "--batch-size", "4", "--clips-per-forward", "4", "--no-progress"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "5 ok, 0 failed, 0 skipped" in result.output
    result = runner.invoke(main, args + ["--fps", "10"])
    assert result.exit_code == 1 and "error:" in result.output and "--overwrite" in result.output
    (root / "bad.avi").write_bytes(b"junk")
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "1 failed, 5 skipped" in result.output
    result = runner.invoke(main, ["extract", str(root), "--shard", "2/2", *BACKBONE_ARGS])
    assert result.exit_code == 1 and "0 <= i < n" in result.output
    # the whole frame at another size: recorded in the recipe; a crop larger than the frame is refused
    whole = args[:4] + ["--backbone", "i3d-inception", "--weights", "random", "--preset", "frame", "--short-side",
                        "32", "--light", "mean"] + args[10:]
    result = runner.invoke(main, [a if a != str(out) else str(tmp_path / "whole") for a in whole])
    assert result.exit_code == 1 and "1 failed, 0 skipped" in result.output      # bad.avi still fails
    recipe = json.loads((tmp_path / "whole" / "recipe.json").read_text())
    assert (recipe["crop"], recipe["crop_size"], recipe["resize_short_side"], recipe["light"]) == ("none", 0, 32, "mean")
    result = runner.invoke(main, args[:10] + ["--short-side", "64"] + args[10:])
    assert result.exit_code == 1 and "crop 112 is larger than the short side 64" in result.output
    result = runner.invoke(main, args + ["--mirror"])       # the tiny preset crops: one line, no traceback
    assert result.exit_code == 1 and "--mirror: preset 'tiny' crops (center)" in result.output
    assert "Traceback" not in result.output
    at = args.index("--clips-per-forward") + 1
    result = runner.invoke(main, args[:at] + ["two"] + args[at + 1:])
    assert result.exit_code == 1 and "clips per forward pass: a whole number >= 1 or 'auto'" in result.output
    assert "Traceback" not in result.output


def test_mirror_recipe_stores_the_frame_features_then_those_of_its_mirror_image(tmp_path, backbone):
    """crop "mirror": (T, 2, D); view 0 is what the ``frame`` recipe stores, view 1 the mirrored clip's."""
    clip = make_video(tmp_path / "a.mp4", 40, width=64, height=48, seed=3)
    mirror = build_recipe(backbone, "frame", short_side=40, mirror=True)
    assert (mirror.crop, mirror.num_crops) == ("mirror", 2)
    both, _ = extract_video(clip, mirror, backbone, batch_size=4, clips_per_forward=2)
    frame, _ = extract_video(clip, build_recipe(backbone, "frame", short_side=40), backbone, batch_size=4,
                             clips_per_forward=2)
    assert both.shape == (3, 2, 1024) and frame.shape == (3, 1, 1024)
    np.testing.assert_allclose(both[:, :1], frame, atol=1e-5)
    # the clip mirrored, frame by frame, losslessly
    mirrored, _ = extract_video(write_lossless(tmp_path / "flipped.mp4", [p[:, ::-1] for p in decoded_rgb(clip)]),
                                build_recipe(backbone, "frame", short_side=40), backbone, batch_size=4,
                                clips_per_forward=2)
    np.testing.assert_allclose(both[:, 1:], mirrored, atol=1e-4)
    with pytest.raises(ConfigError, match="ten crops include mirrored views"):
        build_recipe(backbone, "rtfm", mirror=True)


@pytest.mark.parametrize("mode", ["mean", "running"])
def test_light_recipe_gives_a_darker_copy_of_a_clip_nearly_the_features_of_the_clip(tmp_path, backbone, mode):
    """``light`` "mean" and "running": the same scene at a quarter of the light reaches the backbone at the
    clip's level (running: from the clip's level so far, applied where the clip is cut into snippets)."""
    clip = make_video(tmp_path / "a.mp4", 40, width=64, height=48, seed=3)
    dark = write_lossless(tmp_path / "dark.mp4", [(p // 4).astype(np.uint8) for p in decoded_rgb(clip)])
    plain, light = build_recipe(backbone, "frame", short_side=40), build_recipe(backbone, "frame", short_side=40,
                                                                                 light=mode)
    assert light.light == mode and light.recipe_id != plain.recipe_id
    assert plain.differences(light) == [f"light: None vs '{mode}'"]

    def features(path, recipe):
        return extract_video(path, recipe, backbone, batch_size=4, clips_per_forward=2)[0]

    moved_plain = np.abs(features(dark, plain) - features(clip, plain)).mean()
    moved_light = np.abs(features(dark, light) - features(clip, light)).mean()
    assert moved_light < 0.1 * moved_plain            # only the dark copy's lost bits remain
    # a folder's decode workers light the clip as the one-clip path does
    folder = tmp_path / "folder"
    folder.mkdir()
    os.link(dark, folder / "dark.mp4")
    run(folder, tmp_path / "out", light, backbone, workers=1, clips_per_forward=2)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / manifest(tmp_path / "out")["dark"]["file"]),
                                  features(dark, light))
    with pytest.raises(ConfigError, match="unknown light normalisation 'dusk'"):
        build_recipe(backbone, "frame", light="dusk")


def decoded_rgb(path: Path) -> list:
    import av

    with av.open(str(path)) as src:
        return [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]


def write_lossless(path: Path, pixels: list) -> Path:
    """RGB frames (H, W, 3) as a lossless H.264 clip at 25 fps."""
    import av

    height, width = pixels[0].shape[:2]
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264rgb", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = width, height, "rgb24", {"crf": "0"}
        for p in pixels:
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(p), format="rgb24")))
        dst.mux(stream.encode())
    return path


# --- sharding ------------------------------------------------------------------------------------

def test_shard_parsing_and_environment():
    assert Shard.parse("1/4") == Shard(1, 4) and Shard(1, 4).take(list(range(10))) == [1, 5, 9]
    assert resolve_shard(None, {}) == Shard(0, 1)
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2)
    assert resolve_shard("1/2", {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2)
    with pytest.raises(ConfigError):
        resolve_shard("0/2", {"RANK": "1", "WORLD_SIZE": "2"})
    for bad in ("2", "a/b", "3/2", "-1/2"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_forward_sizer_auto_warms_up_tries_candidates_then_keeps_the_fastest():
    sizer = encode.ForwardSizer(torch.device("cpu"), "auto")
    timings = {1: 3.0, 2: 1.0, 4: 2.0, 8: 5.0}   # seconds per clip
    seen = []
    for _ in range(7):
        size = sizer.size(16)
        seen.append(size)
        sizer.record(size, timings[size] * 16, 16)
    assert seen == [1, 1, 2, 4, 8, 2, 2] and sizer.chosen == 2
    assert sizer.size(1) == 2  # a small last batch still uses the chosen size
    assert encode.ForwardSizer(torch.device("cuda")).size(64) is None  # whole batches on CUDA
    assert encode.ForwardSizer(torch.device("cuda"), "auto").size(64) is None
    assert encode.ForwardSizer(torch.device("cpu"), fixed=3).size(64) == 3
    assert encode.ForwardSizer(torch.device("cpu"), fixed="3").chosen == 3     # as the CLI passes it
    for bad in (0, "0", "two", 1.5):
        with pytest.raises(ConfigError):
            encode.ForwardSizer(torch.device("cpu"), fixed=bad)


def test_forward_sizer_on_cpu_uses_the_backbones_size_whatever_the_timing():
    """Without --clips-per-forward a CPU pass holds the backbone's own number of clips for the compute dtype,
    never one chosen by the clock (which made features depend on the machine's load)."""
    from vadpipe.extractors.registry import get_entry

    inception = get_entry("i3d-inception").config
    assert inception.cpu_clips_per_forward("float32") == 2 and inception.cpu_clips_per_forward("bfloat16") == 1
    assert get_entry("i3d-r50").config.cpu_clips_per_forward("float32") == 1
    assert inception.cpu_clips_per_forward("unmeasured") == 1
    sizer = encode.ForwardSizer(torch.device("cpu"), None, cpu_size=2)
    for seconds in (9.0, 0.1, 5.0):
        assert sizer.size(16) == 2
        sizer.record(2, seconds, 16)
    assert sizer.chosen == 2 and not sizer.seconds_per_clip


def test_cpu_extraction_by_default_passes_the_backbones_size_and_gives_the_same_bits(tmp_path, videos, backbone,
                                                                                     recipe):
    """No --clips-per-forward on CPU: every pass holds the backbone's own size (2 for Inception I3D in float32),
    so a folder's features are, bit for bit, each clip's features extracted alone at that size."""
    root, _ = videos
    summary = run(root, tmp_path / "f", recipe, backbone, batch_size=3, clips_per_forward=None)
    assert summary.clips_per_forward == backbone.config.cpu_clips_per_forward(recipe.compute_dtype) == 2
    for name, rec in manifest(tmp_path / "f").items():
        alone, _ = extract_video(Path(rec["path"]), recipe, backbone, batch_size=5, clips_per_forward=2)
        assert np.array_equal(np.load(tmp_path / "f" / rec["file"]), alone), name


@pytest.mark.parametrize("clips_per_forward", [2, 3, 8])
def test_features_do_not_depend_on_the_forward_size(tmp_path, backbone, recipe, clips_per_forward):
    clip = make_video(tmp_path / "a.mp4", 70)   # 5 snippets: passes of 2 and 3 need padding
    reference, _ = extract_video(clip, recipe, backbone, batch_size=5, clips_per_forward=4)
    features, _ = extract_video(clip, recipe, backbone, batch_size=5, clips_per_forward=clips_per_forward)
    np.testing.assert_allclose(features, reference, atol=1e-5)


def test_whole_frame_recipe_never_mixes_frame_sizes_in_a_pass(tmp_path, backbone):
    """crop "none": clips of two frame sizes in one batch give each video its own features."""
    recipe = build_recipe(backbone, "frame", short_side=40)
    root = tmp_path / "videos"
    make_video(root / "normal" / "wide.mp4", 40, width=96, height=48, seed=1)    # 80x40 after resize
    make_video(root / "normal" / "tall.mp4", 24, width=48, height=64, seed=2)    # 40x53
    out = tmp_path / "features"
    run(root, out, recipe, backbone, batch_size=6, clips_per_forward=4)
    for name in ("wide", "tall"):
        alone, _ = extract_video(root / "normal" / f"{name}.mp4", recipe, backbone, batch_size=5,
                                 clips_per_forward=1)
        stored = np.load(out / f"normal__{name}.npy")
        assert stored.shape == alone.shape == (math.ceil({"wide": 40, "tall": 24}[name] / 16), 1, 1024)
        np.testing.assert_allclose(stored, alone, atol=1e-5)


def test_default_workers_and_threads_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert ranks.default_workers({}) == 8 and ranks.default_workers({"LOCAL_WORLD_SIZE": "4"}) == 3
    assert ranks.default_threads("cpu", 8, {}) == 16 and ranks.default_threads("cpu", 3, {"LOCAL_WORLD_SIZE": "2"}) == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert ranks.default_workers({}) == 1 and ranks.default_threads("cpu", 1, {}) == 2


def _cli_process(root, out, extra_args=(), launcher=()):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, *launcher, "-m", "vadpipe", "extract", str(root), "-o", str(out), *BACKBONE_ARGS,
           "--workers", "0", "--threads", "1", "--batch-size", "4", "--clips-per-forward", "4", "--no-progress",
           *extra_args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reference(tmp_path, root, recipe, backbone):
    single = tmp_path / "single"
    run(root, single, recipe, backbone)
    return {vid: single / rec["file"] for vid, rec in manifest(single).items() if rec["status"] == "ok"}


def _check_sharded(out, reference):
    recs = manifest(out)
    assert list(recs) == sorted(recs)
    assert {vid for vid, rec in recs.items() if rec["status"] == "ok"} == set(reference)
    assert FeatureStore(out).journals() == []
    for vid, path in reference.items():
        np.testing.assert_allclose(np.load(out / recs[vid]["file"]), np.load(path), atol=1e-5)


def test_two_shards_share_one_folder(tmp_path, videos, backbone, recipe):
    root, _ = videos
    reference = _reference(tmp_path, root, recipe, backbone)
    out = tmp_path / "sharded"
    procs = [_cli_process(root, out, extra_args=("--shard", f"{i}/2")) for i in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
    shares = sorted(int(stdout.split(" ok")[0].split()[-1]) for stdout, _ in outputs)
    assert shares == [2, 3]  # 5 videos dealt round-robin: disjoint, nothing done twice
    _check_sharded(out, reference)


def test_torchrun_two_ranks_with_a_failed_video(tmp_path, videos, backbone, recipe):
    """Real torchrun (gloo): both ranks finish although one has a failed video; exit code 1 for all."""
    root, _ = videos
    (root / "bad.mp4").write_bytes(b"junk")
    reference = _reference(tmp_path, root, recipe, backbone)
    out = tmp_path / "sharded"
    proc = _cli_process(root, out, launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"))
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr
    assert "all ranks: videos: 5 ok, 1 failed, 0 skipped" in stdout
    assert "(shard 0/2)" in stdout and "(shard 1/2)" in stdout
    _check_sharded(out, reference)
    assert manifest(out)["bad"]["status"] == "failed"


# --- RTFM lists from an extracted folder ---------------------------------------------------------

def test_export_list_and_reimport(tmp_path, videos, backbone, recipe):
    root, _ = videos
    out = tmp_path / "features"
    run(root, out, recipe, backbone)
    listing = tmp_path / "train.list"
    result = CliRunner().invoke(main, ["features", "export-list", str(out), "-o", str(listing)])
    assert result.exit_code == 0 and "split index = 2" in result.output
    lines = listing.read_text().splitlines()
    assert [Path(p).name for p in lines] == ["Abuse__Abuse001_x264.npy", "Fighting__clip.npy",
                                             "Training_Normal_Videos_Anomaly__clip.npy", "normal__n2.npy"]
    indexed = tmp_path / "indexed"
    result = CliRunner().invoke(main, ["features", "import", str(out), "-o", str(indexed), "--list", str(listing),
                                       "--split-index", "2", "--backbone", "i3d-inception", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert "2 anomalous, 2 normal, 1 unlabeled" in result.output
    store = FeatureStore(indexed)
    for rec in store.records(ok_only=True):
        assert store.load(rec).shape == (rec.T, 1, 1024)
    assert not list(indexed.glob("*.npy"))
