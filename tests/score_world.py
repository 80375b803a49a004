"""Generated ground truth and snippet scores of a public method's kind, for score-set/bootstrap tests.

UCF-style ids (``Fighting003_x264``, ``Normal_Videos_007_x264``); frame counts
leave a partial last snippet; anomalous videos carry one event whose snippets
score higher (``signal``) than the rest, plus noise.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from vadpipe.groundtruth import VideoGT

SNIPPET = 16


def make_scores(n_anomalous: int = 12, n_normal: int = 12, seed: int = 0, signal: float = 0.4,
                t_range=(8, 30)) -> Tuple[Dict[str, VideoGT], Dict[str, np.ndarray]]:
    """(gt id → VideoGT with frame count and interval, gt id → (T,) snippet scores)."""
    rng = np.random.default_rng(seed)
    gts, scores = {}, {}
    for i in range(n_anomalous + n_normal):
        anomalous = i < n_anomalous
        vid = f"Fighting{i:03d}_x264" if anomalous else f"Normal_Videos_{i:03d}_x264"
        t = int(rng.integers(t_range[0], t_range[1] + 1))
        frames = t * SNIPPET - int(rng.integers(0, SNIPPET))
        s = rng.random(t) * 0.6
        intervals = []
        if anomalous:
            a = int(rng.integers(0, t - 3))
            b = int(rng.integers(a + 2, t))
            intervals = [(a * SNIPPET, min(frames, b * SNIPPET))]
            s[a:b] += signal
        gts[vid] = VideoGT(vid, frames, intervals, "Fighting" if anomalous else "Normal")
        scores[vid] = s.astype(np.float32)
    return gts, scores
