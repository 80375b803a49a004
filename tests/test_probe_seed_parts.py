"""tools/probe_seed_parts.py: a run's held-out split drawn with another seed than the rest of its training."""
from __future__ import annotations

import sys
from pathlib import Path

from types import SimpleNamespace

import numpy as np
import pytest

import vadpipe.run_split
from feature_world import make_store, tiny_default
from vadpipe.data import open_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_accuracy  # noqa: E402
from probe_seed_parts import (drawn, held_out_ids, main, normal_units, novelty, split_from,  # noqa: E402
                              training_set, typical_positions)


def _held_out(run_dir: Path) -> list:
    from vadpipe.checkpoint import Checkpoint

    return sorted(Checkpoint.load(run_dir, "last").last["split"]["val"])


def test_split_seed_sets_the_held_out_videos_and_the_run_seed_the_rest(tmp_path):
    make_store(tmp_path / "train", 4, 10, dim=16, seed=0, t_range=(8, 14))
    make_store(tmp_path / "test", 2, 2, dim=16, seed=1, t_range=(8, 14))
    bench = bench_accuracy.Bench("t", str(tmp_path / "train"), str(tmp_path / "test"),
                                 str(tmp_path / "test" / "gt.json"))
    cfg = tiny_default(tmp_path / "train", iterations=4, holdout_pick="typical")   # split seeds draw anyway
    ts = training_set(bench, cfg)
    splits = {s: sorted(held_out_ids(ts, cfg, s)) for s in (0, 1, 2, 3)}
    assert splits[3] != splits[0]                                        # the seeds draw different splits
    with split_from(3):
        bench_accuracy.run_once(bench, cfg, 0, tmp_path / "a")
        bench_accuracy.run_once(bench, cfg, 1, tmp_path / "b")
    cfg.train.holdout_pick = "random"
    bench_accuracy.run_once(bench, cfg, 0, tmp_path / "c")                # outside the block: the seed's own
    assert _held_out(tmp_path / "a" / "t-0") == _held_out(tmp_path / "b" / "t-1") == splits[3]
    assert _held_out(tmp_path / "c" / "t-0") == splits[0]


def test_members_and_pairs_are_refused():
    for config in ("e=ensemble", "p=default+model.partner=rtfm"):
        with pytest.raises(SystemExit):
            main(["--config", config, "--bench", "ped1"])


def test_novelty_is_zero_for_snippets_training_repeats_and_one_minus_the_best_cosine_otherwise():
    """Held-out normal snippets that a training normal video repeats add no novelty; a snippet at 90 degrees
    to every training one adds 1; anomalous videos are not compared with."""
    e = np.eye(3, dtype=np.float32)[:, None, :]                  # (T=3, views 1, D=3): the three axes
    videos = [SimpleNamespace(id="a", label=0, load=lambda: 2 * e[:2]),           # x and y, scaled
              SimpleNamespace(id="b", label=0, load=lambda: e[:1]),               # x
              SimpleNamespace(id="c", label=0, load=lambda: e[1:]),               # y and z
              SimpleNamespace(id="z", label=1, load=lambda: e[2:])]               # z, but anomalous
    units = normal_units(SimpleNamespace(videos=videos))
    assert sorted(units) == ["a", "b", "c"]
    assert novelty(units, ["b"]) == pytest.approx(0.0)           # x is in a
    assert novelty(units, ["c"]) == pytest.approx(0.5)           # y is in a, z in no normal video
    assert novelty(units, ["b", "c"]) == pytest.approx(0.25)     # per video, then averaged: (0 + 0.5) / 2


def test_typical_split_holds_out_the_least_novel_normal_videos_as_many_as_a_seed_would(tmp_path):
    make_store(tmp_path / "train", 3, 8, dim=16, seed=0, t_range=(6, 9))
    bench = bench_accuracy.Bench("t", str(tmp_path / "train"), "", "")
    cfg = tiny_default(tmp_path / "train")
    data = open_features(tmp_path / "train")
    labels = data.labels()
    ts = training_set(bench, cfg)
    held = typical_positions(ts, cfg)
    assert len(held) == len(vadpipe.run_split.share_split(drawn(cfg.train), labels, 0)[1]) and all(labels[held] == 0)
    each = {i: novelty(ts.units, [data.videos[i].id]) for i in np.flatnonzero(labels == 0)}
    assert max(each[i] for i in held) <= min(each[i] for i in each if i not in held)
    with split_from(-1, held):
        train_idx, val_idx = vadpipe.run_split.share_split(cfg.train, labels, 7)
    assert list(val_idx) == sorted(held) and sorted(train_idx.tolist() + val_idx.tolist()) == list(range(len(labels)))


def test_report_gives_each_held_out_videos_splits_against_the_others(tmp_path, capsys):
    """Per video held out by some split: the mean frame AUC of the splits holding it out against the rest's
    (split seeds 0, 1, 2 at 0.80, 0.90, 0.70, each the mean of two seeds)."""
    from probe_seed_parts import print_report

    make_store(tmp_path / "train", 3, 8, dim=16, seed=0, t_range=(6, 9))
    cfg = tiny_default(tmp_path / "train")
    ts = training_set(bench_accuracy.Bench("t", str(tmp_path / "train"), "", ""), cfg)
    aucs = {0: 0.80, 1: 0.90, 2: 0.70}
    runs = [{"auc": aucs[s] + d, "split_seed": s, "seed": k} for s in aucs for k, d in ((0, 0.01), (1, -0.01))]
    print_report("t", "default", ts, cfg, runs)
    out = capsys.readouterr().out
    held = {s: set(held_out_ids(ts, cfg, s)) for s in aucs}
    vid = next(iter(held[1] - held[0] - held[2]), None) or next(iter(held[1]))
    mine = [aucs[s] for s in aucs if vid in held[s]]
    rest = [aucs[s] for s in aucs if vid not in held[s]]
    expected = (f"  {vid}: held out by {len(mine)} splits, their frame AUC {100 * np.mean(mine):.1f} against "
                + (f"{100 * np.mean(rest):.1f}" if rest else "n/a") + " for the others")
    assert expected in out.splitlines()
    assert "Pearson r of the splits' frame AUC and novelty" in out
