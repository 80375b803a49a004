#!/usr/bin/env python
"""Seconds per training iteration of LTGS and the baselines at UCF-Crime size, plus peak memory.

Batch as in the article: 32 anomalous + 32 normal videos, 32 segments, D = 2048,
10 crops each its own sample (640 sequences of 32 x 2048). Random features;
the step is vadpipe.train_step.train_step (forward, all loss terms of the model's
preset, backward, Adam) — the same code the trainer runs. Each model runs in
its own subprocess so its peak resident memory is its own.

    python tools/bench_train.py                       # all models, 1 warm-up + 3 timed iterations
    python tools/bench_train.py --iters 2 --threads 2 --models ltgs,rtfm
    python tools/bench_train.py --device cuda         # GPU (peak CUDA memory reported too)
    python tools/bench_train.py --preset default --models ltgs --dim 128 --crops 1 --videos 16 \
        --segments 256 --threads 1 --set model.attn_dropout=0    # the generated-features shape, a switch
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(args) -> dict:
    import torch

    from vadpipe.checkpoint import build_model
    from vadpipe.presets import apply_overrides, preset, use_model
    from vadpipe.device import resolve_device
    from vadpipe.train_step import train_step

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = apply_overrides(use_model(preset(args.preset), args.model), args.set or [])
    for name in args.ablation or []:
        from vadpipe.presets import apply_ablations
        cfg = apply_ablations(cfg, [name])
    cfg.model.feature_dim = args.dim
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    rows = args.videos * args.crops
    x = torch.rand(2 * rows, args.segments, args.dim, device=device)
    targets = torch.cat([torch.ones(rows, args.segments), torch.zeros(rows, args.segments)]).to(device)
    use_amp = device.type == "cuda" and not args.fp32
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    times, cpu = [], []
    for i in range(args.warmup + args.iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, opt, x, targets, rows, cfg.train.loss, use_amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    out = {"model": args.model + ("+" + "+".join(args.ablation) if args.ablation else ""),
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "s_per_iter": statistics.median(times), "s_min": min(times), "s_max": max(times),
           "cpu_s_per_iter": statistics.median(cpu),
           "rss_setup_gb": rss_setup, "rss_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        out["cuda_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated heads [default: every registered head]")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per model")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--videos", type=int, default=32, help="videos per class in a batch")
    ap.add_argument("--segments", type=int, default=32)
    ap.add_argument("--preset", default="ucf-crime", help="config preset of every row (losses, switches)")
    ap.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                    help="config override for every row (repeatable), as vadpipe train --set")
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--ablation", action="append", help="extra ablation for the LTGS rows (repeatable)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    passthrough = [f"--iters={args.iters}", f"--warmup={args.warmup}", f"--threads={args.threads}",
                   f"--device={args.device}", f"--dim={args.dim}", f"--crops={args.crops}",
                   f"--videos={args.videos}", f"--segments={args.segments}", f"--preset={args.preset}"]
    passthrough += [f"--set={a}" for a in args.set or []] + (["--fp32"] if args.fp32 else [])
    results = []
    from vadpipe.config import head_names

    for model in args.models.split(",") if args.models else head_names():
        extra = [f"--ablation={a}" for a in (args.ablation or [])] if model == "ltgs" else []
        proc = subprocess.run([sys.executable, __file__, "--worker", f"--model={model}", *passthrough, *extra],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{model} failed:\n{proc.stderr}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done {model}", file=sys.stderr)
    # On a shared machine wall time swings with other load; CPU seconds (all threads) track the work,
    # so the ratio to RTFM is taken on CPU time for CPU runs and on wall time on a GPU.
    key = "s_per_iter" if results[0]["device"].startswith("cuda") else "cpu_s_per_iter"
    base = next((r[key] for r in results if r["model"] == "rtfm"), None)
    settings = " ".join([f"preset {args.preset}"] + (args.set or []))
    print(f"{settings}; batch {args.videos}+{args.videos} videos x {args.crops} crops = {2 * args.videos * args.crops} "
          f"sequences of {args.segments} x {args.dim}; device {results[0]['device']}, "
          f"{results[0]['threads']} threads; median of {args.iters} after {args.warmup} warm-up")
    header = (f"{'model':<16}{'params M':>9}{'s/iter':>9}{'min':>8}{'max':>8}{'CPU s/it':>10}{'x RTFM':>8}"
              f"{'RSS setup GB':>14}{'RSS peak GB':>13}")
    if "cuda_peak_gb" in results[0]:
        header += f"{'CUDA peak GB':>14}"
    print(header)
    for r in results:
        ratio = f"{r[key] / base:.2f}" if base else "-"
        line = (f"{r['model']:<16}{r['params_m']:>9.1f}{r['s_per_iter']:>9.2f}{r['s_min']:>8.2f}{r['s_max']:>8.2f}"
                f"{r['cpu_s_per_iter']:>10.2f}{ratio:>8}{r['rss_setup_gb']:>14.2f}{r['rss_peak_gb']:>13.2f}")
        if "cuda_peak_gb" in r:
            line += f"{r['cuda_peak_gb']:>14.2f}"
        print(line)


if __name__ == "__main__":
    main()
