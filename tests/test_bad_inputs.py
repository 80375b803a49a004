"""Every command with bad inputs: one line per bad file naming it, no traceback, exit 1, the rest still done.

Bad inputs: missing, unreadable, empty, random bytes, text, a truncated MP4 (index first, data cut at 30 %),
a folder passed where a file is expected, and folders mixing bad and good videos.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_video
from test_video import truncated_mp4
from vadpipe.cli import main

EXTRACT_ARGS = ["--backbone", "i3d-inception", "--weights", "random", "--preset", "tiny", "--workers", "0",
                "--threads", "1", "--batch-size", "4", "--no-progress"]


# Fixed, not os.urandom: now and then fresh random bytes probe as a stream-less container ("no video
# stream", a fresh clone's run on 2026-12-04) instead of "cannot open"; these 3000 bytes are the latter.
RANDOM_BYTES = np.random.default_rng(0).bytes(3000)


def bad_files(root: Path) -> dict:
    """name -> (path, words its error line must hold)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(RANDOM_BYTES)
    (root / "notes.mp4").write_text("not a video\n" * 20)
    (root / "folder.mp4").mkdir()
    return {"missing": (root / "missing.mp4", "no such file"), "empty": (root / "empty.mp4", "empty file"),
            "random": (root / "random.mp4", "cannot open"), "text": (root / "notes.mp4", "cannot open"),
            "folder": (root / "folder.mp4", "no video files")}


def deny_read(path: Path, monkeypatch) -> Path:
    """Make ``path`` unreadable. Root reads a chmod 000 file anyway: there os.access (what vadpipe asks
    before opening) is made to say no for this one path; as any other user the real EACCES is tested."""
    path.chmod(0)
    if os.access(path, os.R_OK):
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if str(p) == str(path) else real(p, mode))
    return path


@pytest.fixture
def unreadable(tmp_path, monkeypatch):
    path = deny_read(make_video(tmp_path / "locked" / "locked.mp4", 16), monkeypatch)
    yield path
    path.chmod(0o644)     # so pytest can clean up


def error_lines(result, prefix: str = "error:"):
    return [line for line in result.stderr.splitlines() if line.startswith(prefix)]


def assert_clean(result) -> None:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_info_one_line_per_bad_file(tmp_path, unreadable):
    bad = bad_files(tmp_path / "bad")
    good = make_video(tmp_path / "good.mp4", 20)
    cut = truncated_mp4(tmp_path / "cut" / "cut.mp4")
    (tmp_path / "cut" / "cut_whole.mp4").unlink()
    for name, (path, words) in [*bad.items(), ("unreadable", (unreadable, "permission denied"))]:
        result = CliRunner().invoke(main, ["info", str(path), str(good)])
        assert_clean(result)
        assert result.exit_code == 1, name
        lines = error_lines(result)
        assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], (name, result.stderr)
        assert "good.mp4" in result.stdout and " 20 " in result.stdout            # the good one is still done
    result = CliRunner().invoke(main, ["info", str(cut), str(good)])
    assert_clean(result)
    assert result.exit_code == 1 and len(error_lines(result, "damaged:")) == 1 and not error_lines(result)
    assert "FFmpeg" in error_lines(result, "damaged:")[0] and result.stderr.count("\n") == 1   # nothing else leaks


def test_extract_folder_with_bad_and_good_videos(tmp_path, monkeypatch):
    root = tmp_path / "videos"
    make_video(root / "good.mp4", 16)
    (root / "random.mp4").write_bytes(RANDOM_BYTES)
    (root / "empty.mp4").write_bytes(b"")
    locked = deny_read(make_video(root / "locked.mp4", 16), monkeypatch)
    out = tmp_path / "features"
    result = CliRunner().invoke(main, ["extract", str(root), "-o", str(out), *EXTRACT_ARGS])
    locked.chmod(0o644)
    assert_clean(result)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3 and all(name in " ".join(failed) for name in ("random", "empty", "locked"))
    assert "permission denied" in next(line for line in failed if "locked" in line)
    records = {json.loads(line)["id"]: json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert records["good"]["status"] == "ok" and (out / "good.npy").exists()
    assert {records[k]["status"] for k in ("random", "empty", "locked")} == {"failed"}


def test_extract_missing_root_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "nowhere"), "-o", str(tmp_path / "f"),
                                       *EXTRACT_ARGS])
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: no such file or folder"]


def test_score_without_a_run_is_one_line_after_the_bad_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "c.mp4", 16)
    result = CliRunner().invoke(main, ["score", "c.mp4", "missing.mp4", "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 2 and "missing.mp4" in lines[0] and lines[1].startswith("error: no trained run")


def test_score_scores_the_good_clip_and_names_each_bad_one(tmp_path, unreadable):
    from test_score import save_head
    from vadpipe.extractors.presets import make_recipe

    ckpt = save_head(tmp_path / "best.pt", make_recipe("i3d-inception", "tiny", weights_sha256=None))
    bad = bad_files(tmp_path / "bad")
    good = make_video(tmp_path / "good.mp4", 16)
    paths = [str(p) for p, _ in bad.values()] + [str(unreadable), str(good)]
    result = CliRunner().invoke(main, ["score", *paths, "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                       "--threshold", "0.5", "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == len(bad) + 1, result.stderr
    for (path, words), line in zip([*bad.values(), (unreadable, "permission denied")], sorted(
            lines, key=lambda line: next(i for i, p in enumerate(paths) if p in line))):
        assert str(path) in line, (path, line)
    assert (tmp_path / "out" / "good.json").exists()


# --- damage, rotation, timestamps ------------------------------------------------------------------

def manifest(out: Path) -> dict:
    return {json.loads(line)["id"]: json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()}


def test_extract_damaged_clip_is_failed_unless_accepted_and_rotation_is_recorded(tmp_path):
    from test_video import write_timed
    from vadpipe.features import FeatureStore

    root = tmp_path / "videos"
    make_video(root / "good.mp4", 16)
    truncated_mp4(root / "cut.mp4")
    (root / "cut_whole.mp4").unlink()
    write_timed(root / "phone.mp4", [40 * i for i in range(20)], rotation=90)
    out = tmp_path / "features"
    result = CliRunner().invoke(main, ["extract", str(root), "-o", str(out), *EXTRACT_ARGS])
    assert_clean(result)
    assert result.exit_code == 1 and "[" not in result.stderr          # no FFmpeg line of its own
    records = manifest(out)
    assert records["cut"]["status"] == "failed" and records["cut"]["error"].startswith("damaged: ")
    assert "--accept-damaged" in records["cut"]["error"] and "FFmpeg" in records["cut"]["damage"]
    assert not (out / "cut.npy").exists()
    assert records["phone"]["status"] == "ok" and records["phone"]["rotation"] == 270
    assert records["good"]["rotation"] == 0 and records["good"]["vfr"] is False
    assert "cut" not in {r.id for r in FeatureStore(out).records(ok_only=True)}

    result = CliRunner().invoke(main, ["extract", str(root), "-o", str(out), *EXTRACT_ARGS, "--accept-damaged"])
    assert_clean(result)
    assert result.exit_code == 0 and "damaged, kept with --accept-damaged" in result.stdout
    cut = manifest(out)["cut"]
    assert cut["status"] == "damaged" and cut["error"] is None and "of the 80 frames" in cut["damage"]
    assert (out / "cut.npy").exists() and "cut" in {r.id for r in FeatureStore(out).records(ok_only=True)}


@pytest.fixture(scope="module")
def inception_ckpt(tmp_path_factory):
    from test_score import save_head
    from vadpipe.extractors.presets import make_recipe

    return save_head(tmp_path_factory.mktemp("ckpt") / "best.pt",
                     make_recipe("i3d-inception", "tiny", weights_sha256=None))


def test_score_times_are_timestamps_and_damage_is_reported_quietly(tmp_path, inception_ckpt):
    from test_video import write_timed

    pts_ms = [0, 40, 80, 120, 600, 640, 680, 1400, 1440, 1480, 1520, 1560, 1600, 1640, 1680, 1720, 4800]
    vfr = write_timed(tmp_path / "vfr.mp4", pts_ms)
    cut = truncated_mp4(tmp_path / "cut.mp4")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["score", str(vfr), str(cut), "--checkpoint", str(inception_ckpt), "-o",
                                       str(out), "--threshold", "0", "--min-duration", "0", "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert all(line.startswith(("note:", "warning:")) for line in result.stderr.splitlines()), result.stderr
    report = json.loads((out / "vfr.json").read_text())
    assert report["vfr"] is True and report["damaged"] is False and report["rotation"] == 0
    rows = np.loadtxt(out / "vfr.scores.csv", delimiter=",", skiprows=1, ndmin=2)
    assert np.allclose(rows[:, 1], np.array(pts_ms) / 1000, atol=1e-4)          # pts, not frame / fps
    (interval,) = report["intervals"]                                           # threshold 0: the whole clip
    assert interval["start_s"] == 0.0 and interval["end_s"] == pytest.approx(4.8 + 1 / report["fps"])
    assert report["max_score_time_s"] in np.round(np.array(pts_ms) / 1000, 6)
    damaged = json.loads((out / "cut.json").read_text())
    assert damaged["damaged"] is True and "FFmpeg" in damaged["damage"] and "\n" not in damaged["damage"]
    assert any(n.startswith("damaged:") for n in damaged["notes"])


def test_score_plot_with_a_non_latin_name_prints_no_glyph_warning(tmp_path, inception_ckpt):
    clip = make_video(tmp_path / "監視カメラ_клип.mp4", 16)
    result = CliRunner().invoke(main, ["score", str(clip), "--checkpoint", str(inception_ckpt), "-o",
                                       str(tmp_path / "out"), "--threshold", "0.5", "--plot", "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 0 and "Glyph" not in result.stderr and "Warning" not in result.stderr
    assert list((tmp_path / "out").glob("*.png"))


def test_malicious_checkpoint_is_refused_without_unsafe_advice(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo never",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "vadpipe-checkpoint/1", "model": Evil()}, evil)
    clip = make_video(tmp_path / "c.mp4", 16)
    result = CliRunner().invoke(main, ["score", str(clip), "--checkpoint", str(evil), "--no-progress"])
    assert_clean(result)
    (line,) = error_lines(result)
    assert result.exit_code == 1 and "refused" in line and "posix.system" in line
    assert "weights_only" not in result.output + result.stderr and "never" not in result.stdout


# --- every command, bad inputs: one line, never a traceback ----------------------------------------

@pytest.mark.parametrize("args", [
    ["info", "{tmp}/missing.mp4"],
    ["extract", "{tmp}/missing", "-o", "{tmp}/f"],
    ["score", "{tmp}/missing.mp4", "--no-progress"],
    ["score", "{tmp}/garbage.npy", "--checkpoint", "{tmp}/garbage.pt", "--no-progress"],
    ["train", "--features", "{tmp}/missing", "--preset", "demo", "--out", "{tmp}/run", "--no-progress"],
    ["train", "--resume", "--out", "{tmp}/norun", "--no-progress"],
    ["train", "--resume", "--out", "{tmp}/emptyrun", "--no-progress"],
    ["eval", "--scores", "{tmp}/scores", "--gt", "{tmp}/gt.json"],
    ["eval", "--scores", "{tmp}/scores", "--gt", "{tmp}/garbage.npy"],
    ["features", "export-list", "{tmp}", "-o", "{tmp}/x.list"],
    ["synth", "{tmp}/garbage.npy"],
    ["watch", "{tmp}/missing.mp4", "--checkpoint", "{tmp}/garbage.pt"],
])
def test_every_command_with_bad_input_is_one_line(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    (tmp_path / "garbage.pt").write_bytes(b"PK\x03\x04" + os.urandom(200))
    (tmp_path / "scores").mkdir()
    np.save(tmp_path / "scores" / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "gt.json").write_text('{"videos": {"a": {"frames": 32, "intervals": [[1, 5]]}}}')
    (tmp_path / "emptyrun").mkdir()
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert_clean(result)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(not line.startswith(" ") for line in lines), result.stderr   # no stack frames
    if args[:2] == ["train", "--resume"]:
        assert lines == [next(line for line in lines if "nothing to resume" in line)]
        assert "vadpipe train" in lines[0]


# --- concurrency, links, resume --------------------------------------------------------------------

def _extract_cmd(root: Path, out: Path, *extra: str) -> list:
    import sys

    return [sys.executable, "-m", "vadpipe", "extract", str(root), "-o", str(out), *EXTRACT_ARGS, *extra]


def test_concurrent_extracts_into_one_folder_write_every_video_once(tmp_path):
    import re
    import subprocess

    root = tmp_path / "videos"
    for i in range(6):
        make_video(root / f"v{i}.mp4", 20, seed=i)
    out = tmp_path / "features"
    runs = [subprocess.Popen(_extract_cmd(root, out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for extra in ([], [], ["--shard", "0/2"])]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0 and "Traceback" not in stderr, stderr
    ok = sum(int(re.search(r"(\d+) ok", stdout).group(1)) for stdout, _ in outputs)
    assert ok == 6                                                  # no video written twice
    records = manifest(out)
    assert sorted(records) == [f"v{i}" for i in range(6)] and {r["status"] for r in records.values()} == {"ok"}
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert hidden == [] and len(list(out.glob("*.npy"))) == 6


def test_symlinked_folders_are_followed_once_and_loops_named(tmp_path):
    from vadpipe.extract import discover

    root = tmp_path / "videos"
    make_video(root / "a" / "clip.mp4", 16)
    os.symlink(root, root / "a" / "loop")                     # a loop back to the root
    os.symlink(root / "a", root / "b")                        # a second way into a/
    shared = make_video(tmp_path / "elsewhere" / "x.mp4", 16)
    os.symlink(shared.parent, root / "linked")                # a folder that lives elsewhere
    (root / "dangling").symlink_to(tmp_path / "gone")
    said = []
    jobs = discover(root, log=said.append)
    assert [j.id for j in jobs] == ["a/clip", "linked/x"]
    assert any("symlink loop" in line and "loop" in line for line in said)
    assert any(line.startswith(f"skipped: {root / 'b'}: already walked") for line in said)
    assert any("dangling: broken symlink" in line for line in said)


def test_a_clock_checkpoint_between_evaluations_resumes_bit_identical(tmp_path, monkeypatch):
    import torch
    from feature_world import make_store
    from test_training import small_cfg
    from vadpipe import train as train_module
    from vadpipe.checkpoint import read_checkpoint

    make_store(tmp_path / "world", 12, 12, dim=32, seed=0, signal=0.8)
    kw = dict(eval_every=4, beta=4, log_every=2)
    full = train_module.train(small_cfg(tmp_path / "world", 10, **kw), out=tmp_path / "full", progress=False)
    real_step = train_module._Trainer._step

    def killed_at_7(self, iteration):
        if iteration == 7:
            raise KeyboardInterrupt
        return real_step(self, iteration)

    monkeypatch.setattr(train_module._Trainer, "_step", killed_at_7)
    with pytest.raises(KeyboardInterrupt):     # checkpoint_minutes 0: last.pt after every iteration
        train_module.train(small_cfg(tmp_path / "world", 10, checkpoint_minutes=0, **kw), out=tmp_path / "part",
                           progress=False)
    assert read_checkpoint(tmp_path / "part", "last")["iteration"] == 7     # not 4, the last evaluation
    monkeypatch.setattr(train_module._Trainer, "_step", real_step)
    train_module.resume(tmp_path / "part", progress=False)
    a, b = read_checkpoint(full.run_dir, "last"), read_checkpoint(tmp_path / "part", "last")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


# --- .npy files that cannot be read: one line naming the file and why (readers.read_array) -------------

def bad_npys(folder: Path) -> dict:
    """name -> (path, the reason read_array gives). The good array is (4, 1, 32) float32."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "good.npy", np.ones((4, 1, 32), np.float32))
    data = (folder / "good.npy").read_bytes()
    (folder / "empty.npy").write_bytes(b"")
    (folder / "cut.npy").write_bytes(data[:-40])
    (folder / "header.npy").write_bytes(data[:20])
    (folder / "text.npy").write_text("0.1 0.2 0.3\n")
    np.save(folder / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.savez(folder / "archive.npz", a=np.ones(3))
    (folder / "archive.npz").rename(folder / "archive.npy")
    (folder / "folder.npy").mkdir()
    return {"empty": (folder / "empty.npy", "empty file"), "cut": (folder / "cut.npy", "truncated"),
            "header": (folder / "header.npy", "truncated"), "text": (folder / "text.npy", "not a .npy file"),
            "objects": (folder / "objects.npy", "holds Python objects; vadpipe reads plain arrays only"),
            "archive": (folder / "archive.npy", "a .npz archive"), "folder": (folder / "folder.npy", "directory"),
            "missing": (folder / "missing.npy", "No such file")}


@pytest.mark.parametrize("mmap", [False, True])
def test_read_array_names_the_file_and_the_cause_without_unsafe_advice(tmp_path, mmap):
    from vadpipe.errors import FeatureStoreError, GroundTruthError
    from vadpipe.readers import read_array

    for name, (path, reason) in bad_npys(tmp_path).items():
        with pytest.raises(FeatureStoreError) as info:
            read_array(path, mmap)
        message = str(info.value)
        assert message.startswith(f"{path}: cannot read features (") and reason in message, (name, message)
        assert "allow_pickle" not in message and "pickle.load" not in message and "\n" not in message
    with pytest.raises(GroundTruthError, match="cannot read frame mask"):
        read_array(tmp_path / "empty.npy", what="frame mask", error=GroundTruthError)
    assert read_array(tmp_path / "good.npy", mmap).shape == (4, 1, 32)


def test_check_finite_finds_one_nan_or_inf_in_a_memory_map(tmp_path):
    from vadpipe.errors import FeatureStoreError
    from vadpipe.readers import check_finite, read_array

    x = np.ones((50, 1, 32), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        x[17, 0, 5] = bad
        np.save(tmp_path / "x.npy", x)
        with pytest.raises(FeatureStoreError, match=r"x\.npy: features hold NaN or inf"):
            read_array(tmp_path / "x.npy", mmap=True, finite=True)
    x[17, 0, 5] = 0
    check_finite(np.full((3, 2), 3e300), "huge.npy")        # a float64 sum that overflows is not a NaN
    check_finite(np.arange(6).reshape(2, 3), "ints.npy")
    np.save(tmp_path / "x.npy", x)
    assert read_array(tmp_path / "x.npy", mmap=True, finite=True).shape == (50, 1, 32)


@pytest.fixture
def feature_head(tmp_path):
    """(a feature folder of 3 anomalous + 3 normal videos, D 32, and a seeded untrained head's best.pt)."""
    import torch
    from feature_world import make_store
    from vadpipe.checkpoint import Checkpoint, build_model
    from vadpipe.config import ModelConfig
    from vadpipe.features import FeatureStore

    folder = tmp_path / "feat"
    make_store(folder, 3, 3, dim=32, t_range=(6, 10))
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=32, heads=4, ffn_dim=64, hidden=(32, 16))
    ckpt = tmp_path / "best.pt"
    Checkpoint.of(build_model(config), config, recipe=FeatureStore(folder).recipe(),
                  calibration={"normal_frame_score_quantiles": {"0.99": 1.0}}).save(ckpt)
    return folder, ckpt


def test_score_of_a_feature_folder_with_an_empty_npy_scores_the_others(tmp_path, feature_head):
    folder, ckpt = feature_head
    empty = folder / "Fight__fight_0_001.npy"
    empty.write_bytes(b"")
    result = CliRunner().invoke(main, ["score", str(folder), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                       "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: {empty}: cannot read features (empty file)"]
    assert len(list((tmp_path / "out").glob("*.scores.csv"))) == 5          # the batch went on


def test_score_of_nan_features_is_one_line_and_writes_no_nan(tmp_path, feature_head):
    folder, ckpt = feature_head
    bad = folder / "Normal__normal_0_004.npy"
    x = np.load(bad)
    x[2, 0, 3] = np.nan
    np.save(bad, x)
    result = CliRunner().invoke(main, ["score", str(folder), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                                       "--no-progress"])
    assert_clean(result)
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: {bad}: features hold NaN or inf"]
    written = sorted((tmp_path / "out").glob("*.json"))
    assert len(written) == 5 and not any("NaN" in p.read_text() for p in written)


@pytest.mark.parametrize("damage", ["empty", "nan"])
def test_train_names_an_empty_or_nan_feature_file_before_training(tmp_path, feature_head, damage):
    folder, _ = feature_head
    bad = folder / "Normal__normal_0_005.npy"
    if damage == "empty":
        bad.write_bytes(b"")
    else:
        x = np.load(bad)
        x[-1, 0, 0] = np.inf
        np.save(bad, x)
    result = CliRunner().invoke(main, ["train", "--features", str(folder), "--preset", "demo", "--iters", "2",
                                       "--out", str(tmp_path / "run"), "--no-progress"])
    assert_clean(result)
    reason = "cannot read features (empty file)" if damage == "empty" else "features hold NaN or inf"
    assert result.exit_code == 1 and error_lines(result) == [f"error: {bad}: {reason}"]
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_nan_validation_video_stops_training_before_the_first_step(tmp_path, feature_head, monkeypatch):
    from feature_world import make_store, tiny_default
    from vadpipe import train as train_module
    from vadpipe.errors import FeatureStoreError

    folder, _ = feature_head
    make_store(tmp_path / "val", 2, 2, dim=32, seed=1, t_range=(6, 10))
    bad = sorted((tmp_path / "val").glob("*.npy"))[-1]
    x = np.load(bad)
    x[0, 0, 0] = np.nan
    np.save(bad, x)
    steps = []
    real_step = train_module._Trainer._step
    monkeypatch.setattr(train_module._Trainer, "_step", lambda self, it: steps.append(it) or real_step(self, it))
    cfg = tiny_default(folder, iterations=4, eval_every=2, val_features=str(tmp_path / "val"),
                       val_gt=str(tmp_path / "val" / "gt.json"))
    with pytest.raises(FeatureStoreError, match=f"{bad}: features hold NaN or inf"):
        train_module.train(cfg, out=tmp_path / "run", progress=False)
    assert steps == []                  # refused before the first step, not at the first evaluation


def test_extract_resume_redoes_a_feature_file_emptied_since(tmp_path):
    root = tmp_path / "videos"
    for i in range(2):
        make_video(root / f"v{i}.mp4", 16, seed=i)
    out = tmp_path / "features"
    args = ["extract", str(root), "-o", str(out), *EXTRACT_ARGS]
    assert CliRunner().invoke(main, args).exit_code == 0
    (out / "v1.npy").write_bytes(b"")
    result = CliRunner().invoke(main, args)
    assert_clean(result)
    assert result.exit_code == 0 and "1 ok, 0 failed, 1 skipped" in result.output, result.output
    assert np.load(out / "v1.npy").shape[0] == 1


def test_features_import_indexes_the_good_files_and_names_each_unreadable_one(tmp_path, feature_head):
    folder, _ = feature_head
    src = tmp_path / "public"
    src.mkdir()
    for path in sorted(folder.glob("*.npy")):
        (src / path.name).write_bytes(path.read_bytes())
    bad = bad_npys(tmp_path / "bad")
    for name in ("cut", "text", "objects"):
        (src / f"Normal__{name}.npy").write_bytes(bad[name][0].read_bytes())
    out = tmp_path / "imported"
    result = CliRunner().invoke(main, ["features", "import", str(src), "-o", str(out),
                                       "--recipe", str(folder / "recipe.json")])
    assert_clean(result)
    assert result.exit_code == 1 and "indexed 6 videos" in result.output, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3
    for name in ("cut", "text", "objects"):
        line = next(line for line in failed if f"Normal__{name}:" in line)
        assert f"{src / f'Normal__{name}.npy'}: cannot read features ({bad[name][1]}" in line
    assert "allow_pickle" not in result.output + result.stderr
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 9


@pytest.mark.parametrize("damage", ["cut", "objects"])
def test_eval_with_a_damaged_frame_mask_or_concatenated_gt_is_one_line(tmp_path, damage):
    from vadpipe.evaluate import ScoreSet, write_scores

    write_scores(tmp_path / "scores", ScoreSet({"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32)},
                                               {"a": 32, "b": 32}))
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "a.npy", np.zeros(32, np.int8))
    bad = bad_npys(tmp_path / "bad")[damage]
    (masks / "b.npy").write_bytes(bad[0].read_bytes())
    concat = tmp_path / "concat.npy"
    concat.write_bytes(bad[0].read_bytes())
    for gt, fmt, what in ((masks, "masks", "frame mask"), (concat, "concat", "ground truth")):
        result = CliRunner().invoke(main, ["eval", "--scores", str(tmp_path / "scores"), "--gt", str(gt),
                                           "--gt-format", fmt])
        assert_clean(result)
        named = masks / "b.npy" if fmt == "masks" else concat
        assert result.exit_code == 1
        assert error_lines(result) == [f"error: {named}: cannot read {what} ({bad[1]})"]


# --- text inputs whose bytes are not UTF-8: one line, never a UnicodeDecodeError ----------------------

@pytest.mark.parametrize("args, named", [
    (["features", "export-list", "{feat}", "-o", "{tmp}/x.list", "--subset", "{tmp}/bin.list"], "bin.list"),
    (["features", "import", "{feat}", "-o", "{tmp}/imp", "--list", "{tmp}/bin.list", "--split-index", "1"],
     "bin.list"),
    (["features", "import", "{feat}", "-o", "{tmp}/imp", "--labels", "{tmp}/bin.csv"], "bin.csv"),
    (["extract", "{tmp}/novideos", "-o", "{tmp}/fx", "--labels", "{tmp}/bin.csv", *EXTRACT_ARGS], "bin.csv"),
    (["train", "--features", "{tmp}/bin.list", "--preset", "demo", "--out", "{tmp}/run", "--no-progress"],
     "bin.list"),
    (["eval", "--scores", "{tmp}/scores", "--gt", "{tmp}/bin.txt"], "bin.txt"),
    (["eval", "--scores", "{tmp}/scores", "--gt", "{tmp}/bin.json"], "bin.json"),
    (["eval", "--scores", "{tmp}/binscores", "--gt", "{feat}/gt.json"], "binscores/index.json"),
])
def test_a_text_input_that_is_not_utf8_is_one_line_naming_it(tmp_path, feature_head, args, named):
    from vadpipe.evaluate import ScoreSet, write_scores

    folder, _ = feature_head
    for name in ("bin.list", "bin.csv", "bin.txt", "bin.json"):
        (tmp_path / name).write_bytes(b"\xff\xfe" + b"Fight__fight_0_000.npy 1\n")
    write_scores(tmp_path / "scores", ScoreSet({"a": np.zeros(2, np.float32)}, {"a": 32}))
    (tmp_path / "binscores").mkdir()
    (tmp_path / "binscores" / "index.json").write_bytes(b'{"format": "\xff"}')
    (tmp_path / "novideos").mkdir()
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path, feat=folder) for a in args])
    assert_clean(result)
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: {tmp_path / named}: not UTF-8 text (byte 0xff on line 1)"]


def test_a_manifest_line_that_is_not_utf8_is_skipped_like_a_torn_line(tmp_path, feature_head):
    folder, _ = feature_head
    manifest_path = folder / "manifest.jsonl"
    lines = manifest_path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"Fight/', b'"\xffFight/', 1)
    manifest_path.write_bytes(b"".join(lines))
    result = CliRunner().invoke(main, ["features", "export-list", str(folder), "-o", str(tmp_path / "x.list")])
    assert_clean(result)
    assert result.exit_code == 0, result.output
    listed = (tmp_path / "x.list").read_text().splitlines()
    assert len(listed) == 5 and not any("fight_0_001" in line for line in listed)


# --- links, long names, damaged score indexes and world files -------------------------------------------

def test_extract_skips_a_link_to_itself_and_extracts_the_other_videos(tmp_path):
    root = tmp_path / "videos"
    make_video(root / "normal" / "good.mp4", 16)
    (root / "normal" / "self.mp4").symlink_to("self.mp4")
    result = CliRunner().invoke(main, ["extract", str(root), "-o", str(tmp_path / "f"), *EXTRACT_ARGS])
    assert_clean(result)
    assert result.exit_code == 0 and "1 ok, 0 failed" in result.output, result.output
    assert f"skipped: {root / 'normal' / 'self.mp4'}: cannot follow (Too many levels of symbolic links)" \
        in result.stderr
    assert manifest(tmp_path / "f")["normal/good"]["status"] == "ok"


def test_an_oserror_naming_a_file_is_one_line_and_info_goes_on(tmp_path, feature_head):
    long_name = str(tmp_path / ("x" * 300 + ".mp4"))
    good = make_video(tmp_path / "good.mp4", 16)
    result = CliRunner().invoke(main, ["info", long_name, str(good)])
    assert_clean(result)
    assert result.exit_code == 1 and error_lines(result) == [f"error: {long_name}: File name too long"]
    assert str(good) in result.stdout                                            # the batch went on
    folder, ckpt = feature_head
    result = CliRunner().invoke(main, ["score", long_name.replace(".mp4", ".npy"), str(folder), "--checkpoint",
                                       str(ckpt), "-o", str(tmp_path / "out"), "--no-progress"])
    assert_clean(result)
    assert error_lines(result) == [f"error: {long_name.replace('.mp4', '.npy')}: File name too long"]
    assert result.exit_code == 1 and len(list((tmp_path / "out").glob("*.scores.csv"))) == 6
    run = tmp_path / ("r" * 300)
    result = CliRunner().invoke(main, ["train", "--features", str(folder), "--preset", "demo", "--iters", "1",
                                       "--out", str(run), "--no-progress"])
    assert_clean(result)
    (line,) = error_lines(result)
    assert result.exit_code == 1 and line.startswith(f"error: {run}") and line.endswith(": File name too long")


def test_one_line_errors_prints_any_oserror_as_one_line():
    import errno

    import click
    from vadpipe.cli import one_line_errors

    def failing(exc):
        @click.command()
        @one_line_errors
        def cmd():
            raise exc
        return CliRunner().invoke(cmd, [])

    for exc, line in ((OSError(errno.ELOOP, os.strerror(errno.ELOOP), "a/self.mp4"),
                       "error: a/self.mp4: Too many levels of symbolic links"),
                      (OSError(errno.EIO, os.strerror(errno.EIO)), "error: Input/output error (EIO)"),
                      (OSError(errno.EXDEV, os.strerror(errno.EXDEV), "a", None, "b"),
                       "error: a -> b: Invalid cross-device link")):
        result = failing(exc)
        assert result.exit_code == 1 and result.stderr.strip() == line


@pytest.mark.parametrize("damage, cause", [
    ("ghost", "video 'ghost' is in \"order\" but has no record in \"videos\""),
    ("nofile", "video 'a' has neither \"file\" nor \"scores\""),
    ("words", "video 'a': its scores are not a list of numbers"),
    ("frames=200", "video 'a': frames = '200' is not a positive whole number"),
    ("frames=40.5", "video 'a': frames = 40.5 is not a positive whole number"),
    ("frames=True", "video 'a': frames = True is not a positive whole number"),
    ("snippet_len=abc", "snippet_len = 'abc' is not a positive whole number"),
])
def test_eval_of_a_score_index_that_lists_a_video_without_a_record_is_one_line(tmp_path, damage, cause):
    from vadpipe.evaluate import ScoreSet, write_scores

    index_path = write_scores(tmp_path / "scores", ScoreSet({"a": np.zeros(2, np.float32)}, {"a": 32}))
    index = json.loads(index_path.read_text())
    if damage == "ghost":
        index["order"].append("ghost")
    elif damage == "nofile":
        del index["videos"]["a"]["file"]
    elif damage == "words":
        index["videos"]["a"]["scores"] = ["high", "low"]
    elif damage.startswith("frames="):
        index["videos"]["a"]["frames"] = {"200": "200", "40.5": 40.5, "True": True}[damage[7:]]
    else:
        index["snippet_len"] = "abc"
    index_path.write_text(json.dumps(index))
    (tmp_path / "gt.json").write_text('{"videos": {"a": {"frames": 32, "intervals": [[1, 5]]}}}')
    result = CliRunner().invoke(main, ["eval", "--scores", str(tmp_path / "scores"), "--gt", str(tmp_path / "gt.json")])
    assert_clean(result)
    assert result.exit_code == 1 and error_lines(result) == [f"error: {index_path}: {cause}"]


def test_eval_scores_name_with_an_empty_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.json").write_text('{"videos": {"a": {"frames": 32, "intervals": [[1, 5]]}}}')
    for arg, line in (("a=", "error: --scores 'a=': no PATH after 'a='"), ("", "error: --scores '': an empty PATH")):
        result = CliRunner().invoke(main, ["eval", "--scores", arg, "--gt", "gt.json"])
        assert_clean(result)
        assert result.exit_code == 1 and error_lines(result) == [line]


def test_synth_redoes_an_empty_clip_and_names_a_damaged_world_file(tmp_path):
    out = tmp_path / "w"
    args = ["synth", str(out), "--size", "tiny", "--clips", "3", "--width", "96", "--height", "54",
            "--min-seconds", "2", "--max-seconds", "2", "--no-progress"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    clip = sorted(out.rglob("*.mp4"))[0]
    clip.write_bytes(b"")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "1 generated, 2 already there" in result.output, result.output
    assert clip.stat().st_size > 0
    world = out / "world.json"
    text = world.read_text()
    for damaged, cause in ((text[:len(text) // 2], "unreadable ("), ("[1]", "not a world file (a JSON object)")):
        world.write_text(damaged)
        result = CliRunner().invoke(main, args)
        assert_clean(result)
        (line,) = error_lines(result)
        assert result.exit_code == 1 and line.startswith(f"error: {world}: {cause}") and "--overwrite" in line


def test_an_error_naming_a_file_with_a_newline_stays_one_line(tmp_path):
    config = tmp_path / "my\nconfig.yaml"
    config.write_text("train: 5\n")
    result = CliRunner().invoke(main, ["train", "-c", str(config), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {tmp_path}/my\\nconfig.yaml: train: expected a mapping, "
                                                  "got a number 5"]
