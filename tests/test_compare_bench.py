"""tools/compare_bench.py: two bench_accuracy reports paired by seed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from compare_bench import change, main, paired, spread  # noqa: E402


def _runs(aucs, seeds=None):
    return [{"auc": a, "hit_auto": None, **({"seed": s} if seeds is not None else {})}
            for a, s in zip(aucs, seeds if seeds is not None else aucs)]


def test_runs_pair_by_seed_whatever_their_order_and_changes_are_per_seed():
    before = _runs([0.80, 0.90, 0.70], seeds=[0, 1, 2])
    after = _runs([0.72, 0.80, 0.93], seeds=[2, 0, 1])     # seed 0: +0, seed 1: +3, seed 2: +2
    pairs, by_seed = paired(before, after)
    assert by_seed and [(a["seed"], b["seed"]) for a, b in pairs] == [(0, 0), (1, 1), (2, 2)]
    c = change(pairs, "auc")
    assert (c.seeds, c.up, c.down) == (3, 2, 0)
    assert c.before == pytest.approx(80.0) and c.after == pytest.approx(81.6667, abs=1e-3)
    assert c.mean == pytest.approx(5 / 3) and c.sd == pytest.approx(1.5275, abs=1e-3)
    assert change(pairs, "hit_auto") is None                # a metric neither side has: no line


def test_reports_without_seeds_pair_by_position_and_say_so(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({"ped1": {"default": _runs([0.8, 0.9])}, "demo": {"x": _runs([0.5])}}))
    new.write_text(json.dumps({"ped1": {"default": _runs([0.7, 0.9]), "other": _runs([0.1])}}))
    assert main([str(old), str(new), "--metrics", "auc"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[:3] == ["ped1", "default", "auc"]
    assert "up 0 down 1 same 1 of 2" in lines[0]
    assert lines[1].endswith("by position (a report without seeds): ped1/default")
    assert main([str(old), str(tmp_path / "old.json"), "--metrics", "ap"]) == 1   # no metric in common
    with pytest.raises(SystemExit, match="missing.json: not a readable"):
        main([str(old), str(tmp_path / "missing.json")])


def test_pair_compares_a_new_config_with_the_default_it_would_replace(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({"ped1": {"default": _runs([0.8, 0.9], seeds=[0, 1])}}))
    new.write_text(json.dumps({"ped1": {"typical": _runs([0.9, 0.7], seeds=[1, 0]),
                                        "default": _runs([0.8, 0.9], seeds=[0, 1])}}))
    assert main([str(old), str(new), "--metrics", "auc", "--pair", "default=typical"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].split()[:3] == ["ped1", "default→typical", "auc"]
    assert "85.0 →   80.0" in lines[0] and "up 0 down 1 same 1 of 2" in lines[0]     # seed 0 -10, seed 1 0
    assert main([str(old), str(new), "--pair", "default=nothing"]) == 1
    with pytest.raises(SystemExit):
        main([str(old), str(new), "--pair", "default"])


def test_jittered_runs_pair_by_seed_and_draw():
    """``bench_accuracy.py --jitter --draws N`` records each run's draw: a seed's draws pair one to one,
    and a run without a draw never pairs with a jittered one."""
    before = [{"auc": a, "seed": s, "draw": d} for a, s, d in ((0.8, 0, 0), (0.7, 0, 1), (0.9, 1, 0))]
    after = [{"auc": a, "seed": s, "draw": d} for a, s, d in ((0.6, 0, 1), (0.95, 1, 0), (0.85, 0, 0))]
    pairs, by_seed = paired(before, after)
    assert by_seed and [(a["auc"], b["auc"]) for a, b in pairs] == [(0.8, 0.85), (0.7, 0.6), (0.9, 0.95)]
    plain = [{"auc": 0.8, "seed": 0}]
    assert paired(plain, after) == ([], True)


def test_one_report_gives_each_rows_spread_between_seeds_and_within_a_seeds_draws(tmp_path, capsys):
    """Seed 0's draws 0.80 / 0.84, seed 1's 0.70 / 0.74 / 0.72: seeds' means 82 and 72 (sd 7.07), pooled sd
    within a seed sqrt((8 + 8) / 3) = 2.31, draws' means 75, 79, 72 (sd 3.51) (percent); without draws no
    within-seed or draws' figure."""
    runs = [{"auc": a, "seed": s, "draw": d} for a, s, d in
            ((0.80, 0, 0), (0.84, 0, 1), (0.70, 1, 0), (0.74, 1, 1), (0.72, 1, 2))]
    s = spread(runs, "auc")
    assert (s.runs, s.seeds) == (5, 2) and s.mean == pytest.approx(76.0)
    assert s.between == pytest.approx(7.0711, abs=1e-3) and s.within == pytest.approx(2.3094, abs=1e-3)
    assert s.sd == pytest.approx(5.8310, abs=1e-3) and s.rows == pytest.approx(3.5119, abs=1e-3)
    plain = spread(_runs([0.8, 0.9], seeds=[0, 1]), "auc")
    assert plain.within is None and plain.rows is None and plain.between == pytest.approx(plain.sd)
    assert spread(runs, "hit_auto") is None
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"ped1": {"default": runs}}))
    assert main([str(path), "--metrics", "auc", "ap"]) == 0
    line, = capsys.readouterr().out.strip().splitlines()
    assert line.split()[:3] == ["ped1", "default", "auc"]
    assert line.endswith("76.0 ±  5.8 over 5 runs (2 seeds): seeds' means ±  7.1, within a seed ±  2.3, "
                         "draws' means ±  3.5")
    assert main([str(path), "--metrics", "ap"]) == 1


def test_bench_counts_the_videos_score_would_note_as_flagged_nearly_throughout():
    """whole@auto: the share of normal and of anomalous test videos with >= 90 % of frames at the threshold."""
    from bench_accuracy import whole_clips

    frames = {"n1": (np.full(10, 0.9), np.zeros(10)),              # a normal scene flagged throughout
              "n2": (np.r_[np.full(8, 0.9), 0.1, 0.1], np.zeros(10)),  # 80 %: not noted
              "a1": (np.full(10, 0.6), np.r_[np.zeros(5), np.ones(5)])}
    assert whole_clips(frames, 0.5) == (0.5, 1.0)
    assert whole_clips(frames, 0.95) == (0.0, 0.0)
    assert whole_clips(frames, None) == (None, None)
    assert whole_clips({"n": (np.full(4, 0.9), np.zeros(4))}, 0.5) == (1.0, None)   # no anomalous video


def test_bench_counts_the_videos_the_scene_check_reads_as_new():
    """new scene: the share of normal and of anomalous test videos whose reading lies beyond the bound."""
    from bench_accuracy import scene_shares

    frames = {"n1": (np.zeros(4), np.zeros(4)), "n2": (np.zeros(4), np.zeros(4)), "n3": (np.zeros(4), np.zeros(4)),
              "a1": (np.zeros(4), np.r_[0, 1, 1, 0])}
    assert scene_shares(frames, {"n1": True, "n2": False, "a1": True}) == (1 / 3, 1.0)   # n3: no reading
    assert scene_shares({"n1": frames["n1"]}, {}) == (0.0, None)


def test_json_of_another_shape_is_one_line(tmp_path):
    for text in ("[1, 2]", '{"ped1": [1]}', '{"ped1": {"default": [1]}}'):
        (tmp_path / "r.json").write_text(text)
        with pytest.raises(SystemExit, match="not a bench_accuracy --json report"):
            main([str(tmp_path / "r.json")])
