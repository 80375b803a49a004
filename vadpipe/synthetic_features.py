"""A feature-level anomaly world in RTFM layout, with known snippet labels.

It tests a head's *localisation* without decoding video: every snippet's label
is known, events are short or long, several per video, some anomaly classes
appear only at test time, and benign bursts raise the feature magnitude (the
RTFM signal) without being anomalies.

Model of a snippet feature (non-negative, as pooled ReLU features are):

    x_t = relu(scene_v + a_t · A  +  e_t · u_c  +  noise_t) · (1 + b_t)

- ``scene_v``: one of a few scene prototypes plus a per-video offset;
- ``a_t · A``: normal activity, weights that drift smoothly (AR(1)) over a
  shared set of normal directions;
- ``e_t · u_c``: an event of class c (strength drawn per event) during its
  snippets; train-time classes and test-only classes share part of an
  "abnormal" subspace, so unseen classes are learnable only in part;
- ``b_t``: benign bursts (crowds, lighting, camera shake) scale the whole
  feature by 1.6–2.6 in normal and anomalous videos alike;
- crops: each of C crops adds its own small noise.

Layout written to ``OUT``: ``npy/<name>_i3d.npy`` (T, C, D) float32,
``train.list`` / ``test.list`` (one path per line; names with "Normal" are
normal, as UCF-Crime's), ``train_gt.json`` / ``test_gt.json`` (vadpipe JSON,
16 frames a snippet, frames = 16 T), ``groups.json`` (per test video: class,
whether it is seen in training, event lengths, burst intervals), used by
``vadpipe.feature_groups`` for the per-group figures (kept apart, so that the
cache of a generated world, keyed by this module's source, survives a change to
how the groups are scored).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from . import atomic
from .groundtruth import VideoGT, write_vadpipe_json

SNIPPET = 16


@dataclass
class FeatureWorldConfig:
    dim: int = 128
    crops: int = 10
    train_anomalous: int = 60
    train_normal: int = 60
    test_anomalous: int = 40
    test_normal: int = 40
    t_range: Tuple[int, int] = (20, 400)
    seen_classes: int = 5
    unseen_classes: int = 2
    scenes: int = 4
    normal_directions: int = 8
    event_strength: Tuple[float, float] = (0.3, 0.7)
    coverage: Tuple[float, float] = (0.02, 0.60)   # share of a video covered by its events
    burst_scale: Tuple[float, float] = (1.6, 2.6)
    burst_rate: float = 0.6                         # mean bursts a video
    seed: int = 0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass
class _World:
    scenes: np.ndarray        # (S, D)
    normal: np.ndarray        # (K, D)
    classes: np.ndarray       # (seen + unseen, D)


def _make_world(cfg: FeatureWorldConfig, rng: np.random.Generator) -> _World:
    d = cfg.dim
    scenes = np.abs(rng.normal(0.6, 0.3, size=(cfg.scenes, d)))
    normal = _unit(np.abs(rng.normal(size=(cfg.normal_directions, d)))) * np.sqrt(d) * 0.35
    shared = _unit(rng.normal(size=d))                       # the part every anomaly has in common
    n_cls = cfg.seen_classes + cfg.unseen_classes
    own = _unit(rng.normal(size=(n_cls, d)))
    classes = _unit(0.5 * shared[None] + 0.85 * own) * np.sqrt(d) * 0.5
    return _World(scenes, normal, classes)


def _intervals(rng: np.random.Generator, t: int, share: float, count: int) -> List[Tuple[int, int]]:
    """``count`` disjoint snippet intervals covering about ``share`` of ``t`` snippets (each ≥ 1)."""
    total = max(count, int(round(share * t)))
    cuts = np.sort(rng.choice(np.arange(1, total), size=count - 1, replace=False)) if count > 1 else []
    lengths = np.diff(np.concatenate([[0], cuts, [total]])).astype(int)
    gaps = rng.dirichlet(np.ones(count + 1)) * (t - total)
    out, pos = [], 0.0
    for i, length in enumerate(lengths):
        pos += gaps[i]
        start = int(min(round(pos), t - length))
        out.append((start, start + int(length)))
        pos = start + length
    return out


def _video(cfg: FeatureWorldConfig, world: _World, rng: np.random.Generator, cls: int | None):
    d, t = cfg.dim, int(rng.integers(cfg.t_range[0], cfg.t_range[1] + 1))
    scene = world.scenes[rng.integers(cfg.scenes)] + rng.normal(0, 0.1, size=d)
    a = np.empty((t, world.normal.shape[0]))
    a[0] = rng.normal(size=a.shape[1])
    for i in range(1, t):                                   # slowly drifting normal activity
        a[i] = 0.9 * a[i - 1] + np.sqrt(1 - 0.81) * rng.normal(size=a.shape[1])
    x = scene[None] + np.abs(a) @ world.normal * 0.5 + rng.normal(0, 0.35, size=(t, d))
    events: List[Tuple[int, int]] = []
    if cls is not None:
        share = rng.uniform(*cfg.coverage)
        count = int(rng.integers(1, 4)) if share * t >= 3 else 1
        events = _intervals(rng, t, share, count)
        for s, e in events:
            x[s:e] += rng.uniform(*cfg.event_strength) * world.classes[cls][None]
    x = np.maximum(x, 0.0)
    bursts: List[Tuple[int, int]] = []
    for _ in range(rng.poisson(cfg.burst_rate)):
        length = int(rng.integers(2, max(3, t // 8)))
        s = int(rng.integers(0, t - length + 1))
        x[s:s + length] *= rng.uniform(*cfg.burst_scale)
        bursts.append((s, s + length))
    crops = x[:, None, :] + rng.normal(0, 0.05, size=(t, cfg.crops, d))
    return np.maximum(crops, 0.0).astype(np.float32), events, bursts


def _split(cfg: FeatureWorldConfig, world: _World, rng: np.random.Generator, out: Path, split: str,
           n_anom: int, n_norm: int, classes: List[int]) -> Dict[str, dict]:
    names, gts, info = [], [], {}
    for i in range(n_anom + n_norm):
        cls = classes[i % len(classes)] if i < n_anom else None
        x, events, bursts = _video(cfg, world, rng, cls)
        cname = f"Class{cls}" if cls is not None else "Normal"
        name = f"{cname}_{split}{i:03d}_x264" if cls is not None else f"Normal_Videos_{split}{i:03d}_x264"
        atomic.save_npy(out / "npy" / f"{name}_i3d.npy", x)
        names.append(f"npy/{name}_i3d.npy")
        t = x.shape[0]
        gts.append(VideoGT(name, t * SNIPPET, [(s * SNIPPET, e * SNIPPET) for s, e in events],
                           cname if cls is not None else None))
        info[name] = {"class": cls, "seen": cls is None or cls < cfg.seen_classes, "T": t,
                      "events": events, "bursts": bursts}
    # anomalous first, as RTFM's lists; names carry the label for the 'name' rule as well
    atomic.write_text(out / f"{split}.list", "".join(n + "\n" for n in names))
    write_vadpipe_json(out / f"{split}_gt.json", gts)
    return info


def make_feature_world(out: str | Path, cfg: FeatureWorldConfig = FeatureWorldConfig()) -> Path:
    """Write the world to ``out`` (see the module docstring) and return ``out``."""
    out = Path(out)
    (out / "npy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    world = _make_world(cfg, rng)
    seen = list(range(cfg.seen_classes))
    _split(cfg, world, rng, out, "train", cfg.train_anomalous, cfg.train_normal, seen)
    test = _split(cfg, world, rng, out, "test", cfg.test_anomalous, cfg.test_normal,
                  list(range(cfg.seen_classes + cfg.unseen_classes)))
    atomic.write_text(out / "groups.json", json.dumps({"config": asdict(cfg), "test": test}, indent=1))
    return out
