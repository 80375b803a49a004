"""How should `auto` pool the calibration videos? For each trained run of a config (bench_accuracy's layout,
RUNS/CONFIG/BENCH-SEED) the run's own calibration is made again, as training made it (the split drawn
from the run's config and seed, each video scored as training scored it: out of bag for a bagged
ensemble), and the 0.99 threshold of each pooling (vadpipe.calibration.POOLINGS) is measured on the
benchmark's test videos:

- frames: the quantile of all calibration frames together (one unusual clip can hold the whole tail);
- clips: the median over calibration clips of each clip's own quantile (what a typical clip meets).

Printed per run and as mean ± sd, in percent: false alarms (normal test frames at or above) and hits
(event frames at or above), with the largest false-alarm rate over runs. The run's stored threshold is
checked against the one made again (they differ only if the features or the code changed since).

A diagnostic of trained runs: it reads which test videos are normal and their events, to measure, never
to set a threshold (each threshold comes from training videos only).

    python tools/bench_accuracy.py --bench ped1 --config default=default --runs RUNS
    python tools/probe_pooling.py RUNS/default --bench ped1
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from bench_accuracy import events_and_normals, mean_sd, test_frame_level
from probe_ensemble import open_bench, run_set_parser

QUANTILE = "0.99"


def recalibrate(model, cfg, train) -> dict:
    """The run's calibration made again from its config (split, validation set and scoring as training
    made them), both poolings' tables in it."""
    from vadpipe.calibration import calibrate_split, crossfit_seed_of
    from vadpipe.run_split import draw_split
    from vadpipe.validation import open_validation

    quiet = lambda line: None  # noqa: E731
    split = draw_split(cfg.train, cfg.model, train, quiet)
    val_set, val_gt = open_validation(cfg.train, train, split.held_idx, quiet)
    return calibrate_split(model, train, split, val_set, val_gt, [float(QUANTILE)], cfg.model.frame_scores, "cpu",
                           crossfit_seed=crossfit_seed_of(cfg.model, cfg.train))


def at(threshold: float, normals: np.ndarray, events: np.ndarray) -> Tuple[float, float]:
    return float(np.mean(normals >= threshold)), float(np.mean(events >= threshold))


def main() -> None:
    args = run_set_parser(__doc__).parse_args()
    from vadpipe.calibration import POOLINGS
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.config import load_config
    from vadpipe.data import open_features
    from vadpipe.threshold import pooling_of

    bench, test, gts = open_bench(args)
    train = open_features(bench.train)
    print(f"{args.runs} on {args.bench}: the {QUANTILE} threshold of each pooling of the run's calibration videos; "
          f"percent of normal test frames (FA) and event frames (hit) at or above it")
    rows: Dict[str, List[Tuple[float, float]]] = {p: [] for p in POOLINGS}
    for seed in args.seeds:
        run = args.runs / f"{args.bench}-{seed}"
        model, ckpt = load_checkpoint(checkpoint_path(run), "cpu")
        record = recalibrate(model, load_config(run / "config.yaml"), train)
        stored = ckpt.calibration["normal_frame_score_quantiles"][QUANTILE]
        again = record["pooled"][pooling_of(ckpt.calibration)][QUANTILE]
        same = np.isclose(stored, again, rtol=1e-5, atol=1e-7)
        check = "" if same else f" (stored {stored:.4g}, made again {again:.4g})"
        events, normals = (np.concatenate(part) for part in events_and_normals(test_frame_level(model, test, gts)))
        parts = []
        for pooling in POOLINGS:
            threshold = record["pooled"][pooling][QUANTILE]
            rows[pooling].append(at(threshold, normals, events))
            fa, hit = rows[pooling][-1]
            parts.append(f"{pooling} {threshold:.4f} FA {100 * fa:4.1f} hit {100 * hit:4.1f}")
        print(f"seed {seed} ({record['n_videos']} calibration videos{check}): " + " | ".join(parts))
    for pooling, figures in rows.items():
        fa, hit = zip(*figures)
        print(f"{pooling}: FA {mean_sd(list(fa))} (largest {100 * max(fa):.1f}), hit {mean_sd(list(hit))}")


if __name__ == "__main__":
    main()
