#!/usr/bin/env python
"""Fault drill: ``kill -9`` at random moments during extract, train and score, then run again.

Small generated inputs (12 clips of 48 frames; features from a random-weight Inception I3D, ``tiny``
preset; a short demo-preset training on them). For each command, one uninterrupted run is the
reference; each trial starts the same command in a fresh folder, kills its whole process group
(decode workers included) at a random moment within the reference's wall time, then runs it again
(``extract``: the same command resumes; ``train``: ``--resume``, or a fresh start when it died
before its first checkpoint; ``score``: the same command redoes the clips) and compares:

- resumed:   the second run finished with exit 0;
- identical: its outputs equal the reference's byte for byte (extract: every ``.npy`` and the
  manifest's ids/statuses/frames; train: every tensor of best.pt and last.pt; score: every CSV,
  and every JSON less its timings);
- leftovers: temporary files left in the output folder after the second run (spools, claims,
  atomic-write temp files; lock files are permanent and not counted).

    python tools/drill_faults.py                    # 3 trials each
    python tools/drill_faults.py --trials 10 --only extract,train --seed 1 --keep /tmp/drill
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

VADPIPE = [sys.executable, "-m", "vadpipe"]
# One clip per backbone pass: the CPU default tunes the pass size on timing, and a different pass size
# changes float rounding (~1e-12) between ANY two runs, killed or not; fixed, identity is testable.
EXTRACT = ["--backbone", "i3d-inception", "--weights", "random", "--preset", "tiny", "--workers", "1",
           "--threads", "1", "--batch-size", "4", "--clips-per-forward", "1", "--no-progress"]
# A small head (the demo's full-size one writes 170 MB checkpoints), last.pt on the clock every 1.2 s.
TRAIN = ["--preset", "demo", "--iters", "120", "--device", "cpu", "--no-progress",
         *[arg for kv in ("train.eval_every=40", "train.log_every=10", "train.checkpoint_minutes=0.02",
                          "model.heads=4", "model.ffn_dim=64", "model.hidden=32,16") for arg in ("--set", kv)]]


@dataclass
class Tally:
    trials: int = 0
    resumed: int = 0
    identical: int = 0
    leftovers: int = 0
    restarted: int = 0      # train killed before its first checkpoint: started again, not resumed

    def row(self, name: str) -> str:
        extra = f" (of which {self.restarted} restarted: killed before the first checkpoint)" if self.restarted else ""
        return (f"{name:8s} trials {self.trials}  resumed {self.resumed}{extra}  identical {self.identical}  "
                f"leftovers {self.leftovers}")


def make_clips(root: Path, n: int = 12, frames: int = 48) -> None:
    from vadpipe.video import write_video

    for i in range(n):
        rng = np.random.default_rng(i)
        base = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
        clip = [np.roll(base, 2 * f * (1 + i % 3), axis=1) for f in range(frames)]
        folder = root / ("normal" if i % 2 else "Fighting")
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"clip{i:02d}.mp4", clip, fps=25.0)


def run(cmd: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def killed_run(cmd: List[str], cwd: Path, after_s: float) -> bool:
    """Start ``cmd`` in its own process group and SIGKILL the group after ``after_s``; True when it was
    still running then (the kill landed)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=after_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def leftovers(folder: Path) -> List[str]:
    """Temporary files under ``folder``: hidden files other than locks, and spool/claim/tmp names."""
    out = []
    for path in folder.rglob("*"):
        name = path.name
        if path.is_file() and not name.endswith(".lock") and (
                name.startswith(".") or ".part" in name or name.endswith(".tmp") or ".claim" in name):
            out.append(str(path.relative_to(folder)))
    return sorted(out)


# --- what "identical" means per command ---------------------------------------------------------------

def same_features(a: Path, b: Path) -> bool:
    npy_a, npy_b = sorted(p.name for p in a.glob("*.npy")), sorted(p.name for p in b.glob("*.npy"))
    if npy_a != npy_b or not all((a / n).read_bytes() == (b / n).read_bytes() for n in npy_a):
        return False

    def rows(folder: Path):
        lines = (folder / "manifest.jsonl").read_text().splitlines()
        return sorted((r["id"], r["status"], r["frames"], r["T"]) for r in map(json.loads, lines))
    return rows(a) == rows(b)


def same_run(a: Path, b: Path) -> bool:
    import torch

    for which in ("best.pt", "last.pt"):
        x, y = torch.load(a / which, weights_only=True), torch.load(b / which, weights_only=True)
        if x["iteration"] != y["iteration"] or x["model"].keys() != y["model"].keys():
            return False
        if not all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"]):
            return False
    return True


def same_scores(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    for name in names:
        if name.endswith(".csv") and (a / name).read_bytes() != (b / name).read_bytes():
            return False
        if name.endswith(".json"):
            x, y = (json.loads((f / name).read_text()) for f in (a, b))
            for report in (x, y):
                report.pop("timings_s", None), report.pop("real_time_factor", None)
                report["input"]["path"] = Path(report["input"]["path"]).name
            if x != y:
                return False
    return True


# --- the drill ------------------------------------------------------------------------------------------

@dataclass
class Job:
    name: str
    command: Callable[[Path], List[str]]          # folder of this trial -> command line
    output: Callable[[Path], Path]                # folder of this trial -> what to compare
    again: Callable[[Path], List[str]]            # the command that resumes a killed trial
    same: Callable[[Path, Path], bool]


def drill(job: Job, work: Path, trials: int, rng: random.Random, log) -> Tally:
    ref = work / f"{job.name}-reference"
    ref.mkdir()
    t0 = time.perf_counter()
    done = run(job.command(ref), work)
    reference_s = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{job.name}: the reference run failed: {done.stderr.strip().splitlines()[-1:]}")
    tally = Tally()
    for trial in range(trials):
        folder = work / f"{job.name}-trial{trial}"
        folder.mkdir()
        at = rng.uniform(0.15, 0.95) * reference_s
        landed = killed_run(job.command(folder), work, at)
        again = job.again(folder)
        result = run(again, work)
        if result.returncode != 0 and job.name == "train" and "nothing to resume" in result.stderr:
            shutil.rmtree(folder)
            folder.mkdir()
            result = run(job.command(folder), work)
            tally.restarted += 1
        tally.trials += 1
        ok = result.returncode == 0
        same = ok and job.same(job.output(ref), job.output(folder))
        left = leftovers(job.output(folder)) if job.output(folder).exists() else []
        tally.resumed += ok
        tally.identical += bool(same)
        tally.leftovers += len(left)
        log(f"  {job.name} trial {trial}: killed at {at:.1f} s of {reference_s:.1f}"
            + ("" if landed else " (it had finished)") + f"; rerun exit {result.returncode}, "
            + ("identical" if same else "DIFFERENT") + (f", leftovers {left}" if left else "")
            + ("" if ok else f"; {(result.stderr.strip().splitlines() or [''])[-1]}"))
    return tally


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="kills per command (default 3)")
    parser.add_argument("--only", default="extract,train,score", help="commands to drill, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="vadpipe-drill-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    log = lambda msg: print(msg, flush=True)   # noqa: E731

    videos = work / "videos"
    make_clips(videos)
    features = work / "extract-reference" / "features"
    ckpt = work / "train-reference" / "run" / "best.pt"
    jobs: Dict[str, Job] = {
        "extract": Job("extract", lambda d: [*VADPIPE, "extract", str(videos), "-o", str(d / "features"), *EXTRACT],
                       lambda d: d / "features",
                       lambda d: [*VADPIPE, "extract", str(videos), "-o", str(d / "features"), *EXTRACT],
                       same_features),
        "train": Job("train", lambda d: [*VADPIPE, "train", "--features", str(features), "--out", str(d / "run"),
                                         *TRAIN],
                     lambda d: d / "run",
                     lambda d: [*VADPIPE, "train", "--resume", "--out", str(d / "run"), "--no-progress"],
                     same_run),
        "score": Job("score", lambda d: [*VADPIPE, "score", str(videos), "--checkpoint", str(ckpt), "-o",
                                         str(d / "scores"), "--threshold", "0.5", "--plot", "--no-progress"],
                     lambda d: d / "scores",
                     lambda d: [*VADPIPE, "score", str(videos), "--checkpoint", str(ckpt), "-o", str(d / "scores"),
                                "--threshold", "0.5", "--plot", "--no-progress"],
                     same_scores),
    }
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in jobs]
    if unknown:
        parser.error(f"--only: unknown command(s) {unknown}; choose from {list(jobs)}")
    # train needs the reference features, score the reference checkpoint
    needed = {"extract"} | ({"train"} if "score" in wanted else set())
    rows = []
    try:
        for name in ("extract", "train", "score"):
            if name in wanted:
                rows.append(drill(jobs[name], work, args.trials, rng, log).row(name))
            elif name in needed and any(w in wanted for w in ("train", "score")):
                (work / f"{name}-reference").mkdir(exist_ok=True)
                if run(jobs[name].command(work / f"{name}-reference"), work).returncode != 0:
                    raise SystemExit(f"{name}: the reference run (needed by the others) failed")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
