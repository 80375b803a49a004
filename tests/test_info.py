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


def test_a_name_with_a_newline_stays_one_line(tmp_path):
    (tmp_path / "evil\nname.mp4").write_bytes(b"")
    result = CliRunner().invoke(main, ["info", str(tmp_path), "--quick"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {tmp_path}/evil\\nname.mp4: empty file"]
    assert len(result.stdout.splitlines()) == 2 and "evil\\nname.mp4" in result.stdout.splitlines()[1]


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


def test_info_shows_damage_rotation_and_vfr(tmp_path):
    from test_video import truncated_mp4, write_timed

    cut = truncated_mp4(tmp_path / "cut.mp4")
    (tmp_path / "cut_whole.mp4").unlink()
    write_timed(tmp_path / "phone.mp4", [40 * i for i in range(20)], rotation=-90)
    write_timed(tmp_path / "vfr.mp4", [0, 40, 80, 900, 940, 980, 1020, 1060, 1100, 1140, 1180, 1220, 1260, 1300,
                                       1340, 1380, 1420])
    result = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert result.exit_code == 1                          # a damaged clip would not extract cleanly
    table = {line.split()[0].rsplit("/", 1)[-1]: line.split() for line in result.stdout.splitlines()[1:]}
    assert table["cut.mp4"][-1] == "damaged"
    assert table["phone.mp4"][-2:] == ["rot90", "ok"] and table["phone.mp4"][3] == "48x64"
    assert table["vfr.mp4"][-2:] == ["vfr", "ok"]
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("damaged:")] == [
        next(line for line in lines if str(cut) in line)]
    assert any("vfr.mp4: variable frame rate" in line for line in lines)
    rows = [json.loads(line) for line in CliRunner().invoke(main, ["info", "--json", str(cut)]).stdout.splitlines()]
    assert rows[0]["damaged"] and rows[0]["status"] == "damaged" and "80 frames" in rows[0]["damage"]
