"""Antialiased raster primitives for the synthetic world, drawn in place on uint8 RGB frames.

Each primitive works only on its own bounding box (a few hundred pixels), so a
frame full of people and cars costs milliseconds, not a per-pixel Python loop.
Coverage is computed from the signed distance to the shape edge, which gives
one pixel of antialiasing and keeps sub-pixel motion smooth.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

Color = Sequence[float]


def _grid(img: np.ndarray, x0: float, y0: float, x1: float, y1: float):
    """Clipped integer box around [x0, x1) x [y0, y1) with pixel-centre coordinates, or None when off-frame."""
    h, w = img.shape[:2]
    ix0, iy0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
    ix1, iy1 = min(int(math.ceil(x1)) + 1, w), min(int(math.ceil(y1)) + 1, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    xs = np.arange(ix0, ix1, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(iy0, iy1, dtype=np.float32)[:, None] + 0.5
    return (slice(iy0, iy1), slice(ix0, ix1)), xs, ys


def blend(img: np.ndarray, box, alpha: np.ndarray, color: Color) -> None:
    """img[box] = img[box] * (1 - alpha) + color * alpha."""
    if not alpha.any():
        return
    region = img[box].astype(np.float32)
    col = np.asarray(color, dtype=np.float32)
    region += alpha[..., None] * (col - region)
    region += 0.5                       # a convex mix of values in [0, 255]: rounding needs no clip
    img[box] = region.astype(np.uint8)


def add_light(img: np.ndarray, box, weight: np.ndarray, color: Color) -> None:
    """Additive light: img[box] += weight * color (saturating)."""
    region = img[box].astype(np.float32)
    region += weight[..., None] * np.asarray(color, dtype=np.float32)
    img[box] = np.clip(region, 0, 255).astype(np.uint8)


def ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: Color,
            alpha: float = 1.0, angle: float = 0.0, soft: float = 0.0) -> None:
    """Filled ellipse; ``angle`` in radians; ``soft`` > 0 fades the edge over that fraction of the radius."""
    rx, ry = max(rx, 0.3), max(ry, 0.3)
    r = max(rx, ry) if angle else None
    g = _grid(img, cx - (r or rx), cy - (r or ry), cx + (r or rx), cy + (r or ry))
    if g is None:
        return
    box, xs, ys = g
    dx, dy = xs - cx, ys - cy
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = dx * c + dy * s, -dx * s + dy * c
    q = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    if soft > 0:
        cov = np.clip((1.0 - q) / soft, 0.0, 1.0)
    else:
        cov = np.clip(0.5 - (q - 1.0) * min(rx, ry), 0.0, 1.0)
    blend(img, box, cov * alpha, color)


def capsule(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, r: float, color: Color,
            alpha: float = 1.0) -> None:
    """A thick line segment with round ends (limbs)."""
    r = max(r, 0.5)
    g = _grid(img, min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r)
    if g is None:
        return
    box, xs, ys = g
    vx, vy = x1 - x0, y1 - y0
    ll = vx * vx + vy * vy
    t = np.clip(((xs - x0) * vx + (ys - y0) * vy) / ll, 0.0, 1.0) if ll > 1e-9 else np.zeros((1, 1), np.float32)
    d = np.sqrt((xs - x0 - t * vx) ** 2 + (ys - y0 - t * vy) ** 2)
    blend(img, box, np.clip(r + 0.5 - d, 0.0, 1.0) * alpha, color)


def rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color, alpha: float = 1.0) -> None:
    """Axis-aligned rectangle with exact area coverage on its edges."""
    g = _grid(img, x0, y0, x1, y1)
    if g is None:
        return
    box, xs, ys = g
    cx = np.clip(np.minimum(xs + 0.5, x1) - np.maximum(xs - 0.5, x0), 0.0, 1.0)
    cy = np.clip(np.minimum(ys + 0.5, y1) - np.maximum(ys - 0.5, y0), 0.0, 1.0)
    blend(img, box, cy * cx * alpha, color)


def glow(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: Color, strength: float) -> None:
    """Additive radial light falling off as (1 - r^2)^2 (fire light on the ground)."""
    g = _grid(img, cx - rx, cy - ry, cx + rx, cy + ry)
    if g is None or strength <= 0:
        return
    box, xs, ys = g
    q = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    add_light(img, box, strength * np.clip(1.0 - q, 0.0, 1.0) ** 2, color)


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cell: float) -> np.ndarray:
    """Value noise in [-1, 1]: random values on a coarse grid, bilinearly upsampled (cell = grid step in px)."""
    h, w = shape
    gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
    coarse = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    ys = np.arange(h, dtype=np.float32) / cell
    xs = np.arange(w, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no grid creases
    a = coarse[y0][:, x0]
    b = coarse[y0][:, x0 + 1]
    c = coarse[y0 + 1][:, x0]
    d = coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def texture(rng: np.random.Generator, shape: Tuple[int, int], base: Color, cells: Sequence[Tuple[float, float]],
            grain: float, tint: Optional[Color] = None) -> np.ndarray:
    """A float32 (H, W, 3) surface: base colour modulated by octaves of value noise (cell px, amplitude) and grain."""
    h, w = shape
    lum = np.zeros((h, w), np.float32)
    for cell, amp in cells:
        lum += amp * smooth_noise(rng, shape, max(cell, 1.0))
    lum += rng.normal(0.0, grain, size=(h, w)).astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    out[:] = np.asarray(base, np.float32)
    out += lum[..., None]
    if tint is not None:  # a second, independent noise field shifting hue (patchy grass, stains)
        out += smooth_noise(rng, shape, max(cells[0][0], 1.0))[..., None] * np.asarray(tint, np.float32)
    return out
