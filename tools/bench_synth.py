"""Time the synthetic-world generator: plan, render and encode one clip per class, single core.

    python tools/bench_synth.py                      # 20 s clips at 640x360
    python tools/bench_synth.py --seconds 10 --width 320 --height 180

Prints a table (seconds per stage and the real-time factor: video seconds per
second of generation) and the worst total against the clip's own duration.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from vadpipe.synth import EVENT_TYPES, ClipSpec, plan_clip, render_frames, write_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="veryfast", help="x264 preset")
    ap.add_argument("--crf", type=int, default=23)
    args = ap.parse_args()
    frames = int(round(args.seconds * 25))
    print(f"{frames} frames at {args.width}x{args.height}, x264 {args.preset} crf {args.crf}, one encoder thread")
    print(f"{'class':<10} {'events':>6} {'plan s':>7} {'render s':>9} {'render+encode s':>16} {'cpu s':>6} "
          f"{'x realtime':>11} {'MB':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, cls in enumerate((None,) + EVENT_TYPES):
            spec = ClipSpec(f"bench_{i}", "test", cls, args.seed + i, frames, args.width, args.height, 25,
                            0 if cls is None else 1)
            c0 = time.process_time()
            t0 = time.perf_counter()
            plan = plan_clip(spec)
            t1 = time.perf_counter()
            c1 = time.process_time()
            for _ in render_frames(plan):
                pass
            t2 = time.perf_counter()
            c2 = time.process_time()
            path = Path(tmp) / f"{spec.name}.mp4"
            write_clip(path, plan, args.crf, args.preset)
            t3 = time.perf_counter()
            c3 = time.process_time()
            total = (t1 - t0) + (t3 - t2)
            cpu = (c1 - c0) + (c3 - c2)
            worst = max(worst, total)
            print(f"{cls or 'normal':<10} {len(plan.events):>6} {t1 - t0:>7.2f} {t2 - t1:>9.2f} {t3 - t2:>16.2f} "
                  f"{cpu:>6.2f} {args.seconds / total:>11.1f} {path.stat().st_size / 1e6:>6.2f}")
    print(f"worst clip: {worst:.2f} s wall to generate {args.seconds:.0f} s of video (plan + render + encode); "
          f"'cpu s' is this process's CPU time, robust to a busy machine")


if __name__ == "__main__":
    main()
