"""How much does the normal-statistics term help a trained run? Re-scores one run's checkpoint on a
benchmark of tools/bench_accuracy.py with the term's weight changed (0 = the head alone).

A diagnostic of one trained head, not a way to choose the weight: it reads test labels. The
false-alarm column is left out because the run's threshold was calibrated for its own weight.

    python tools/normal_weight_sweep.py RUN --bench features --weights 0.5 0.25 0
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench_accuracy import BENCHES, evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder or checkpoint trained on the benchmark's features")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.25, 0.0])
    parser.add_argument("--cache", default=os.environ.get("VADPIPE_BENCH_CACHE",
                                                          str(Path.home() / ".cache" / "vadpipe" / "bench")))
    args = parser.parse_args()

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    model, ckpt = load_checkpoint(checkpoint_path(args.run), "cpu")
    if getattr(model, "normal_stats", None) is None or not model.normal_stats.fitted:
        raise SystemExit(f"{args.run}: this head has no fitted normal statistics (model.normal_weight 0)")
    trained = model.normal_stats.weight
    print(f"{args.run} on {args.bench}: trained with normal_weight {trained:g}; percent")
    for weight in args.weights:
        model.normal_stats.weight = weight
        figures = evaluate_model(bench, model, ckpt)
        shown = {k.replace("group_", ""): v for k, v in figures.items() if k != "false_alarm_auto" and v is not None}
        print(f"  weight {weight:<5g} " + ", ".join(f"{k} {100 * v:.1f}" for k, v in shown.items()))


if __name__ == "__main__":
    main()
