"""Deterministic input for the Inception-I3D golden test (pure numpy, no RNG state).

Shared by tools/make_inception_golden.py (run once in a scratch JAX environment)
and tests/test_inception_i3d.py, so the fixture stores the rule, not the pixels.
The clip mixes a moving sinusoid (structure the network responds to) with
integer-hash noise (so every filter sees varied input); values lie in [-1, 1].
"""
from __future__ import annotations

import numpy as np

# (name, (B, T, H, W, 3), whether the reference can produce logits at this size:
# its Logits block uses a VALID 2x7x7 average pool, so it needs a >= 7x7 Mixed_5c map)
CASES = (
    ("clip224", (1, 16, 224, 224, 3), True),
    ("clip112", (2, 16, 112, 112, 3), False),
    ("odd", (1, 11, 97, 131, 3), False),
)


def _hash_uniform(shape: tuple) -> np.ndarray:
    """splitmix64 of the flat index, mapped to [-1, 1); identical on every platform."""
    z = np.arange(int(np.prod(shape)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(30)
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z = z * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)).astype(np.float64) / 2.0**23 - 1.0).reshape(shape)


def golden_clip(shape: tuple) -> np.ndarray:
    """(B, T, H, W, 3) float32 clip in [-1, 1] (channels last, as the JAX reference takes it)."""
    b, t, h, w, c = shape
    bb, tt, yy, xx, cc = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    wave = np.sin(2 * np.pi * (2.0 * xx / w + 0.5 * tt / t + cc / 3 + 0.25 * bb)) * \
        np.cos(2 * np.pi * (1.5 * yy / h - 0.25 * tt / t))
    clip = 0.7 * wave + 0.3 * _hash_uniform(shape)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)
