"""Would averaging heads trained with different seeds help? Scores one benchmark of
tools/bench_accuracy.py with each trained run of a config and with the average of the fused logits of
every subset of K of them, and prints frame AUC and AUC inside anomalous videos (mean ± sd over runs,
then over subsets).

A diagnostic of trained runs (bench_accuracy's layout: RUNS/CONFIG/BENCH-SEED), not a way to choose
anything: it reads test labels. Frames follow each run's own ``model.frame_scores`` unless
``--frame-scores`` says otherwise.

    python tools/probe_ensemble.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --k 3
    python tools/probe_ensemble.py RUNS/default --bench demo --k 3 --frame-scores linear
    python tools/probe_ensemble.py RUNS/default --bench ped1 --mix RUNS/h3    (two configs, seed by seed)

``--mix RUNS/OTHER`` averages instead each seed's run with the same seed's run of another config (heads
that differ in kind, e.g. a local temporal window beside the whole-video one). ``--standardise`` first puts
each run's logits on one scale, by their mean and sd over the run's own training videos' snippets (no test
figure), so that a head whose logits are larger (RTFM-style's) does not decide alone:

    python tools/probe_ensemble.py RUNS/default --bench ped1 --mix RUNS/rtfm --frame-scores linear --standardise

``--calibrated`` puts each run's logits on its own calibration instead (minus the logit of its 0.99 threshold,
over the gap to its 0.95 one: 0 is where that run's ``auto`` flags), and ``--fuse max`` keeps the larger of
the heads' values (a frame either head flags) instead of their mean.
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

import bench_accuracy
from bench_accuracy import BENCHES
from vadpipe.plot import logit as logits

# --fuse: how the heads' values combine, the name of a fused row, the header's note
FUSIONS = {"mean": (np.mean, "averaged", ""), "max": (np.max, "max", ", fused by the max")}


def figures(logit_scores: Dict[str, np.ndarray], test, gts, frame_mode: str) -> Tuple[float, float]:
    """(frame AUC, AUC inside anomalous videos) in percent, from snippet logits made scores again (so one
    head's figures are bench_accuracy's: frames interpolate scores, not logits)."""
    from vadpipe.evaluate import evaluate_feature_scores

    scores = {vid: 1.0 / (1.0 + np.exp(-x)) for vid, x in logit_scores.items()}
    res = evaluate_feature_scores(scores, test, gts, on_mismatch="skip", frame_mode=frame_mode)
    return 100 * res.metrics["auc"], 100 * res.metrics["auc_anomalous_videos"]


def summary(rows: List[Tuple[float, float]]) -> str:
    m = np.mean(rows, axis=0)
    s = np.std(rows, axis=0, ddof=1) if len(rows) > 1 else np.zeros(2)
    return f"frame AUC {m[0]:.1f} ± {s[0]:.1f}, inside anomalous videos {m[1]:.1f} ± {s[1]:.1f} ({len(rows)})"


def run_set_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every probe of a config's trained runs takes (this one and probe_pseudo_labels)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a config's folder of runs, RUNS/CONFIG (holding BENCH-SEED runs)")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cache", default=bench_accuracy.default_cache())
    parser.add_argument("--ped1-short-side", type=int, default=bench_accuracy.PED1_SHORT_SIDE)
    parser.add_argument("--demo-short-side", type=int, default=bench_accuracy.DEMO_SHORT_SIDE)
    parser.add_argument("--stride", type=int, default=None,
                        help="the runs were trained on features of this snippet stride (bench_accuracy --stride)")
    parser.add_argument("--regions", default="", metavar="RxC",
                        help="the runs were trained on region-grid features (bench_accuracy --regions)")
    parser.add_argument("--light", default="", choices=bench_accuracy.light_modes(),
                        help="the runs were trained on light-normalised features (bench_accuracy --light)")
    parser.add_argument("--test-features", default=None, metavar="FEATURES",
                        help="the benchmark's test clips extracted elsewhere with the runs' recipe (the same "
                             "names, so its ground truth holds: e.g. relit by tools/relight_clips.py)")
    return parser


def open_bench(args):
    """(bench, test feature set, ground truth) of the parsed arguments."""
    from vadpipe.data import open_features
    from vadpipe.groundtruth import load_ground_truth

    bench_accuracy.PED1_SHORT_SIDE, bench_accuracy.DEMO_SHORT_SIDE = args.ped1_short_side, args.demo_short_side
    bench_accuracy.STRIDE, bench_accuracy.REGIONS, bench_accuracy.LIGHT = args.stride, args.regions, args.light
    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    if getattr(args, "test_features", None):
        bench = replace(bench, test=str(args.test_features))
    return bench, open_features(bench.test, list_anomalous="none"), load_ground_truth(bench.gt)


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--k", type=int, default=3, help="heads per ensemble")
    parser.add_argument("--mix", type=Path, default=None,
                        help="another config's runs: average each seed's pair of heads instead of K of one config")
    parser.add_argument("--frame-scores", choices=["hold", "linear"], default=None,
                        help="snippet-to-frame mapping (default: the runs' own)")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--standardise", action="store_true",
                       help="each run's logits minus their mean, over their sd, on its training videos' snippets")
    units.add_argument("--calibrated", action="store_true",
                       help="each run's logits minus the logit of its 0.99 threshold, over the gap to its 0.95 one")
    parser.add_argument("--fuse", choices=list(FUSIONS), default="mean", help="how the heads' values combine")
    args = parser.parse_args()
    if args.mix is None and not 1 < args.k <= len(args.seeds):
        raise SystemExit(f"--k {args.k}: needs 2..{len(args.seeds)} (the number of --seeds)")

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule

    from vadpipe.data import open_features

    bench, test, gts = open_bench(args)
    train = open_features(bench.train) if args.standardise else None
    modes = set()

    def fused_logits(config: Path) -> Dict[int, Dict[str, np.ndarray]]:
        out = {}
        for seed in args.seeds:
            model, ckpt = load_checkpoint(checkpoint_path(config / f"{args.bench}-{seed}"), "cpu")
            modes.add(scoring_rule(model).frame_scores)
            out[seed] = {v.id: logits(score_features(model, v.raw(), "cpu")) for v in test.videos}
            if args.calibrated:
                table = ckpt.calibration["normal_frame_score_quantiles"]
                high, low = (float(logits(np.array(table[q]))) for q in ("0.99", "0.95"))
                out[seed] = {vid: (x - high) / max(high - low, 1e-3) for vid, x in out[seed].items()}
            if train is not None:
                seen = np.concatenate([logits(score_features(model, v.raw(), "cpu")) for v in train.videos])
                mean, sd = seen.mean(), seen.std()
                out[seed] = {vid: (x - mean) / sd for vid, x in out[seed].items()}
        return out

    fused = fused_logits(args.runs)
    other = fused_logits(args.mix) if args.mix else None
    if args.frame_scores is None and len(modes) > 1:
        raise SystemExit(f"the runs score frames differently ({', '.join(sorted(modes))}): pass --frame-scores")
    mode = args.frame_scores or modes.pop()

    combine, joined, how = FUSIONS[args.fuse]

    def averaged(members: List[Dict[str, np.ndarray]]) -> Tuple[float, float]:
        return figures({vid: combine([m[vid] for m in members], axis=0) for vid in members[0]}, test, gts, mode)

    scale = (", logits standardised" if train is not None else ", logits calibrated" if args.calibrated else "")
    print(f"{args.runs} on {args.bench}, {mode} frames, percent{scale}{how}")
    print(f"  {'one head':<18}{summary([figures(fused[s], test, gts, mode) for s in args.seeds])}")
    if other is None:
        rows = [averaged([fused[s] for s in subset]) for subset in itertools.combinations(args.seeds, args.k)]
        print(f"  {f'{args.k} heads {joined}':<18}{summary(rows)}")
        return
    print(f"  {args.mix.name:<18}{summary([figures(other[s], test, gts, mode) for s in args.seeds])}")
    print(f"  {f'pair {joined}':<18}{summary([averaged([fused[s], other[s]]) for s in args.seeds])}")


if __name__ == "__main__":
    main()
