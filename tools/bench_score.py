"""Benchmark `vadpipe score`: real-time factor and peak memory per backbone and crop count.

    python tools/bench_score.py                                  # i3d-inception, 1 crop, 60 s clip, 2 threads
    python tools/bench_score.py --backbones i3d-inception i3d-r50 --crops 1 10
    python tools/bench_score.py --seconds 20 --crops 10          # ten crops cost ~10x: shorter clip
    python tools/bench_score.py --device cuda --threads 8 --backbones i3d-inception i3d-r50 --crops 1 10

Each configuration scores a generated 640x360 25 fps clip (moving texture,
H.264) end to end in a fresh process: decode, resize, crop, backbone, head,
CSV and JSON (no plot, no overlay), exactly as `vadpipe score` does, and
reports

  RTF   video seconds per wall second of decode + backbone + head (>= 1: real time)
  cpu s / RTF cpu  CPU seconds of that work, and the RTF it implies with all
        --threads cores to itself (the honest figure on a shared, busy machine)
  peak  the process's peak resident memory (ru_maxrss), model weights included
  decoder MB  the decode process's peak (--decode process, vadpipe's way: a crash costs one clip; its
        pages shared with the scoring process at the fork count in both)

Weights: the backbone's own when available locally (i3d-inception: the
packaged Kinetics checkpoint), random otherwise (speed does not depend on the
values; the table says which). The head is a seeded random LTGS head of the
full size, saved in the real checkpoint format.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_checkpoint(path: Path, backbone: str, preset: str, weights: str) -> str:
    """A random LTGS head for ``backbone``'s features; returns "real" or "random" (the weights used)."""
    import torch

    from vadpipe.checkpoint import Checkpoint, build_model
    from vadpipe.config import ModelConfig
    from vadpipe.errors import WeightsError
    from vadpipe.extractors import create_backbone, get_entry
    from vadpipe.extractors.presets import make_recipe

    sha, kind = None, "random"
    if weights != "random":
        try:
            if weights == "auto" and get_entry(backbone).default_weights() is None:
                raise WeightsError("no local default weights")
            model = create_backbone(backbone, weights=None if weights == "auto" else weights)
            sha, kind = model.weights_sha256, "real"
        except WeightsError:
            if weights != "auto":
                raise
    recipe = make_recipe(backbone, preset, weights_sha256=sha)
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=recipe.feature_dim)
    head = build_model(config)
    Checkpoint.of(head, config, recipe=recipe, calibration={"normal_frame_score_quantiles": {"0.99": 0.5}}).save(path)
    return kind


def worker(args) -> None:
    """One configuration in this process: score the clip, print one JSON line."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from vadpipe.score import ScoreOptions, Scorer
    from vadpipe.score_io import ClipInput

    options = ScoreOptions(out_dir=Path(args.out), device=args.device, batch_size=args.batch_size,
                           weights=None if args.weights in ("auto", "random") else args.weights,
                           progress=False, decode_process=args.decode == "process")
    t0 = time.perf_counter()
    scorer = Scorer(Path(args.checkpoint), options)
    scorer.backbone                      # load the weights outside the timed part
    setup = time.perf_counter() - t0

    def children_cpu() -> float:   # the decode process's, once it is reaped
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu0, child0 = time.process_time(), children_cpu()
    result = scorer.score_clip(ClipInput(Path(args.clip), "video", name="bench"))
    cpu = time.process_time() - cpu0 + children_cpu() - child0
    report = json.loads((Path(args.out) / "bench.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"rtf": result.row.rtf, "timings": report["timings_s"], "snippets": report["snippets"],
                      "duration": report["duration_s"], "peak_mb": peak_mb, "child_peak_mb": child_mb,
                      "setup_s": setup, "cpu_s": cpu}))


def run_config(args, clip: Path, backbone: str, crops: int, folder: Path) -> dict:
    preset = "rtfm" if crops == 10 else "center"
    ckpt = folder / f"{backbone}-{preset}.pt"
    kind = make_checkpoint(ckpt, backbone, preset, args.weights)
    cmd = [sys.executable, __file__, "--worker", "--clip", str(clip), "--checkpoint", str(ckpt),
           "--out", str(folder / "out"), "--threads", str(args.threads), "--device", args.device,
           "--weights", args.weights, "--decode", args.decode]
    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    done = subprocess.run(cmd, capture_output=True, text=True)   # the environment as is: vadpipe as installed
    if done.returncode != 0:
        raise SystemExit(f"{backbone} x{crops} failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row.update(backbone=backbone, crops=crops, weights=kind)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["i3d-inception"])
    parser.add_argument("--crops", nargs="+", type=int, default=[1], choices=[1, 10])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--decode", choices=["process", "thread"], default="process",
                        help="decode in a child process (vadpipe's default) or in a thread of the scoring one")
    parser.add_argument("--batch-size", type=int, default=None, help="snippets per pass (default: vadpipe's)")
    parser.add_argument("--weights", default="auto", help="auto (local default, else random), random, or a file")
    parser.add_argument("--workdir", default=None, help="keep the clip and checkpoints here (default: a temp dir)")
    # worker-only
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from bench_extract import cached_clip   # the same moving-texture generator as the extract benchmark

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = cached_clip(folder, "bench", ".mp4", args.seconds, args.size)
        print(f"clip: {clip.name} ({args.seconds:g} s, {args.size}, 25 fps); device {args.device}, "
              f"{args.threads} threads, batch {args.batch_size or 'default (8 clips per pass)'}", flush=True)
        header = f"{'backbone':<14} {'weights':<7} {'crops':>5} {'snippets':>8} {'extract s':>9} {'head s':>7} " \
                 f"{'RTF':>6} {'cpu s':>6} {'RTF cpu':>7} {'peak MB':>8} {'decoder MB':>10}"
        print(header)
        print("-" * len(header))
        for backbone in args.backbones:
            for crops in args.crops:
                r = run_config(args, clip, backbone, crops, folder)
                t = r["timings"]
                # RTF per CPU second is a CPU figure: on a GPU the work is not where the threads are
                rtf_cpu = f"{r['duration'] / (r['cpu_s'] / args.threads):>6.2f}x" if args.device == "cpu" else "-"
                print(f"{backbone:<14} {r['weights']:<7} {crops:>5} {r['snippets']:>8} {t['extract_s']:>9.1f} "
                      f"{t['head_s']:>7.2f} {r['rtf']:>5.2f}x {r['cpu_s']:>6.1f} {rtf_cpu:>7} "
                      f"{r['peak_mb']:>8.0f} {r['child_peak_mb'] if args.decode == 'process' else 0:>10.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
