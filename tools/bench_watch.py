"""Benchmark `vadpipe watch` on a live-paced loopback stream: dropped snippets, lag, alert latency, memory.

    python tools/bench_watch.py                       # 60 s stream, i3d-inception, 1 crop, 640x360 at 25 fps
    python tools/bench_watch.py --seconds 1800        # the 30-minute memory check
    python tools/bench_watch.py --threshold 0.4 --window 16
    python tools/bench_watch.py --workers 1               # one snippet at a time, both threads in it

A generated moving-texture clip (tools/bench_extract.make_clip, as MPEG-TS) is
served over HTTP on 127.0.0.1 at real-time pace (``vadpipe.loopback``: each
frame's packet at its decode time, as a camera sends it; ``--pace bytes``
spreads the bytes evenly instead, which delivers key frames late) and
watched by ``vadpipe watch`` in its own process, with a seeded random LTGS head
on i3d-inception features (the packaged Kinetics weights when installed: see
tools/bench_score.make_checkpoint). Reported:

  dropped      snippets the model could not keep up with (whole snippets, by design)
  lag          per snippet: its features ready minus its last frame live (p50 / p95 / max)
  alert latency  an event's first frame live -> its start line written: one snippet (the event's first
               snippet must end) + its lag, after the window's warm-up (the first W snippets are scored
               together once the W-th arrives); measured on real events when the threshold gives some
  cpu          CPU seconds of the watch process (its decode child's included) per stream second (2.0 = both
               cores all the time)
  RSS          resident memory after the warm-up and at the end, and its growth per minute

The stream's wall start is the loopback server's first byte; the watch process
is started (and its model loaded) before that, as a camera watcher would be.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def children(pid: int) -> list:
    """The pids of ``pid``'s children (its decode process with --decode process)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def percentile(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="stream length")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--threshold", default="auto", help="as `vadpipe watch` (the bench head's auto is 0.5)")
    parser.add_argument("--weights", default="auto", help="auto (local default, else random), random, or a file")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="as `vadpipe watch`")
    parser.add_argument("--workers", type=int, default=None, help="as `vadpipe watch` (default: its auto)")
    parser.add_argument("--pace", choices=["packets", "bytes"], default="packets",
                        help="packets: each frame's packet sent at its decode time, as a camera sends it; "
                             "bytes: the file's bytes evenly over its duration (big key frames arrive late)")
    parser.add_argument("--decode", choices=["process", "thread"], default="process", help="as `vadpipe watch`")
    parser.add_argument("--workdir", default=None, help="keep the clip and outputs here (default: a temp dir)")
    args = parser.parse_args()

    from bench_extract import cached_clip
    from bench_score import make_checkpoint

    from vadpipe.loopback import Route, packet_schedule, serve

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = cached_clip(folder, "watch", ".ts", args.seconds, args.size, fps=args.fps)
        ckpt = folder / "head.pt"
        weights = make_checkpoint(ckpt, "i3d-inception", "center", args.weights)
        frames = int(round(args.seconds * args.fps))
        expected = math.ceil(frames / 16)
        csv, events = folder / "watch.csv", folder / "events.jsonl"
        for stale in (csv, events):
            stale.unlink(missing_ok=True)
        print(f"stream: {args.seconds:g} s {args.size} at {args.fps:g} fps over loopback HTTP ({expected} snippets); "
              f"i3d-inception center 1 crop ({weights} weights), LTGS head, window {args.window}, "
              f"{args.threads} threads, workers {args.workers or 'auto'}, compile {args.compile}, decode in a "
              f"{args.decode}, paced by {args.pace}, load average {os.getloadavg()[0]:.1f}", flush=True)

        data = clip.read_bytes()
        schedule = packet_schedule(data) if args.pace == "packets" else None
        with serve({"/cam.ts": Route(data, args.seconds, schedule=schedule)}) as server:
            url = f"{server.url}/cam.ts"
            cmd = [sys.executable, "-m", "vadpipe", "watch", url, "--checkpoint", str(ckpt), "--csv", str(csv),
                   "--events", str(events), "--threads", str(args.threads), "--device", "cpu",
                   "--window", str(args.window), "--threshold", args.threshold, "--max-reconnects", "0",
                   "--compile", args.compile, "--decode", args.decode]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            if args.weights not in ("auto", "random"):
                cmd += ["--weights", args.weights]
            launched = time.time()
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            samples = []                   # (wall time, rss MB, cpu s: the watch's and its decode child's)
            child_rss, child_cpu = [], {}  # the decode child's RSS MB (much of it shared since the fork), cpu s
            while proc.poll() is None:
                for kid in children(proc.pid):
                    child_rss.append(rss_mb(kid))
                    cpu = cpu_seconds(kid)
                    if not math.isnan(cpu):
                        child_cpu[kid] = cpu          # kept once it has gone: its seconds were spent
                samples.append((time.time(), rss_mb(proc.pid), cpu_seconds(proc.pid) + sum(child_cpu.values())))
                time.sleep(1.0)
            stderr = proc.stderr.read()
            stream_start = server.started.get("/cam.ts")
        if proc.returncode != 0 or stream_start is None:
            raise SystemExit(f"vadpipe watch failed (exit {proc.returncode}):\n{stderr[-3000:]}")

        rows = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)
        lag = rows[:, 7]          # measured when the features are ready: the window's warm-up is not in it
        snippet_s = 16 / args.fps
        live = [s for s in samples if s[0] >= stream_start and not math.isnan(s[1] + s[2])]
        warm = next((s for s in live if s[0] >= stream_start + args.window * snippet_s), live[0] if live else None)
        end = live[-1] if live else None
        starts = [e for e in (json.loads(line) for line in events.read_text().splitlines()) if e["event"] == "start"]
        measured = [e["wall_time"] - (stream_start + e["start_s"]) for e in starts
                    if e["start_s"] >= args.window * snippet_s]

        print(f"  startup (process start -> stream start): {stream_start - launched:.1f} s")
        print(f"  snippets scored {len(rows)} of {expected}, dropped {expected - len(rows)}")
        print(f"  lag: p50 {percentile(lag, 50):.2f} s, p95 {percentile(lag, 95):.2f} s, "
              f"max {lag.max() if len(lag) else float('nan'):.2f} s")
        print(f"  alert latency: snippet {snippet_s:.2f} s + lag -> p50 {snippet_s + percentile(lag, 50):.2f} s, "
              f"max {snippet_s + (lag.max() if len(lag) else float('nan')):.2f} s; measured on "
              f"{len(measured)} event(s) after the warm-up"
              + (f": p50 {percentile(measured, 50):.2f} s, p95 {percentile(measured, 95):.2f} s, "
                 f"max {max(measured):.2f} s" if measured else ""))
        if end is not None and warm is not None and end[0] > warm[0]:
            minutes = (end[0] - warm[0]) / 60
            cpu_rate = (end[2] - live[0][2]) / max(1e-9, end[0] - live[0][0])
            print(f"  cpu {cpu_rate:.2f} s per stream second; RSS {warm[1]:.0f} MB after warm-up, "
                  f"{end[1]:.0f} MB at the end: {end[1] - warm[1]:+.0f} MB ({(end[1] - warm[1]) / minutes:+.1f} MB/min)"
                  + (f"; decode child peak {max(child_rss):.0f} MB" if child_rss else ""))
        print("  " + (stderr.strip().splitlines() or [""])[-1])


if __name__ == "__main__":
    main()
