"""Where a config's spread over seeds comes from: the held-out normal videos the seed draws, or everything
else it draws (initial weights, batches, crops, the fitted terms' folds). Each run draws its held-out share
with a *split seed* and the rest with its own seed (the split is patched in here, so the product keeps no
such switch); one-head configs only (members draw a share each).

Printed per benchmark: a row per split seed (mean ± sd over the seeds, percent; the held-out videos), and
each metric's spread between split seeds (the sd of each split's mean over the seeds) and within a split
(the pooled sd over its seeds). A spread mostly between splits says the runs differ by which normal videos
train the head and set its threshold; mostly within, by the training's own draws.

    python tools/probe_seed_parts.py --bench ped1 --config default=default --split-seeds 0 1 2 3 4 \\
        --seeds 0 1 2 --threads 1 [--json F]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from bench_accuracy import BENCHES, Bench, log, mean_sd, parse_config, run_once
from compare_bench import spread

SHOWN = ("auc", "ap", "auc_anomalous_videos", "false_alarm_auto", "hit_auto")
HEADERS = ("frame AUC", "AP", "inside", "FA@auto", "hit@auto")


@contextmanager
def split_from(split_seed: int) -> Iterator[None]:
    """Within the block a run's held-out share is drawn with ``split_seed`` whatever its own seed."""
    from vadpipe import run_split

    plain = run_split.share_split
    run_split.share_split = lambda t, labels, _seed: plain(t, labels, split_seed)
    try:
        yield
    finally:
        run_split.share_split = plain


def held_out_ids(bench: Bench, cfg, split_seed: int) -> List[str]:
    """The videos a run of ``cfg`` holds out of ``bench``'s training set with ``split_seed``."""
    from vadpipe.data import open_features
    from vadpipe.run_split import share_split

    data = open_features(bench.train, cfg.train.list_anomalous)
    labels = data.labels()
    labelled = np.flatnonzero(labels >= 0)
    return [data.videos[i].id for i in labelled[share_split(cfg.train, labels[labelled], split_seed)[1]]]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", nargs="+", default=["ped1"], choices=list(BENCHES))
    ap.add_argument("--config", default="default=default", help="NAME=BASE[+SECTION.FIELD=VALUE...], one head")
    ap.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "vadpipe" / "bench"))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", help="also write every run's figures here (split_seed and seed recorded)")
    args = ap.parse_args(argv)
    name, cfg = parse_config(args.config)
    if cfg.model.bagging or cfg.model.partner:
        ap.error(f"--config {name}: one head only (members and pairs draw their own held-out shares)")
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
            runs = []
            for split_seed in args.split_seeds:
                with split_from(split_seed):
                    for seed in args.seeds:
                        figures = run_once(bench, cfg, seed, Path(tmp) / f"split{split_seed}", keep=False)
                        log(f"{bname} split {split_seed} seed {seed}: " + ", ".join(
                            f"{k} {100 * figures[k]:.1f}" for k in SHOWN if figures.get(k) is not None))
                        runs.append({**figures, "split_seed": split_seed, "seed": seed})
            report[bname] = runs
            print(f"## {bname}, {name} (percent; mean ± sd over seeds {' '.join(map(str, args.seeds))})")
            print(" | ".join(("split seed",) + HEADERS + ("held out",)))
            for split_seed in args.split_seeds:
                mine = [r for r in runs if r["split_seed"] == split_seed]
                cells = [mean_sd([r.get(k) for r in mine]) for k in SHOWN]
                print(" | ".join([str(split_seed)] + cells + [" ".join(held_out_ids(bench, cfg, split_seed))]))
            # compare_bench.spread groups by "seed" (here the split) and "draw" (here the seed)
            keyed = [{**r, "seed": r["split_seed"], "draw": r["seed"]} for r in runs]
            for k, head in zip(SHOWN, HEADERS):
                s = spread(keyed, k)
                if s is not None:
                    within = f"{s.within:.1f}" if s.within is not None else "n/a"
                    print(f"{head:<10} {s.mean:5.1f} ± {s.sd:4.1f} over {s.runs} runs: between split seeds ± "
                          f"{s.between:.1f}, within a split ± {within}")
            print()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
