"""Named presets that fix the whole feature recipe for a backbone.

* ``rtfm``   -- short side 256, ten-crop 224, 16-frame non-overlapping snippets
  (the layout of the public RTFM-family feature sets).
* ``center`` -- short side 256, one 224 center crop, 16-frame snippets.
* ``frame``  -- short side 224, no crop: the whole frame (aspect kept), for
  surveillance views where events happen anywhere, including the edges a
  centre crop drops. Override ``resize_short_side`` to keep more detail.
* ``tiny``   -- short side 128, one 112 center crop: fast tests only.

The value range and mean/std come from the backbone (Kinetics mean 0.45 / std
0.225 on [0, 1] for ``i3d-r50``; [-1, 1] for ``i3d-inception``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from vadpipe.errors import ConfigError
from vadpipe.recipe import Recipe

from .registry import get_entry
from .transforms import CROP_MODES, WHOLE_FRAME_MODES, check_light

PRESETS: Dict[str, Dict[str, Any]] = {
    "rtfm": dict(resize_short_side=256, crop="ten", crop_size=224, snippet_len=16, stride=16),
    "center": dict(resize_short_side=256, crop="center", crop_size=224, snippet_len=16, stride=16),
    "frame": dict(resize_short_side=224, crop="none", crop_size=0, snippet_len=16, stride=16),
    "tiny": dict(resize_short_side=128, crop="center", crop_size=112, snippet_len=16, stride=16),
}
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def make_recipe(backbone: str, preset: str = "center", weights_sha256: Optional[str] = None,
                **overrides: Any) -> Recipe:
    """The Recipe for ``backbone`` under ``preset``; ``overrides`` replace single fields
    (e.g. ``compute_dtype="bfloat16"``, ``fps="25"``)."""
    config = get_entry(backbone).config
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    fields = dict(backbone=backbone, weights_sha256=weights_sha256, feature_dim=config.feature_dim,
                  value_range=tuple(config.value_range), mean=tuple(config.mean), std=tuple(config.std),
                  compute_dtype="float32", **PRESETS[preset])
    unknown = set(overrides) - set(Recipe.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
    fields.update(overrides)
    if fields["crop"] in WHOLE_FRAME_MODES:
        fields["crop_size"] = 0          # no crop: the size is the resized frame's, not a recipe field
    recipe = Recipe(**fields)
    _check(recipe, config.min_frames)
    return recipe


def _check(recipe: Recipe, min_frames: int) -> None:
    if recipe.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"unknown compute dtype {recipe.compute_dtype!r} ({', '.join(COMPUTE_DTYPES)})")
    check_light(recipe.light)
    if recipe.crop not in CROP_MODES:
        raise ConfigError(f"unknown crop mode {recipe.crop!r} ({', '.join(CROP_MODES)})")
    if recipe.crop not in WHOLE_FRAME_MODES and recipe.crop_size > recipe.resize_short_side:
        raise ConfigError(f"crop {recipe.crop_size} is larger than the short side {recipe.resize_short_side}")
    if recipe.snippet_len < min_frames:
        raise ConfigError(f"{recipe.backbone} needs snippets of at least {min_frames} frames, "
                          f"got {recipe.snippet_len}")
    if not 1 <= recipe.stride <= recipe.snippet_len:
        raise ConfigError(f"snippet stride must lie in 1..{recipe.snippet_len} (the snippet length), got "
                          f"{recipe.stride}: a longer stride leaves frames that no snippet sees")
