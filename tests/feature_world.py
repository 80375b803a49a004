"""Generated feature stores with a planted anomaly signal, for head/training/evaluation tests.

Each video: T snippets of non-negative "features" (|N(0,1)| plus a per-video
scene offset). Anomalous videos carry one event of contiguous snippets where a
fixed direction ``u`` (shared by every set made with the same ``world_seed``)
is added with strength ``signal``. Frame counts leave a partial last snippet,
as real extraction does. The ground truth is returned and written as vadpipe
JSON (0-based frames, end exclusive).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from vadpipe import atomic
from vadpipe.groundtruth import VideoGT, write_vadpipe_json
from vadpipe.features import FeatureStore, ManifestRecord
from vadpipe.recipe import Recipe


def make_store(folder: Path, n_anomalous: int = 12, n_normal: int = 12, dim: int = 32, crops: int = 1,
               t_range=(20, 60), seed: int = 0, world_seed: int = 123, signal: float = 1.5,
               snippet_len: int = 16, mid_dim: int = 0, stride: int = 0) -> Dict[str, VideoGT]:
    """``mid_dim`` > 0: stored with layers ("mid", mid_dim) then ("last", dim), as ``extract --layers``
    stores them; the event is planted in "last" only, "mid" is noise of its own. ``stride`` > 0: a
    snippet every that many frames (``extract --stride``), the frames and the event's ground truth
    those snippets span."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    mid_rng = np.random.default_rng([seed, 1])          # "last" stays the store a plain call makes
    u = np.abs(np.random.default_rng(world_seed).normal(size=dim))
    u /= np.linalg.norm(u) / np.sqrt(dim)               # unit-ish per dimension
    layers = (("mid", mid_dim), ("last", dim)) if mid_dim else ()
    step = stride or snippet_len
    recipe = Recipe(backbone="synthetic", weights_sha256=None, feature_dim=mid_dim + dim,
                    crop="ten" if crops == 10 else "center", snippet_len=snippet_len, stride=step,
                    layers=layers)
    store = FeatureStore(folder)
    store.write_recipe(recipe)
    gts = {}
    for i in range(n_anomalous + n_normal):
        anomalous = i < n_anomalous
        vid = f"{'Fight' if anomalous else 'Normal'}/{'fight' if anomalous else 'normal'}_{seed}_{i:03d}"
        t = int(rng.integers(t_range[0], t_range[1] + 1))
        frames = (t - 1) * step + snippet_len - int(rng.integers(0, step))
        x = np.abs(rng.normal(size=(t, crops, dim))) + 0.5 * np.abs(rng.normal(size=(1, 1, dim)))
        intervals = []
        if anomalous:
            length = max(2, int(t * rng.uniform(0.15, 0.35)))
            start = int(rng.integers(0, t - length + 1))
            x[start:start + length] += signal * u[None, None, :]
            intervals = [(start * step, min((start + length - 1) * step + snippet_len, frames))]
        if mid_dim:
            x = np.concatenate([mid_rng.normal(size=(t, crops, mid_dim)), x], axis=2)
        name = vid.replace("/", "__") + ".npy"
        atomic.save_npy(folder / name, x.astype(np.float32))
        store.append(ManifestRecord(id=vid, path=f"videos/{vid}.mp4", label=int(anomalous),
                                    cls="Fighting" if anomalous else "Normal", frames=frames, fps=25.0, T=t,
                                    crops=crops, file=name, recipe_id=recipe.recipe_id))
        gts[vid] = VideoGT(vid, frames, intervals, "Fighting" if anomalous else "Normal")
    store.merge(0, 1)
    write_vadpipe_json(folder / "gt.json", gts.values())
    return gts


def tiny_default(features, **train):
    """The default preset shrunk for a few CPU-seconds of training on ``make_store`` features: small
    attention, a fixed iteration count (set ``iterations``), batches of 3 + 3 videos, evaluation every 4."""
    from vadpipe.presets import preset

    cfg = preset("default")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    t = cfg.train
    t.features, t.device, t.eval_every, t.log_every = str(features), "cpu", 4, 2
    t.epochs, t.max_segments, t.batch_anomalous, t.batch_normal = 0, 64, 3, 3
    for key, value in train.items():
        setattr(t, key, value)
    return cfg
