"""Which frames each group of the generated feature world's figures compares (``tools/bench_accuracy.py``).

The world and its ``groups.json`` come from ``vadpipe.synthetic_features``; this is kept out of that module
because a benchmark's cache of the world is keyed by the generator's source.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from .synthetic_features import SNIPPET

SHORT_EVENT = 0.05   # an event shorter than this share of its video counts as short


def group_masks(groups: dict, frame_labels: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """Per group, the frames of each test video that take part in its AUC.

    - ``all``: every frame;
    - ``short``: each short event's frames (< 5 % of its video) and the frames outside any event of the video
      holding it, against the normal videos; a video's long events are left out (a video whose events are
      *all* short is rare: one of the seed-0 world's 40, against 15 short events in 12 videos);
    - ``unseen``: normal videos, and anomalous videos of classes never seen in training;
    - ``bursts``: event frames against frames inside benign bursts (are bursts ranked below events?).
    """
    out: Dict[str, Dict[str, np.ndarray]] = {"all": {}, "short": {}, "unseen": {}, "bursts": {}}
    for vid, labels in frame_labels.items():
        g = groups["test"].get(vid)
        if g is None:
            continue
        n = labels.size
        every = np.ones(n, dtype=bool)
        out["all"][vid] = every
        normal = g["class"] is None
        short = [(s, e) for s, e in g["events"] if (e - s) < SHORT_EVENT * g["T"]]
        if normal:
            out["short"][vid] = every
        elif short:
            kept = labels == 0
            for s, e in short:
                kept[s * SNIPPET:e * SNIPPET] = True
            out["short"][vid] = kept
        if normal or not g["seen"]:
            out["unseen"][vid] = every
        burst = np.zeros(n, dtype=bool)
        for s, e in g["bursts"]:
            burst[s * SNIPPET:e * SNIPPET] = True
        out["bursts"][vid] = (labels > 0) | (burst & (labels == 0))
    return out
