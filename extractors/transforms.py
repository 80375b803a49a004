"""Snippet preprocessing on tensors, batched: uint8 RGB frames in, backbone input out.

The steps and their exact rules (they are part of the feature recipe):

1. **Short-side resize** (skipped when the short side already equals
   ``recipe.resize_short_side``): bilinear with antialiasing on the uint8
   frames (torchvision ``resize``); the long side becomes
   ``round(long * short_side / short)`` (``vadpipe.video.short_side_size``).
2. **Crop** of ``recipe.crop_size`` pixels square:
   * ``none``: no crop, the whole resized frame (its aspect ratio kept; the
     backbones pool over any spatial size). Surveillance events happen anywhere
     in the view, and a centre crop of a 16:9 frame drops almost half of it;
   * ``center``: top = ``round((H - size) / 2)``, left likewise (torchvision ``center_crop``);
   * ``ten``: torchvision's ``TenCrop`` order -- 0 top-left, 1 top-right,
     2 bottom-left, 3 bottom-right, 4 center, then 5-9 the same five crops taken
     from the horizontally flipped frames (so crop 5 is the mirror image of
     the region of crop 1, crop 6 of crop 0, and so on; 9 mirrors 4);
   * ``mirror``: two views, 0 the whole resized frame (as ``none``) and 1 its
     horizontal mirror image: the whole-frame analogue of ten-crop's flipped
     views, for fixed cameras whose events can lie anywhere in the view.
3. **Light** (``recipe.light``; none by default): with ``mean``, every pixel of
   a snippet is multiplied by one gain ``g = target / m``, where ``m`` is the
   snippet's mean pixel value over its frames, channels and the whole resized
   frame (before the crop, so all crops of a snippet share one gain) and
   ``target`` the pixel value that step 4 maps to the recipe's mean (127.5 on
   [-1, 1] with mean 0; 114.75 for mean 0.45 on [0, 1]); ``g`` is kept within
   ``LIGHT_GAIN_RANGE`` and the product clipped to [0, 255], as a camera's
   exposure would. A darker or brighter scene then reaches the backbone at
   the level it was trained on. With ``running``, ``m`` is instead the mean
   pixel value of the video *so far*: the real frames of its last
   ``LIGHT_WINDOW`` snippets, this one included. It is applied where the
   video is cut into snippets (:func:`light_snippets`, on the decoded uint8
   frames, rounded back to uint8), since it needs the snippets before this
   one: a darker camera is still brought to the backbone's level, while the
   light changes *inside* a clip (a person in dark clothes, a fire, a
   headlight) are kept, which a gain of each snippet's own levels away; and
   being causal, ``extract``, ``score`` and ``watch`` apply it alike.
4. **Value range and normalisation**: ``v = lo + (hi - lo) * pixel / 255``
   with ``(lo, hi) = recipe.value_range``, then ``(v - mean[c]) / std[c]``
   per RGB channel, in float32.

Frames that a decoder already resized (``VideoReader(short_side=...)``) skip
step 1 and carry that decoder's interpolation instead, which gives slightly
different pixels: decode at native size to keep this module's rule.

``preprocess`` returns (N * C, 3, T, size, size), snippet-major: all C crops of
snippet 0, then those of snippet 1, and so on; with ``none``, (N, 3, T, H, W)
of the resized frame.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from vadpipe.errors import ConfigError
from vadpipe.recipe import Recipe
from vadpipe.video import short_side_size  # the decoder's rule, so both resize paths agree on sizes


def resize_short_side(frames: torch.Tensor, short_side: int) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> same with the short side resized (bilinear, antialiased)."""
    height, width = frames.shape[-2:]
    if min(height, width) == short_side:
        return frames
    new_width, new_height = short_side_size(width, height, short_side)
    size = (new_height, new_width)
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    if flat.dtype == torch.uint8:
        # torchvision has a fast uint8 path (no float copy of full-size frames)
        from torchvision.transforms.v2.functional import resize
        out = resize(flat, list(size), antialias=True)
    else:
        out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *out.shape[-3:])


CROP_MODES = ("none", "center", "ten", "mirror")
WHOLE_FRAME_MODES = ("none", "mirror")     # no crop box: crop_size 0, the resized frame's size


def crop_boxes(height: int, width: int, size: int, mode: str) -> List[Tuple[int, int, bool]]:
    """(top, left, flipped) of each crop, in output order; for flipped crops, ``left`` is in the
    coordinates of the flipped frame. Square crops only: ``none`` has no box."""
    if mode not in ("center", "ten"):
        raise ConfigError(f"no crop boxes for crop mode {mode!r} (center, ten)")
    if size > height or size > width:
        raise ConfigError(f"crop {size} is larger than the resized frame {height}x{width}")
    center = (int(round((height - size) / 2.0)), int(round((width - size) / 2.0)))
    if mode == "center":
        return [(*center, False)]
    five = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), center]
    return [(t, l, False) for t, l in five] + [(t, l, True) for t, l in five]


def crop(frames: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(..., 3, H, W) -> (C, ..., 3, size, size) in the documented order; ``none``: (1, ..., 3, H, W),
    ``mirror``: (2, ..., 3, H, W)."""
    if mode == "none":
        return frames.unsqueeze(0)
    if mode == "mirror":
        return torch.stack([frames, frames.flip(-1)])
    height, width = frames.shape[-2:]
    boxes = crop_boxes(height, width, size, mode)
    flipped = frames.flip(-1) if any(f for _, _, f in boxes) else None
    return torch.stack([(flipped if f else frames)[..., t:t + size, l:l + size] for t, l, f in boxes])


LIGHT_MODES = ("", "mean", "running")
LIGHT_GAIN_RANGE = (1.0 / 8.0, 8.0)   # three stops either way: a black frame is not amplified without bound
# ``running``'s memory, in snippets: 64 x 16 frames is about 100 s at 10 fps, 40 s at 25 fps; a camera's
# light over minutes, longer than most events (Ped1's clips and the demo's are shorter: there it is the
# clip so far). Part of the mode's rule, so not a setting: recipes name the mode, and another window would
# be another mode. It lags a fade: docs/localisation.md, "The light of the video so far".
LIGHT_WINDOW = 64


def light_target(recipe: Recipe) -> float:
    """The pixel value (0-255) that normalisation maps to the recipe's mean (averaged over channels)."""
    lo, hi = recipe.value_range
    return 255.0 * (sum(recipe.mean) / len(recipe.mean) - lo) / (hi - lo)


def check_light(light: str) -> None:
    """ConfigError for a light normalisation this module does not know (make_recipe and recipes read back
    from disk both meet this one rule)."""
    if light not in LIGHT_MODES:
        raise ConfigError(f"unknown light normalisation {light!r} (mean, running, or none)")


def light_gains(frames: torch.Tensor, recipe: Recipe) -> Optional[torch.Tensor]:
    """uint8 (N, ...) snippets -> (N,) float32 gains of ``recipe.light`` "mean" (None otherwise: no light
    normalisation, or ``running``, which :func:`light_snippets` applied before)."""
    check_light(recipe.light)
    if recipe.light != "mean":
        return None
    # summed in place of a reshape, which would copy the permuted frames first
    level = frames.sum(dim=tuple(range(1, frames.dim())), dtype=torch.float64) / frames[0].numel()
    gains = light_target(recipe) / level.clamp(min=1e-6)
    return gains.clamp(*LIGHT_GAIN_RANGE).to(torch.float32)


def light_snippets(snippets: Iterable, recipe: Recipe, window: int = LIGHT_WINDOW) -> Iterator:
    """A video's snippets (``vadpipe.video.Snippet``, in order) as they are, or with ``recipe.light``
    "running" each one's frames times ``target / m``, ``m`` the mean pixel value of the real frames of the
    last ``window`` snippets (this one included), within ``LIGHT_GAIN_RANGE``, rounded and clipped to uint8."""
    check_light(recipe.light)
    if recipe.light != "running":
        yield from snippets
        return
    target = light_target(recipe)
    recent: deque = deque(maxlen=window)          # (pixel sum, pixel count) of each snippet's real frames
    for snippet in snippets:
        real = snippet.frames[:max(1, snippet.valid)]
        recent.append((float(real.sum(dtype=np.float64)), real.size))
        level = sum(t for t, _ in recent) / sum(n for _, n in recent)
        gain = float(np.clip(target / max(level, 1e-6), *LIGHT_GAIN_RANGE))
        lit = np.rint(snippet.frames.astype(np.float32) * np.float32(gain))
        yield dataclasses.replace(snippet, frames=np.clip(lit, 0, 255, out=lit).astype(np.uint8))


def normalize(frames: torch.Tensor, recipe: Recipe, gains: Optional[torch.Tensor] = None) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> float32 scaled to recipe.value_range, then (v - mean) / std per channel;
    ``gains`` (B,): each clip's pixels multiplied by its gain and clipped to [0, 255] first."""
    lo, hi = recipe.value_range
    mean = torch.tensor(recipe.mean, dtype=torch.float32, device=frames.device)  # frames may be on a GPU
    std = torch.tensor(recipe.std, dtype=torch.float32, device=frames.device)
    # one fused multiply-add per element: v = pixel * scale + offset
    scale = ((hi - lo) / 255.0) / std
    offset = (lo - mean) / std
    shape = (3, 1, 1, 1)
    pixels = frames.to(torch.float32)
    if gains is not None:           # in place: ``pixels`` is this function's own float copy
        pixels.mul_(gains.to(pixels.device).view(-1, 1, 1, 1, 1)).clamp_(0.0, 255.0)
    return pixels * scale.view(shape) + offset.view(shape)


def preprocess(frames: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) RGB snippets -> float32 (N * C, 3, T, h, w), snippet-major
    (h = w = crop size, or the resized frame with crop ``none`` or ``mirror``)."""
    if frames.dim() != 5 or frames.shape[-1] != 3:
        raise ConfigError(f"expected uint8 frames (N, T, H, W, 3), got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ConfigError(f"expected uint8 frames, got {frames.dtype}")
    n, t = frames.shape[:2]
    x = resize_short_side(frames.permute(0, 1, 4, 2, 3), recipe.resize_short_side)   # (N, T, 3, H, W)
    gains = light_gains(x, recipe)                                                    # (N,) or None
    x = crop(x, recipe.crop_size, recipe.crop)                                        # (C, N, T, 3, h, w)
    x = x.permute(1, 0, 3, 2, 4, 5).reshape(n * recipe.input_crops, 3, t, *x.shape[-2:])
    if gains is not None:
        gains = gains.repeat_interleave(recipe.input_crops)                           # snippet-major, as x
    return normalize(x, recipe, gains)
