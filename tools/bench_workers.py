"""Seconds per clip through the backbone: one pass at a time with every thread, or several passes at once
with the threads split between them (`vadpipe watch --workers`, vadpipe/backbone_pool.py).

    python tools/bench_workers.py                         # compiled i3d-inception, 2 threads: 1 and 2 workers
    python tools/bench_workers.py --compile off --clips 8

Each setting runs in its own process (the compiled kernels are generated for the per-worker thread
count), on one 16x224x224 clip repeated, after a warm-up pass, with the packaged Kinetics-400 weights.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = None          # the packaged Kinetics weights (a forward pass is as fast with any weights)


def measure(workers: int, threads: int, clips: int, compiled: bool) -> None:
    import torch

    from vadpipe.backbone_pool import BackbonePool, split_threads
    from vadpipe.device import torch_threads
    from vadpipe.extractors import create_backbone
    from vadpipe.extractors.inference import CompiledForward

    each = split_threads(threads, workers)
    with torch_threads(each), torch.inference_mode():
        module = create_backbone("i3d-inception", weights=WEIGHTS, device="cpu").module
        forward = CompiledForward(module, print) if compiled else module
        clip = torch.randn(1, 3, 16, 224, 224)
        started = time.perf_counter()
        forward(clip)
        warm = time.perf_counter() - started

        def run(_: int):
            with torch.inference_mode():
                return forward(clip)

        pool = BackbonePool(run, workers, each)
        started = time.perf_counter()
        for index in range(clips):
            if pool.full:
                pool.ready(wait=True)
            pool.submit(index)
        while pool.busy:
            pool.ready(wait=True)
        elapsed = time.perf_counter() - started
        pool.close()
    print(f"{workers} worker(s) x {each} thread(s), {'compiled' if compiled else 'eager'}: "
          f"{elapsed / clips:.3f} s per clip, {pool.busy_s / pool.handed:.3f} s each on its own "
          f"({clips} clips; first pass {warm:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--compile", choices=["on", "off"], default="on")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)   # a child process's setting
    args = parser.parse_args()
    if args.one is not None:
        measure(args.one, args.threads, args.clips, args.compile == "on")
        return
    for workers in args.workers:
        subprocess.run([sys.executable, __file__, "--one", str(workers), "--threads", str(args.threads),
                        "--clips", str(args.clips), "--compile", args.compile], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})


if __name__ == "__main__":
    main()
