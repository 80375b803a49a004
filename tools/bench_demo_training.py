#!/usr/bin/env python
"""Train the demo's heads on an existing demo folder over several seeds, with config overrides.

The figures behind the README's "How the demo got here": how stable a training
setting is across seeds, and what a change (learning rate, held-out share,
ablation, loss weight) does to frame AUC, per-type AUC and the AUC inside
anomalous clips. Starts from ``--preset demo`` exactly as ``vadpipe demo``
trains, trains on DEMO/features/train and evaluates on DEMO/features/test
against DEMO/world/test_gt.json; the untrained feature-norm row is the baseline.

    python tools/bench_demo_training.py demo                                  # the demo's own setting
    python tools/bench_demo_training.py demo --set train.lr=1e-3              # the article's §4.2 lr
    python tools/bench_demo_training.py demo --set train.val_fraction=0.2 --set train.holdout=normal
    python tools/bench_demo_training.py demo --models ltgs --seeds 0 --set model.use_lt=false
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="a `vadpipe demo` output folder (features/ and world/)")
    parser.add_argument("--models", default=None, help="comma-separated heads [default: every registered head]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    args = parser.parse_args()

    import torch

    from vadpipe.config import head_names

    from vadpipe.presets import apply_overrides, preset, use_model
    from vadpipe.data import open_features
    from vadpipe.demo import format_comparison, norm_scores
    from vadpipe.evaluate import evaluate_feature_scores, evaluate_run
    from vadpipe.groundtruth import load_ground_truth
    from vadpipe.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    features, gt = args.demo / "features", args.demo / "world" / "test_gt.json"
    test_set = open_features(features / "test", list_anomalous="none")
    baseline = evaluate_feature_scores(norm_scores(test_set), test_set, load_ground_truth(gt)).metrics
    print("overrides: " + (", ".join(args.sets) or "none (the demo preset)"))
    aucs: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="vadpipe-bench-") as tmp:
        for seed in args.seeds:
            metrics: Dict[str, Any] = {}
            for name in args.models.split(",") if args.models else head_names():
                cfg = apply_overrides(use_model(preset("demo"), name), args.sets)
                cfg.train.features, cfg.train.seed, cfg.train.device = str(features / "train"), seed, "cpu"
                cfg.train.eval_every = max(10, cfg.train.iterations // 4)   # as vadpipe demo does
                run = train(cfg, out=Path(tmp) / f"{name}-{seed}", progress=False, log=lambda m: None).run_dir
                metrics[name] = evaluate_run(run, features / "test", gt, device="cpu", progress=False)[0].metrics
                aucs.setdefault(name, []).append(metrics[name]["auc"])
            metrics["feature-norm (untrained)"] = baseline
            print(f"\nseed {seed}\n" + format_comparison(metrics), flush=True)
    print("\nframe AUC over seeds " + " ".join(map(str, args.seeds)) + ":")
    for name, values in aucs.items():
        v = 100 * np.array(values)
        print(f"  {name:<6} mean {v.mean():.1f}  min {v.min():.1f}  max {v.max():.1f}")
    print(f"  feature norm {100 * baseline['auc']:.1f}")


if __name__ == "__main__":
    main()
