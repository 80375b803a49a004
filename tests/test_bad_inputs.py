"""Every command with bad inputs: one line per bad file naming it, no traceback, exit 1, the rest still done.

Bad inputs: missing, unreadable, empty, random bytes, text, a truncated MP4 (index first, data cut at 30 %),
a folder passed where a file is expected, and folders mixing bad and good videos.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_video
from test_video import truncated_mp4
from vadpipe.cli import main

EXTRACT_ARGS = ["--backbone", "i3d-inception", "--weights", "random", "--preset", "tiny", "--workers", "0",
                "--threads", "1", "--batch-size", "4", "--no-progress"]


def bad_files(root: Path) -> dict:
    """name -> (path, words its error line must hold)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(os.urandom(3000))
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
    (root / "random.mp4").write_bytes(os.urandom(3000))
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
