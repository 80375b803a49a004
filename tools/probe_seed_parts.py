"""Where a config's spread over seeds comes from: the held-out normal videos the seed draws, or everything
else it draws (initial weights, batches, crops, the fitted terms' folds). Each run draws its held-out share
with a *split seed* and the rest with its own seed (the split is patched in here, so the product keeps no
such switch); one-head configs only (members draw a share each).

Printed per benchmark: a row per split seed (mean ± sd over the seeds, percent; the held-out videos' novelty,
a training-side figure: the mean over their snippets of one minus the largest cosine similarity to a snippet
of the normal videos left in training; and the held-out videos), each metric's spread between split seeds (the
sd of each split's mean over the seeds) and within a split (the pooled sd over its seeds), the Pearson r
of the splits' frame AUC and novelty, and per video held out by some split the mean frame AUC of the splits
that hold it out against the others. A spread mostly between splits says the runs differ by which normal
videos train the head and set its threshold; mostly within, by the training's own draws.

    python tools/probe_seed_parts.py --bench ped1 --config default=default --split-seeds 0 1 2 3 4 \\
        --seeds 0 1 2 --threads 1 [--json F]
    python tools/probe_seed_parts.py --bench ped1 --from F [G ...]     # saved runs printed together

``--typical`` trains every seed on one split instead: as many normal videos held out as a seed would hold
out, the least novel ones (each against all the other normal training videos): the product's
``train.holdout_pick: typical`` (a switch since stop 55); printed as split seed -1. A split seed always
stands for a seeded draw (``random``), whatever the config picks.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np

from bench_accuracy import BENCHES, Bench, default_cache, log, mean_sd, parse_config, run_once
from compare_bench import read_report, spread
from vadpipe.data import FeatureSet

SHOWN = ("auc", "ap", "auc_anomalous_videos", "false_alarm_auto", "hit_auto")
HEADERS = ("frame AUC", "AP", "inside", "FA@auto", "hit@auto")


TYPICAL = -1     # the split seed that stands for --typical's split


@dataclass
class TrainingSet:
    """A benchmark's training videos as the probe reads them, once: the labelled positions a run splits
    and each normal video's unit-length snippets (views averaged) that novelty compares."""
    data: FeatureSet
    labels: np.ndarray
    labelled: np.ndarray
    units: Dict[str, np.ndarray]


def training_set(bench: Bench, cfg) -> TrainingSet:
    from vadpipe.data import open_features
    from vadpipe.run_split import labelled_positions

    data = open_features(bench.train, cfg.train.list_anomalous)
    return TrainingSet(data, data.labels(), labelled_positions(data, cfg.train, log), normal_units(data))


def normal_units(data: FeatureSet) -> Dict[str, np.ndarray]:
    """Each normal video's snippets, views averaged, at unit length (every snippet: vadpipe.novelty's)."""
    from vadpipe.novelty import unit_snippets

    return {v.id: unit_snippets(x, len(x)) for v in data.videos if v.label == 0 for x in [v.load()]}


@contextmanager
def split_from(split_seed: int, held: Optional[np.ndarray] = None) -> Iterator[None]:
    """Within the block a run's held-out share is drawn with ``split_seed`` whatever its own seed and its
    ``train.holdout_pick``, or is ``held`` (positions among the labelled videos) when given."""
    from vadpipe import run_split

    plain = run_split.share_split

    def share(t, labels, _seed, novelty=None):
        if held is None:
            return plain(drawn(t), labels, split_seed)
        return np.setdiff1d(np.arange(len(labels)), held), np.sort(held)

    run_split.share_split = share
    try:
        yield
    finally:
        run_split.share_split = plain


def novelty(units: Dict[str, np.ndarray], held: List[str]) -> float:
    """How unlike the normal videos left in training the held-out normal ones are: over their snippets
    (``normal_units``), the mean of one minus the largest cosine similarity to a training one."""
    kept = np.concatenate([x for k, x in units.items() if k not in held])
    return float(np.mean([np.mean(1 - (units[k] @ kept.T).max(axis=1)) for k in held if k in units]))


def typical_positions(ts: TrainingSet, cfg) -> np.ndarray:
    """Positions among the labelled videos that ``train.holdout_pick: typical`` holds out (the product's
    rule: the least novel normal videos, each against all the other normal ones)."""
    from vadpipe.run_split import labelled_novelty, share_split

    t = replace(cfg.train, holdout_pick="typical")
    return share_split(t, ts.labels[ts.labelled], 0, labelled_novelty(ts.data, ts.labelled))[1]


def held_positions(ts: TrainingSet, cfg, split_seed: int) -> np.ndarray:
    """Positions among the labelled videos that a run holds out with ``split_seed`` (``TYPICAL``: the
    least novel normal videos)."""
    from vadpipe.run_split import share_split

    if split_seed == TYPICAL:
        return typical_positions(ts, cfg)
    return share_split(drawn(cfg.train), ts.labels[ts.labelled], split_seed)[1]


def drawn(t):
    """``t`` with its held-out share drawn by the seed (``train.holdout_pick: random``), what a split seed
    stands for whatever the config picks."""
    return replace(t, holdout_pick="random")


def held_out_ids(ts: TrainingSet, cfg, split_seed: int) -> List[str]:
    """The videos a run of ``cfg`` holds out of the training set with ``split_seed``."""
    return [ts.data.videos[i].id for i in ts.labelled[held_positions(ts, cfg, split_seed)]]


def print_report(bname: str, name: str, ts: TrainingSet, cfg, runs: List[dict]) -> None:
    """Rows per split seed, the spread between and within splits, and the r of novelty and frame AUC."""
    splits = sorted({r["split_seed"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    print(f"## {bname}, {name} (percent; mean ± sd over seeds {' '.join(map(str, seeds))})")
    print(" | ".join(("split seed",) + HEADERS + ("novelty", "held out")))
    held_by_split = {sp: held_out_ids(ts, cfg, sp) for sp in splits}     # once: typical reads every video
    aucs, novel = [], []
    for split_seed in splits:
        mine = [r for r in runs if r["split_seed"] == split_seed]
        held = held_by_split[split_seed]
        aucs.append(np.mean([r["auc"] for r in mine]))
        novel.append(novelty(ts.units, held))
        cells = [mean_sd([r.get(k) for r in mine]) for k in SHOWN]
        print(" | ".join([str(split_seed)] + cells + [f"{novel[-1]:.4f}", " ".join(held)]))
    # compare_bench.spread groups by "seed" (here the split) and "draw" (here the seed)
    keyed = [{**r, "seed": r["split_seed"], "draw": r["seed"]} for r in runs]
    for k, head in zip(SHOWN, HEADERS):
        s = spread(keyed, k)
        if s is not None:
            within = f"{s.within:.1f}" if s.within is not None else "n/a"
            print(f"{head:<10} {s.mean:5.1f} ± {s.sd:4.1f} over {s.runs} runs: between split seeds ± "
                  f"{s.between:.1f}, within a split ± {within}")
    if len(splits) > 2:
        print(f"Pearson r of the splits' frame AUC and novelty: {np.corrcoef(aucs, novel)[0, 1]:+.2f} "
              f"over {len(splits)} splits")
        held_by = [set(held_by_split[sp]) for sp in splits]
        for vid in sorted(set().union(*held_by)):
            out = [a for a, h in zip(aucs, held_by) if vid in h]
            kept = [a for a, h in zip(aucs, held_by) if vid not in h]
            print(f"  {vid}: held out by {len(out)} splits, their frame AUC {100 * np.mean(out):.1f} against "
                  + (f"{100 * np.mean(kept):.1f}" if kept else "n/a") + " for the others")
    print()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", nargs="+", default=["ped1"], choices=list(BENCHES))
    ap.add_argument("--config", default="default=default", help="NAME=BASE[+SECTION.FIELD=VALUE...], one head")
    ap.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", default=default_cache())
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", help="also write every run's figures here (split_seed and seed recorded)")
    ap.add_argument("--typical", action="store_true",
                    help="one split for every seed: the least novel normal videos held out (split seed -1)")
    ap.add_argument("--from", dest="saved", nargs="+", type=Path, default=None, metavar="JSON",
                    help="print these saved --json reports together instead of training")
    args = ap.parse_args(argv)
    name, cfg = parse_config(args.config)
    if cfg.model.bagging or cfg.model.partner:
        ap.error(f"--config {name}: one head only (members and pairs draw their own held-out shares)")
    if args.typical:
        args.split_seeds = [TYPICAL]
    if args.saved:
        for bname in args.bench:
            runs = [r for f in args.saved for r in read_report(f).get(bname, [])]
            bench = BENCHES[bname](Path(args.cache))
            if runs and bench is not None:
                print_report(bname, name, training_set(bench, cfg), cfg, runs)
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report = {}
    with tempfile.TemporaryDirectory(prefix="vadpipe-seed-parts-") as tmp:
        for bname in args.bench:
            bench = BENCHES[bname](Path(args.cache))
            if bench is None:
                log(f"{bname}: not available here, skipped")
                continue
            ts = training_set(bench, cfg)
            runs = []
            for split_seed in args.split_seeds:
                held = typical_positions(ts, cfg) if split_seed == TYPICAL else None
                with split_from(split_seed, held):
                    for seed in args.seeds:
                        figures = run_once(bench, cfg, seed, Path(tmp) / f"split{split_seed}", keep=False)
                        log(f"{bname} split {split_seed} seed {seed}: " + ", ".join(
                            f"{k} {100 * figures[k]:.1f}" for k in SHOWN if figures.get(k) is not None))
                        runs.append({**figures, "split_seed": split_seed, "seed": seed})
            report[bname] = runs
            print_report(bname, name, ts, cfg, runs)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
