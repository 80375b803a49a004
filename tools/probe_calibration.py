"""How many normal videos does the `auto` threshold need? For each trained run of a config (bench_accuracy's
layout: RUNS/CONFIG/BENCH-SEED), the head scores every normal video it never trained on: the run's
held-out normal training videos and the benchmark's normal test videos. Then, many times for each size
n, n of them calibrate the threshold as training does (a quantile of their frame scores, 0.99 for
``auto``) and the others measure its false alarms (share of their frames at or above it).

Printed per n: mean false alarms over draws and seeds, the 90th and 99th percentile (how bad an unlucky
draw of n videos is) and the share of draws above 5 %. A diagnostic for the size of the held-out share
(``train.val_fraction``, ``train.val_max``), not a way to choose a model: no test label of an anomalous
video is read, only which test videos are normal.

    python tools/bench_accuracy.py --bench ped1 --config default=default --runs RUNS
    python tools/probe_calibration.py RUNS/default --bench ped1 --sizes 3 5 10 15 20
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from normal_weight_sweep import training_split
from probe_ensemble import open_bench, run_set_parser


def frame_scores(model, videos, snippet_len: int, stride: int) -> List[np.ndarray]:
    """Each video's frame scores, as calibration makes them (the head's own snippet-to-frame rule)."""
    from vadpipe.calibration import calibration_frames
    from vadpipe.checkpoint import score_features, scoring_rule

    mode = scoring_rule(model).frame_scores
    return [calibration_frames(score_features(model, v.raw(), "cpu"), v.frames, snippet_len, stride, mode)
            for v in videos]


def normal_frame_scores(run, bench, test, gts) -> List[np.ndarray]:
    """Frame scores of every normal video the run's head never trained on (held-out and test)."""
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.groundtruth import match_ids

    model, _ = load_checkpoint(checkpoint_path(run), "cpu")
    mapping = match_ids([v.id for v in test.videos], list(gts))
    videos = ([v for v in training_split(run, bench, "val") if v.label == 0]
              + [v for v in test.videos if v.id in mapping and not gts[mapping[v.id]].anomalous])
    return frame_scores(model, videos, test.snippet_len, test.stride)


def false_alarms(frames: List[np.ndarray], n: int, draws: int, quantile: float, seed: int) -> np.ndarray:
    """False-alarm shares of ``draws`` thresholds, each the ``quantile`` of ``n`` random videos' frame
    scores, measured on the other videos' frames."""
    rng = np.random.default_rng([seed, n])
    out = np.empty(draws)
    for d in range(draws):
        pick = rng.permutation(len(frames))
        threshold = np.quantile(np.concatenate([frames[i] for i in pick[:n]]), quantile)
        rest = np.concatenate([frames[i] for i in pick[n:]])
        out[d] = np.mean(rest >= threshold)
    return out


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 10, 15, 20])
    parser.add_argument("--draws", type=int, default=200, help="random calibration sets per size and run")
    parser.add_argument("--quantile", type=float, default=0.99, help="the threshold's quantile (auto: 0.99)")
    args = parser.parse_args()
    bench, test, gts = open_bench(args)
    per_size: Dict[int, List[np.ndarray]] = {n: [] for n in args.sizes}
    pools = []
    for seed in args.seeds:
        frames = normal_frame_scores(args.runs / f"{args.bench}-{seed}", bench, test, gts)
        pools.append(len(frames))
        for n in args.sizes:
            if n < len(frames):
                per_size[n].append(false_alarms(frames, n, args.draws, args.quantile, seed))
    print(f"{args.runs} on {args.bench}: threshold = the {args.quantile:g} quantile of n normal videos' frames, "
          f"false alarms on the other normal videos ({'/'.join(map(str, pools))} in the pool; {args.draws} draws "
          f"a run), percent")
    print(f"{'n':>4} | {'mean':>6} | {'p90':>6} | {'p99':>6} | {'> 5 %':>6}")
    for n, rows in per_size.items():
        if not rows:
            print(f"{n:>4} | more videos than the pool holds")
            continue
        fa = 100 * np.concatenate(rows)
        print(f"{n:>4} | {fa.mean():6.2f} | {np.percentile(fa, 90):6.2f} | {np.percentile(fa, 99):6.2f} | "
              f"{100 * np.mean(fa > 5):6.1f}")


if __name__ == "__main__":
    main()
