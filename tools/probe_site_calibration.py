"""Does calibrating on the camera's own normal footage (`vadpipe calibrate`) give an `auto` threshold that
holds where the training one does not? For each trained run of a config (bench_accuracy's layout:
RUNS/CONFIG/BENCH-SEED), the benchmark's normal test videos are cut into K folds (seeded by the run's
seed); each fold in turn is measured against the threshold that the other folds' frames calibrate, as
`vadpipe calibrate` stores it (vadpipe.calibration.quantile_record). Beside it, the run's own training
calibration (its held-out normal training videos).

Printed per run and as mean ± sd over runs, in percent: false alarms (share of the measured normal
frames at or above the threshold, pooled over folds) and hits (share of the anomalous test videos'
event frames at or above it, mean over folds). No anomalous test video's score sets a threshold; which
test videos are normal is the only label read to calibrate, as a user calibrating a camera knows which
of its clips are normal.

    python tools/bench_accuracy.py --bench ped1-swap --config default=default --runs RUNS
    python tools/probe_site_calibration.py RUNS/default --bench ped1-swap --folds 2
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from bench_accuracy import events_and_normals, mean_sd, test_frame_level
from probe_ensemble import open_bench, run_set_parser


def site_threshold(normals: Dict[str, np.ndarray], quantile: float, pooling: str = "frames") -> float:
    """The threshold `vadpipe calibrate --pooling POOLING` stores for these normal clips' frame scores."""
    from vadpipe.calibration import quantile_record
    from vadpipe.threshold import SITE_CALIBRATION

    record = quantile_record(normals, SITE_CALIBRATION, [quantile], pooling)
    return record["normal_frame_score_quantiles"][str(quantile)]


def folds_of(keys: List[str], k: int, seed: int) -> List[List[str]]:
    order = np.random.default_rng([seed, 7]).permutation(len(keys))
    return [[keys[i] for i in part] for part in np.array_split(order, k)]


def site_figures(frames, k: int, seed: int, quantile: float, pooling: str = "frames") -> Tuple[float, float, int]:
    """(false alarms pooled over the folds, mean hit over the folds, calibration clips per fold)."""
    normals = {key: f for key, (f, y) in frames.items() if not y.any()}
    events = np.concatenate(events_and_normals(frames)[0])
    above = total = 0
    hits, sizes = [], []
    for fold in folds_of(sorted(normals), k, seed):
        calibrating = {key: f for key, f in normals.items() if key not in fold}
        threshold = site_threshold(calibrating, quantile, pooling)
        measured = np.concatenate([normals[key] for key in fold])
        above, total = above + int(np.sum(measured >= threshold)), total + measured.size
        hits.append(float(np.mean(events >= threshold)))
        sizes.append(len(calibrating))
    return above / total, float(np.mean(hits)), min(sizes)


def training_figures(frames, ckpt, quantile: float) -> Tuple[float, float]:
    """(false alarms, hit) at the run's own calibrated threshold."""
    threshold = ckpt.calibration["normal_frame_score_quantiles"][str(quantile)]
    events, normals = events_and_normals(frames)
    return float(np.mean(np.concatenate(normals) >= threshold)), float(np.mean(np.concatenate(events) >= threshold))


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--folds", type=int, default=2, help="K: each fold measured, the others calibrate")
    parser.add_argument("--quantile", type=float, default=0.99, help="the threshold's quantile (auto: 0.99)")
    parser.add_argument("--pooling", choices=("frames", "clips"), default="frames",
                        help="how the site threshold pools the calibrating clips (vadpipe calibrate --pooling)")
    args = parser.parse_args()
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2 (a fold is never measured with its own threshold)")
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    bench, test, gts = open_bench(args)
    rows = []
    print(f"{args.runs} on {args.bench}: the {args.quantile:g} quantile as threshold (site: {args.pooling} pooled); "
          f"percent of normal frames "
          f"(false alarms) and of event frames (hit) at or above it")
    for seed in args.seeds:
        model, ckpt = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        frames = test_frame_level(model, test, gts)
        train_fa, train_hit = training_figures(frames, ckpt, args.quantile)
        site_fa, site_hit, n = site_figures(frames, args.folds, seed, args.quantile, args.pooling)
        rows.append((train_fa, train_hit, site_fa, site_hit))
        print(f"seed {seed}: training threshold FA {100 * train_fa:5.1f} hit {100 * train_hit:5.1f} | "
              f"site ({args.folds} folds, >= {n} clips calibrate) FA {100 * site_fa:5.1f} hit {100 * site_hit:5.1f}")
    cols = list(zip(*rows))
    print(f"mean ± sd over {len(rows)} runs: training threshold FA {mean_sd(cols[0])}, hit {mean_sd(cols[1])} | "
          f"site threshold FA {mean_sd(cols[2])}, hit {mean_sd(cols[3])}")


if __name__ == "__main__":
    main()
