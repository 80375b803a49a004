"""Several score sets against one ground truth: table, paired differences, JSON, plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from score_world import make_scores
from vadpipe.compare import compare_paths, parse_source, set_names
from vadpipe.eval_plots import ranking_errors, worst_videos, write_eval_plots
from vadpipe.evaluate import ScoreSet, evaluate_score_path, write_scores
from vadpipe.groundtruth import write_vadpipe_json

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sets(tmp_path):
    """gt.json, an index.json folder and a plain .npy folder of the same scores, and a weaker method's folder."""
    gts, scores = make_scores(seed=11)
    _, weak = make_scores(seed=11, signal=0.1)
    write_vadpipe_json(tmp_path / "gt.json", gts.values())
    write_scores(tmp_path / "ours" / "scores", ScoreSet(dict(scores), {v: None for v in scores}))
    for name, values in (("public", scores), ("weak", weak)):
        (tmp_path / name).mkdir()
        for vid, s in values.items():
            np.save(tmp_path / name / f"{vid}_pred.npy", s[:, None])
    return tmp_path


def test_one_table_for_several_sets_with_paired_differences(sets):
    sources = [str(sets / "ours" / "scores"), f"pub={sets / 'public'}", str(sets / "weak")]
    comp, loaded = compare_paths(sources, sets / "gt.json", n_bootstrap=200, seed=3)
    assert [r.name for r in comp.rows] == ["scores", "pub", "weak"]
    assert [ls.kind for ls in loaded] == ["index", "files", "files"]
    single = evaluate_score_path(sets / "ours" / "scores", sets / "gt.json").metrics
    assert comp.rows[0].auc == single["auc"] and comp.rows[1].auc == single["auc"]
    assert comp.rows[1].ap == single["ap"] and comp.rows[1].false_alarm_rate == single["false_alarm_rate"]
    same, weaker = comp.diffs
    assert (same.auc, same.bootstrap.auc.low, same.bootstrap.auc.high) == (0.0, 0.0, 0.0)
    assert weaker.auc == pytest.approx(comp.rows[2].auc - comp.rows[0].auc, abs=1e-12) and weaker.auc < 0
    assert weaker.bootstrap.auc.high < 0
    for r in comp.rows:
        assert r.bootstrap.auc.low <= r.auc <= r.bootstrap.auc.high
    text = comp.table()
    assert "pub - scores" in text and "95% CI" in text and "layouts: (T, 1) x24" in text
    back = json.loads(json.dumps(comp.to_dict()))
    assert back["differences"][0]["bootstrap"]["auc"]["high"] == 0.0
    assert back["sources"]["pub"]["files"][0]["layout"] == "(T, 1)"
    again, _ = compare_paths(sources, sets / "gt.json", n_bootstrap=200, seed=3)
    assert again.to_dict() == comp.to_dict()


def test_names():
    assert set_names(["runs/a/scores", "runs/b/scores", "x/weak"]) == ["a/scores", "b/scores", "weak"]
    assert parse_source("ltgs=runs/a/scores") == ("ltgs", "runs/a/scores")
    assert parse_source("runs/a/scores") == (None, "runs/a/scores")
    assert set_names(["x/weak", "x/weak", "y/weak"]) == ["x/weak", "x/weak#2", "y/weak"]   # one folder twice


def test_plots_are_pngs_and_worst_videos_are_the_misranked(sets):
    comp, _ = compare_paths([str(sets / "public"), str(sets / "weak")], sets / "gt.json")
    frames = dict(comp.aligned["public"])
    normal = next(v for v, (_, y) in frames.items() if not y.any())
    frames[normal] = (np.full_like(frames[normal][0], 5.0), frames[normal][1])    # a normal video scored highest
    assert worst_videos(frames, 1) == [normal] and ranking_errors(frames)[normal] == 1.0
    paths = write_eval_plots(sets / "plots", comp.aligned, worst=3)
    assert sorted(p.name for p in paths) == ["pr.png", "roc.png", "worst_public.png", "worst_weak.png"]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000
    assert not list((sets / "plots").glob(".*tmp*"))          # atomic writes leave no temporaries


# --- through the CLI ------------------------------------------------------------------------------
def _eval(*args):
    from click.testing import CliRunner

    from vadpipe.cli import main

    return CliRunner().invoke(main, ["eval", *map(str, args)])


def test_cli_plain_folder_equals_index_folder(sets):
    index = _eval("--scores", sets / "ours" / "scores", "--gt", sets / "gt.json", "--json")
    plain = _eval("--scores", sets / "public", "--gt", sets / "gt.json", "--json")
    assert index.exit_code == 0 and plain.exit_code == 0, index.output + plain.output
    a, b = json.loads(index.output), json.loads(plain.output)
    assert a["metrics"]["auc"] == b["metrics"]["auc"] and a["metrics"]["ap"] == b["metrics"]["ap"]
    assert b["metrics"]["n_videos"] == 24 and b["rows"][0]["auc"] == b["metrics"]["auc"]
    assert b["sources"]["public"]["kind"] == "files"
    text = _eval("--scores", sets / "public", "--gt", sets / "gt.json").output
    assert text.startswith("videos 24 (12 anomalous, 12 normal)")                   # the single-set summary first
    row = next(line for line in text.splitlines() if line.startswith("public "))      # then the table row
    assert row.split()[1:3] == ["24", f"{100 * a['metrics']['auc']:.2f}"]


def test_cli_two_sets_bootstrap_plots_and_eval_json(sets):
    args = ["--scores", f"ours={sets / 'ours' / 'scores'}", "--scores", f"again={sets / 'public'}",
            "--scores", sets / "weak", "--gt", sets / "gt.json", "--bootstrap", 50, "--seed", 4]
    res = _eval(*args, "--plot", sets / "figs", "--worst", 2, "--out", sets / "ev")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["score", "set", "videos", "AUC", "%", "95%", "CI", "AP", "%", "95%", "CI",
                                "AUC", "anom.", "%", "false", "alarms", "%"]
    assert any(line.startswith("again - ours") and "[+0.00, +0.00]" in line for line in lines)
    assert any(line.startswith("weak - ours") for line in lines)
    assert "bootstrap: 50 resamples of the videos (seed 4)" in res.output
    for name in ("roc.png", "pr.png", "worst_ours.png", "worst_again.png", "worst_weak.png"):
        assert (sets / "figs" / name).read_bytes()[:8] == PNG and f"written: {sets / 'figs' / name}" in res.output
    saved = json.loads((sets / "ev" / "eval.json").read_text())
    assert [r["name"] for r in saved["rows"]] == ["ours", "again", "weak"] and len(saved["differences"]) == 2
    same, weak = saved["differences"]
    assert (same["auc"], same["ap"]) == (0.0, 0.0)                                      # a set against itself: exactly 0
    assert same["bootstrap"]["auc"]["low"] == same["bootstrap"]["auc"]["high"] == 0.0
    assert weak["auc"] < 0 and weak["bootstrap"]["auc"]["high"] < 0
    for row in saved["rows"]:
        ci = row["bootstrap"]["auc"]
        assert ci["low"] <= row["auc"] <= ci["high"] and row["bootstrap"]["n"] == 50
    again = json.loads(_eval(*args, "--json").output)                                   # seeded: the same intervals
    assert again["rows"] == saved["rows"] and again["differences"] == saved["differences"]


def test_cli_errors_are_one_line(sets):
    np.save(sets / "cat.npy", np.zeros(10))
    (sets / "public" / "Fighting000_x264_pred.npy").write_bytes(b"not an array")
    (sets / "gt.xml").write_text("<gt/>")
    (sets / "other").mkdir()
    np.save(sets / "other" / "Robbery001_x264.npy", np.ones(5))
    cases = [(["--scores", sets / "missing"], "missing: no such score file or folder"),
             (["--scores", f"m={sets / 'missing'}"], "missing: no such score file or folder"),
             (["--scores", sets / "public"], "Fighting000_x264_pred.npy: cannot read scores (not a .npy file)"),
             (["--scores", sets / "other"], "none of the 1 score files matches a ground-truth video"),
             (["--scores", sets / "cat.npy", "--bootstrap", 10], "have no videos to resample"),
             (["--scores", sets / "weak", "--gt", sets / "gt.xml"], "cannot tell the ground-truth format")]
    for args, message in cases:
        res = _eval(*args, *([] if "--gt" in args else ["--gt", sets / "gt.json"]))
        assert res.exit_code == 1 and res.output.startswith("error: ") and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


def test_non_finite_scores_are_one_line_and_missing_videos_are_said_for_each_set(sets):
    """NaN reached sklearn ("Input contains NaN", a traceback); two sets both missing videos said nothing."""
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        (sets / name).mkdir()
        for f in (sets / "public").glob("*.npy"):
            s = np.load(f)
            s[0] = bad
            np.save(sets / name / f.name, s)
        res = _eval("--scores", sets / name, "--gt", sets / "gt.json")
        assert res.exit_code == 1 and "scores hold NaN or inf" in res.output and "Traceback" not in res.output
    for name in ("a", "b"):
        (sets / name).mkdir()
        for f in sorted((sets / "public").glob("*.npy"))[2:]:
            np.save(sets / name / f.name, np.load(f))
    res = _eval("--scores", f"a={sets / 'a'}", "--scores", f"b={sets / 'b'}", "--gt", sets / "gt.json")
    assert res.exit_code == 0, res.output
    assert "a: no scores for 2 gt video(s)" in res.output and "b: no scores for 2 gt video(s)" in res.output


def test_a_ground_truth_without_anomalous_frames_writes_null_not_nan(sets):
    """Paired differences and bootstrap points of sets that cannot be ranked are null in eval.json and
    --json (a strict JSON reader refuses NaN)."""
    gt = json.loads((sets / "gt.json").read_text())
    for video in gt["videos"].values():
        video.pop("intervals", None), video.pop("events", None)
        video["class"] = "Normal"
    (sets / "normal.json").write_text(json.dumps(gt))
    res = _eval("--scores", sets / "ours" / "scores", "--scores", sets / "weak", "--gt", sets / "normal.json",
                "--bootstrap", 10, "--out", sets / "ev")
    assert res.exit_code == 0, res.output
    saved = json.loads((sets / "ev" / "eval.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert saved["differences"][0]["auc"] is None and saved["differences"][0]["ap"] is None
