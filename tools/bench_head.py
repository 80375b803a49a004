#!/usr/bin/env python
"""Seconds and peak memory of scoring one long video with a trained head's shape (features in, snippet scores out).

    python tools/bench_head.py                                        # default and paper, 128 to 4,000 segments
    python tools/bench_head.py --segments 1000 8000 --config default=default \
        --config "whole=default+model.horizon=0+model.horizon_cap=0+model.horizon_share=0"
    python tools/bench_head.py --dim 2048 --crops 10 --segments 500   # I3D ResNet-50, ten crops

Each (config, length) runs in a fresh process: a seeded random head of the config's shape
(speed does not depend on the weights) scores one video of T random snippet features exactly as
`vadpipe score` and `vadpipe eval` do (`vadpipe.checkpoint.score_features`: every crop as a
sample, crops grouped so the attention matrices stay bounded, the scoring rule applied; the
normal statistics and pseudo-label stage, linear in T, are left out). It prints the median wall
and CPU seconds over --iters calls after one warm-up, and the process's peak resident memory, the
head included. The whole-video attention costs T x T per head, so this is the figure that says
how long a video can be scored in one piece before `vadpipe score --window N` is needed.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(spec: str, segments: int, args) -> dict:
    import numpy as np
    import torch

    from bench_accuracy import parse_config
    from vadpipe.checkpoint import build_model, score_features

    torch.set_num_threads(args.threads)
    _, cfg = parse_config(spec)
    cfg.model.feature_dim = args.dim
    torch.manual_seed(0)
    model = build_model(cfg.model)
    feats = np.random.default_rng(0).random((segments, args.crops, args.dim), dtype=np.float32)
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    wall, cpu = [], []
    for i in range(1 + args.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        scores = score_features(model, feats)
        if i:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    if scores.shape != (segments,) or not np.isfinite(scores).all():
        raise SystemExit(f"{spec}: {segments} segments gave scores of shape {scores.shape}")
    return {"s": statistics.median(wall), "cpu_s": statistics.median(cpu), "rss_setup_gb": rss_setup,
            "rss_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", default=None,
                    help="NAME=BASE[+SECTION.FIELD=VALUE...] as in bench_accuracy.py (repeatable; "
                         "default: default and paper)")
    ap.add_argument("--segments", nargs="+", type=int, default=[128, 1000, 4000])
    ap.add_argument("--dim", type=int, default=1024, help="feature size (1024: Inception I3D; 2048: I3D R50)")
    ap.add_argument("--crops", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3, help="timed calls after one warm-up")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.config[0], args.segments[0], args)))    # the parent passes one of each
        return 0
    configs = args.config or ["default=default", "paper=paper"]
    from bench_accuracy import parse_config
    from vadpipe.errors import VadpipeError
    for spec in configs:    # a bad config is one line before any process starts
        try:
            parse_config(spec)
        except (VadpipeError, OSError) as exc:
            sys.exit(f"bench_head: config {spec!r}: {exc}")
    print(f"one video of T segments x {args.crops} crop(s) x {args.dim}; {args.threads} thread(s); "
          f"median of {args.iters} after 1 warm-up; a fresh process per row")
    print(f"{'config':<14}{'T':>7}{'s':>9}{'CPU s':>9}{'RSS setup GB':>14}{'RSS peak GB':>13}")
    failed = 0
    for spec in configs:
        for t in args.segments:
            cmd = [sys.executable, __file__, "--worker", f"--config={spec}", f"--segments={t}",
                   f"--dim={args.dim}", f"--crops={args.crops}", f"--threads={args.threads}", f"--iters={args.iters}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            name = spec.partition("=")[0]
            if proc.returncode:
                failed += 1
                last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
                print(f"{name:<14}{t:>7}  failed: {last}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name:<14}{t:>7}{r['s']:>9.3f}{r['cpu_s']:>9.3f}"
                  f"{r['rss_setup_gb']:>14.2f}{r['rss_peak_gb']:>13.2f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
