"""Would averaging heads trained with different seeds help? Scores one benchmark of
tools/bench_accuracy.py with each trained run of a config and with the average of the fused logits of
every subset of K of them, and prints frame AUC and AUC inside anomalous videos (mean ± sd over runs,
then over subsets).

A diagnostic of trained runs (bench_accuracy's layout: RUNS/CONFIG/BENCH-SEED), not a way to choose
anything: it reads test labels. Frames follow each run's own ``model.frame_scores`` unless
``--frame-scores`` says otherwise.

    python tools/probe_ensemble.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --k 3
    python tools/probe_ensemble.py RUNS/default --bench demo --k 3 --frame-scores linear
"""
from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

import bench_accuracy
from bench_accuracy import BENCHES


def logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


def figures(logit_scores: Dict[str, np.ndarray], test, gts, frame_mode: str) -> Tuple[float, float]:
    """(frame AUC, AUC inside anomalous videos) in percent, from snippet logits made scores again (so one
    head's figures are bench_accuracy's: frames interpolate scores, not logits)."""
    from vadpipe.evaluate import evaluate_scores

    scores = {vid: 1.0 / (1.0 + np.exp(-x)) for vid, x in logit_scores.items()}
    res = evaluate_scores(scores, gts, snippet_len=test.snippet_len, stride=test.stride,
                          frames={v.id: v.frames for v in test.videos}, on_mismatch="skip", frame_mode=frame_mode)
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
    parser.add_argument("--cache", default=os.environ.get("VADPIPE_BENCH_CACHE",
                                                          str(Path.home() / ".cache" / "vadpipe" / "bench")))
    parser.add_argument("--ped1-short-side", type=int, default=bench_accuracy.PED1_SHORT_SIDE)
    parser.add_argument("--demo-short-side", type=int, default=bench_accuracy.DEMO_SHORT_SIDE)
    return parser


def open_bench(args):
    """(bench, test feature set, ground truth) of the parsed arguments."""
    from vadpipe.data import open_features
    from vadpipe.groundtruth import load_ground_truth

    bench_accuracy.PED1_SHORT_SIDE, bench_accuracy.DEMO_SHORT_SIDE = args.ped1_short_side, args.demo_short_side
    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    return bench, open_features(bench.test, list_anomalous="none"), load_ground_truth(bench.gt)


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--k", type=int, default=3, help="heads per ensemble")
    parser.add_argument("--frame-scores", choices=["hold", "linear"], default=None,
                        help="snippet-to-frame mapping (default: the runs' own)")
    args = parser.parse_args()
    if not 1 < args.k <= len(args.seeds):
        raise SystemExit(f"--k {args.k}: needs 2..{len(args.seeds)} (the number of --seeds)")

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule

    _, test, gts = open_bench(args)
    fused, modes = {}, set()
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        modes.add(scoring_rule(model).frame_scores)
        fused[seed] = {v.id: logits(score_features(model, v.raw(), "cpu")) for v in test.videos}
    if args.frame_scores is None and len(modes) > 1:
        raise SystemExit(f"the runs score frames differently ({', '.join(sorted(modes))}): pass --frame-scores")
    mode = args.frame_scores or modes.pop()
    single = [figures(fused[s], test, gts, mode) for s in args.seeds]
    averaged = [figures({vid: np.mean([fused[s][vid] for s in subset], axis=0) for vid in fused[subset[0]]},
                        test, gts, mode)
                for subset in itertools.combinations(args.seeds, args.k)]
    print(f"{args.runs} on {args.bench}, {mode} frames, percent")
    print(f"  {'one head':<18}{summary(single)}")
    print(f"  {f'{args.k} heads averaged':<18}{summary(averaged)}")


if __name__ == "__main__":
    main()
