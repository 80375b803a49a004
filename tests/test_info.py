import json

from click.testing import CliRunner

from vadpipe.cli import main


def test_info_table_and_errors(tmp_path, video_factory):
    good = video_factory("ok.mp4", frames=32)
    short = video_factory("short.mp4", frames=6)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(main, ["info", str(tmp_path), str(tmp_path / "missing.avi")])
    assert result.exit_code == 1
    out = result.stdout
    assert "ok.mp4" in out and "32" in out and "64x48" in out
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("bad.mp4" in e for e in errors) and any("missing.avi" in e for e in errors)
    assert any("short.mp4" in w and "padded" in w for w in result.stderr.splitlines())
    assert good.exists() and short.exists()


def test_info_json_and_exit_zero(video_factory):
    path = video_factory("a.mp4", frames=20, fps=10)
    result = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert result.exit_code == 0
    row = json.loads(result.stdout.strip())
    assert row["frames"] == 20 and row["fps"] == 10 and row["status"] == "ok" and row["frames_exact"]


def test_info_sample_media(media_dir):
    result = CliRunner().invoke(main, ["info", "--json", str(media_dir)])
    assert result.exit_code == 0
    rows = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in result.stdout.splitlines()}
    assert rows["bikes.mp4"]["frames"] == 250 and rows["vtest.avi"]["frames"] == 795
