"""Long videos strung from the short clips of one camera, to measure a head past the clip lengths
of UCSD Ped1 (13 segments) and the demo world (10–22) on real features.

Each long video joins ``k`` clips of one split end to end, feature rows and frame labels alike: an
anomalous one holds one anomalous clip among ``k − 1`` normal clips at a random place, a normal one
``k`` normal clips. Every anomalous clip is used once; normal clips are drawn afresh for each video
(no clip twice in one video), since a split holds about as many normal clips as anomalous ones.
Frames are 16 a snippet, so a clip's last, padded snippet takes the label of the clip's last frame.
The joins are cuts between recordings of the same camera, not continuous time: a proxy for long
surveillance video, not a substitute. Normal clips recur across a split's long videos, so a normal
video that training holds out is made of clips it trained on: the ``auto`` threshold calibrated on
such videos is too low, and false alarms at it mean nothing here (frame AUC and AUC inside anomalous
videos need no threshold); so is the scene check's bound, and every test video reads as a new scene.

Layout written (as vadpipe.synthetic_features, so ``open_features`` reads it): ``npy/<name>_i3d.npy``
(T, C, D), ``<split>.list`` (names carry the label: "Normal" is normal) and ``<split>_gt.json``; and
``<split>_clips.json``: each long video's clips in order, ``[first snippet, end snippet, clip id]``,
for tools/long_video_errors.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from vadpipe import atomic
from vadpipe.data import Video, open_features
from vadpipe.groundtruth import VideoGT, write_vadpipe_json
from vadpipe.intervals import runs_above
from vadpipe.synthetic_features import SNIPPET       # the list layout's 16 frames a snippet


def _clip_labels(clip: Video, x: np.ndarray, gt: Dict[str, VideoGT]) -> np.ndarray:
    """Frame labels of one clip over its snippets (16 T frames; the padded tail repeats the last)."""
    key = clip.id if clip.id in gt else clip.id.rsplit("/", 1)[-1]      # Ped1's gt names the bare clip
    span = x.shape[0] * SNIPPET
    frames = min(clip.frames or span, span)
    labels, _ = gt[key].labels(frames) if key in gt else (np.zeros(frames, dtype=np.int8), [])
    return np.concatenate([labels, np.full(span - frames, labels[-1], dtype=labels.dtype)])


def compose_long_videos(features: Path, gt: Dict[str, VideoGT], out: Path, split: str, k: int,
                        seed: int = 0) -> Path:
    """Write ``split``'s long videos of ``k`` clips each, made from the feature folder ``features`` with
    frame ground truth ``gt``, under ``out``; returns the list file."""
    if k < 2:
        raise ValueError(f"a long video needs at least 2 clips, got {k}")
    clips = sorted(open_features(features).videos, key=lambda v: v.id)
    anomalous = [c for c in clips if c.label == 1]
    normal = [c for c in clips if c.label == 0]
    if len(normal) < k:
        raise ValueError(f"{features}: {len(normal)} normal clips, fewer than the {k} a normal video needs")
    rng = np.random.default_rng(seed)
    names, gts, blocks = [], [], {}
    for i, event_clip in enumerate(anomalous + [None] * len(normal)):     # None: an all-normal video
        picks = [normal[j] for j in rng.choice(len(normal), k - (event_clip is not None), replace=False)]
        if event_clip is not None:
            picks.insert(int(rng.integers(0, k)), event_clip)
        parts = [c.load() for c in picks]
        x = np.concatenate(parts)
        labels = np.concatenate([_clip_labels(c, p, gt) for c, p in zip(picks, parts)])
        name = f"Anomaly_{split}{i:03d}_x264" if event_clip is not None else f"Normal_Videos_{split}{i:03d}_x264"
        atomic.save_npy(out / "npy" / f"{name}_i3d.npy", x)
        names.append(f"npy/{name}_i3d.npy")
        ends = np.cumsum([len(p) for p in parts])
        blocks[name] = [[int(e - len(p)), int(e), c.id] for e, p, c in zip(ends, parts, picks)]
        gts.append(VideoGT(name, labels.size, runs_above(labels, 0.5), "Anomaly" if event_clip is not None else None))
    write_vadpipe_json(out / f"{split}_gt.json", gts)
    atomic.write_json(out / f"{split}_clips.json", blocks)
    atomic.write_text(out / f"{split}.list", "".join(n + "\n" for n in names))
    return out / f"{split}.list"
