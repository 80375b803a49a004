"""Backbone throughput: snippets/s per backbone, batch size and precision, printed as a table.

    python tools/bench_backbones.py                      # CPU: fp32 (+ bf16 where native), batch 1/4/16
    python tools/bench_backbones.py --device cuda        # GPU: fp32 and bf16 autocast
    python tools/bench_backbones.py --batches 1 4 --iters 3 --threads 2

A snippet is one crop of 16 frames at 224x224 (so a ten-crop snippet costs 10).
Weights are random: speed does not depend on their values. The default run is
short (one warm-up and one timed batch per cell); raise --iters for steadier figures.
"""
from __future__ import annotations

import argparse
import time

import torch

import vadpipe.extractors as ve
from vadpipe.device import cpu_has_native_bf16, resolve_device


def default_dtypes(device: torch.device) -> list:
    if device.type == "cuda" or cpu_has_native_bf16():
        return ["float32", "bfloat16"]
    return ["float32"]


def time_cell(module, batch: int, frames: int, size: int, device: torch.device, dtype: str,
              warmup: int, iters: int) -> tuple:
    """(wall, CPU) seconds per batch, medians over ``iters`` timed runs. CPU time (all threads of
    this process) is the steadier figure on a machine shared with other jobs."""
    clips = torch.randn(batch, 3, frames, size, size)
    for _ in range(warmup):
        ve.embed(module, clips, device, dtype)
    walls, cpus = [], []
    for _ in range(iters):
        wall, cpu = time.perf_counter(), time.process_time()
        ve.embed(module, clips, device, dtype)  # returns on the CPU, so CUDA work is finished
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["i3d-r50", "i3d-inception"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--dtypes", nargs="+", default=None, help="default: float32 (+ bfloat16 where it is native)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtypes = args.dtypes or default_dtypes(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}"
    print(f"# {where}; clips {args.frames}x{args.size}x{args.size}; torch {torch.__version__}")
    header = (f"{'backbone':<14} {'dtype':<9} {'batch':>5} {'s/batch':>8} {'snippets/s':>11} "
              f"{'cpu-s/batch':>12} {'snippets/cpu-s':>15}")
    print(header)
    print("-" * len(header))
    for name in args.backbones:
        module = ve.create_backbone(name, weights="random", device=device).module
        for dtype in dtypes:
            for batch in args.batches:
                wall, cpu = time_cell(module, batch, args.frames, args.size, device, dtype, args.warmup, args.iters)
                print(f"{name:<14} {dtype:<9} {batch:>5} {wall:>8.3f} {batch / wall:>11.2f} "
                      f"{cpu:>12.3f} {batch / cpu:>15.2f}", flush=True)
        del module
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
