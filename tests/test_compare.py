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
