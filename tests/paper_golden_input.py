"""The fixed run behind tests/fixtures/paper_golden.json: the article's LTGS (``--preset paper``) trained a few
iterations on deterministic RTFM-layout features, and a fingerprint of what it learned.

Shared by tools/make_paper_golden.py (which writes the fixture, and can run on any checkout of the project
to say whether the article's head trained the same there) and tests/test_paper_golden.py. Only the CLI and
the checkpoint's ``model`` state dict are used, both stable since the first revision, so an old checkout
can be fingerprinted the same way.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

DIM = 1024                # Inception I3D's feature size
CROPS = 2                 # RTFM stores ten; two keep the run short
VIDEOS = 8                # of each class
ITERATIONS = 4
# The preset as published, with only what makes it short: batches of 4 + 4 videos (the article: 32 + 32),
# dynamic labels updated every 2 steps (500) and validation every 2, so both paths run within ITERATIONS.
# Four steps, not more: the order of float sums (one thread or two) moves the trained parameters by 2e-7
# after four steps and by 1e-3 after eight (a top-k choice flips), so four tell a change in the code from
# another CPU's rounding.
TRAIN_ARGS = ["--preset", "paper", "--iters", str(ITERATIONS), "--seed", "0", "--device", "cpu",
              "--list-anomalous", "name", "--no-progress", "--set", "train.batch_anomalous=4",
              "--set", "train.batch_normal=4", "--set", "train.beta=2", "--set", "train.eval_every=2"]


def write_features(root: Path) -> Path:
    """VIDEOS normal and VIDEOS anomalous videos of 12–60 snippets (T, CROPS, DIM) as float32 .npy files
    and the RTFM list file naming them (labels by name); an anomalous video's event is a run of snippets
    whose features are shifted along one fixed direction. Returns the list file."""
    rng = np.random.default_rng(20261206)
    direction = rng.standard_normal(DIM).astype(np.float32)
    direction /= np.linalg.norm(direction)
    root.mkdir(parents=True, exist_ok=True)
    lines: List[str] = []
    for anomalous in (True, False):
        for i in range(VIDEOS):
            t = int(rng.integers(12, 61))
            x = np.abs(rng.standard_normal((t, CROPS, DIM))).astype(np.float32) * 0.5
            if anomalous:
                start = int(rng.integers(0, t // 2))
                x[start:start + max(2, t // 4)] += 2.0 * direction
            name = f"{'Abuse' if anomalous else 'Normal_Videos'}{i:03d}_x264.npy"
            np.save(root / name, x)
            lines.append(name)
    path = root / "train.list"
    path.write_text("\n".join(lines) + "\n")
    return path


def fingerprint(state: Dict) -> Dict[str, List[float]]:
    """Per parameter of a trained head (name → [sum, sum of squares], float64): enough to tell a changed
    architecture, initialisation, sampling, loss or optimiser step from the same training."""
    import torch

    out = {}
    for name, value in sorted(state.items()):
        if torch.is_tensor(value) and value.is_floating_point():
            v = value.detach().double()
            out[name] = [float(v.sum()), float((v * v).sum())]
    return out


def train_fingerprint(checkout: Path, work: Path) -> Dict[str, List[float]]:
    """Train the golden run in ``work`` with ``checkout``'s vadpipe (this interpreter's packages), on one
    thread; the fingerprint of its last.pt (read with ``weights_only=True``)."""
    import torch

    features = write_features(work / "features")
    run = work / "run"
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "vadpipe", "train", "--features", str(features), "--out", str(run), *TRAIN_ARGS]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"training with {checkout} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return fingerprint(torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"])


def largest_difference(got: Dict[str, List[float]], want: Dict[str, List[float]]) -> Tuple[float, str, List[str]]:
    """(largest difference over the parameters both hold, relative to the value or to 1 where it is
    smaller, its parameter, the names only one of them holds)."""
    worst, where = 0.0, ""
    for name in sorted(set(got) & set(want)):
        for g, w in zip(got[name], want[name]):
            d = abs(g - w) / max(abs(w), 1.0)
            if d > worst:
                worst, where = d, name
    return worst, where, sorted(set(got) ^ set(want))
