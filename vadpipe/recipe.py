"""The feature recipe: everything that decides what a feature vector means.

It is written next to the features (``recipe.json``), copied into every
checkpoint and used by ``score`` to extract new video exactly as the training
features were made. Two recipes that differ in any field that changes the
features are incompatible, and the mismatch is refused with an explanation.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import __version__, atomic
from .errors import ConfigError, RecipeMismatchError
from .readers import read_text

RECIPE_FILE = "recipe.json"

# Fields that do not change the feature values, so they never cause a mismatch.
_INFORMATIONAL = ("vadpipe_version", "storage_dtype")

# Recorded fields with one value only: what the decoder and the snippets (vadpipe/video.py) produce, frames
# in RGB order and the last partial snippet padded by repeating its last frame. Another value would be
# recorded but not applied (score would extract RGB, repeat-last, and claim to follow the recipe), so a
# Recipe holding one is refused wherever it is made or read. field -> (allowed values, what vadpipe does).
APPLIED = {"channel_order": (("RGB",), "decodes frames as RGB and feeds them so"),
           "tail": (("repeat-last",), "pads the last partial snippet by repeating its last frame"),
           "resize": (("bilinear-antialias",), "resizes decoded frames bilinearly with antialiasing "
                                              "(extractors/transforms.py)")}
# Applied fields recorded after recipe ids were fixed: their one value is implied by every id, so they stay
# out of it (features extracted before they were recorded keep their ids and caches).
_IMPLIED = ("resize",)


@dataclass(frozen=True)
class Recipe:
    backbone: str                      # registry name, e.g. "i3d-r50", "i3d-inception"
    weights_sha256: Optional[str]      # sha256 of the weight file; None = random init (tests only)
    feature_dim: int                   # D
    fps: str = "native"                # "native" or a resampling rate such as "25"
    resize_short_side: int = 256       # frames resized so the short side is this many pixels
    crop: str = "center"               # "none" (whole frame), "center" (1 crop), "ten" (TenCrop order) or
                                       # "mirror" (whole frame, then its mirror image)
    crop_size: int = 224               # 0 with crop "none" or "mirror"
    value_range: Tuple[float, float] = (0.0, 1.0)   # pixel range before mean/std
    mean: Tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: Tuple[float, float, float] = (0.225, 0.225, 0.225)
    channel_order: str = "RGB"        # the only order vadpipe produces (APPLIED)
    snippet_len: int = 16
    stride: int = 16
    tail: str = "repeat-last"          # last partial snippet padded by repeating its last frame (the only one)
    resize: str = "bilinear-antialias"  # the short-side resize's interpolation (the only one; APPLIED, _IMPLIED)
    compute_dtype: str = "float32"     # precision of the backbone forward pass
    storage_dtype: str = "float32"     # dtype of the stored .npy files
    vadpipe_version: str = __version__
    extra: Tuple[Tuple[str, Any], ...] = field(default_factory=tuple)  # backbone-specific knobs
    # "" = one vector per crop (the backbone's global mean); "RxC" = the backbone's last feature map,
    # averaged over time, pooled to an R x C grid of regions, each region stored as one "crop"
    # (row-major): for fixed cameras, where an event fills a part of the view, not the whole of it.
    regions: str = ""
    # () = one vector per crop: the backbone's own features; ((name, dim), ...) = the space-time means of
    # those endpoints of the network, side by side in that order (D = the sum of their dims): a mid-level
    # map keeps detail the last one pools away, which the normal statistics can use (model.normal_layer).
    layers: Tuple[Tuple[str, int], ...] = ()
    # "" = pixels as decoded; "mean" = each snippet's pixels times one gain that brings the snippet's mean
    # level to the level the normalisation maps to the recipe's mean (within LIGHT_GAIN_RANGE), so a
    # camera's light level (dusk, a closed iris) moves the features less; "running" = that gain from the
    # video's level so far (its last LIGHT_WINDOW snippets): see extractors/transforms.py.
    light: str = ""

    def __post_init__(self) -> None:
        for name, (allowed, how) in APPLIED.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"recipe {name} {value!r} cannot be produced: vadpipe {how} "
                                  f"({name} {' or '.join(map(repr, allowed))}), so features of that recipe could "
                                  "not be extracted or matched")

    @property
    def input_crops(self) -> int:
        """Clips a snippet makes before the backbone."""
        return {"ten": 10, "mirror": 2}.get(self.crop, 1)

    @property
    def region_grid(self) -> Optional[Tuple[int, int]]:
        return parse_regions(self.regions)

    @property
    def layer_spans(self) -> Dict[str, Tuple[int, int]]:
        """{endpoint: (start, stop)} of each stored layer within the D features ({} without layers)."""
        spans, start = {}, 0
        for name, dim in self.layers:
            spans[name] = (start, start + dim)
            start += dim
        return spans

    @property
    def num_crops(self) -> int:
        """Feature vectors a snippet gets (the C of (T, C, D))."""
        grid = self.region_grid
        return grid[0] * grid[1] * self.input_crops if grid else self.input_crops

    def _plain_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["value_range"] = [float(x) for x in self.value_range]     # as from_dict reads them: the same id
        out["mean"] = [float(x) for x in self.mean]
        out["std"] = [float(x) for x in self.std]
        out["extra"] = {k: v for k, v in self.extra}
        out["layers"] = [[name, dim] for name, dim in self.layers]
        return out

    def to_dict(self) -> dict:
        out = self._plain_dict()
        out["recipe_id"] = self.recipe_id
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        """The Recipe a stored dict describes (recipe.json, a checkpoint's ``recipe``). Refused with a
        one-line ConfigError (callers name the file): not a dict, a required field missing, a field of the
        wrong type, a field this vadpipe does not know (a newer vadpipe's: its features may differ in it), a
        stored ``recipe_id`` that is not the id of the fields (edited, or read differently here)."""
        if not isinstance(data, dict):
            raise ConfigError(f"not a recipe (a {_kind(data)}, not a mapping of its fields)")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in fields and k != "recipe_id")
        if unknown:
            made_by = data.get("vadpipe_version")
            made_by = f" {made_by}" if isinstance(made_by, str) and made_by != __version__ else ""
            raise ConfigError(f"recipe field(s) {', '.join(unknown)} unknown to vadpipe {__version__} (made by a newer "
                              f"vadpipe{made_by}? such a field may change the features, so the recipe is not read "
                              "without it)")
        missing = [name for name, f in fields.items() if name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"recipe without {', '.join(missing)}")
        kwargs = {k: v for k, v in data.items() if k != "recipe_id"}
        hints = typing.get_type_hints(cls)
        readers = {"value_range": _numbers, "mean": _numbers, "std": _numbers,
                   "extra": lambda v: tuple(sorted(dict(v).items())),
                   "layers": lambda v: tuple((str(name), _integer(dim)) for name, dim in v)}
        for key, read in readers.items():
            if key in kwargs:
                try:
                    kwargs[key] = read(kwargs[key])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"recipe field {key!r} malformed ({exc})") from None
        for key, value in kwargs.items():
            expected = _SCALARS.get(hints[key])
            if expected is not None and not (isinstance(value, expected[0]) and not isinstance(value, bool)
                                             or key == "fps" and type(value) in (int, float)):
                raise ConfigError(f"recipe field {key!r}: expected {expected[1]}, got {value!r}")
        recipe = cls(**kwargs)
        stored = data.get("recipe_id")
        if stored is not None and stored != recipe.recipe_id:
            raise ConfigError(f"recipe_id {stored!r} is not the id of the recipe's fields ({recipe.recipe_id}): "
                              "edited by hand, or made by a vadpipe that reads its fields differently")
        return recipe

    def _feature_fields(self) -> dict:
        d = self._plain_dict()  # not to_dict(): that needs recipe_id, which needs these fields
        for key in _INFORMATIONAL + _IMPLIED:
            d.pop(key, None)
        if not d.get("regions"):
            d.pop("regions", None)     # recipes without regions keep the ids they had before the field
        if not d.get("layers"):
            d.pop("layers", None)      # likewise without layers
        if not d.get("light"):
            d.pop("light", None)       # likewise without light normalisation
        return d

    @property
    def recipe_id(self) -> str:
        """Short stable hash of the fields that change the features."""
        payload = json.dumps(self._feature_fields(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    def differences(self, other: "Recipe") -> list[str]:
        """Human-readable list of the feature-changing fields where ``other`` differs."""
        mine, theirs = self._feature_fields(), other._feature_fields()
        # both sides' keys: a field left out when empty (regions, layers, light) still differs from a set one
        return [f"{k}: {mine.get(k)!r} vs {theirs.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]

    def require_match(self, other: "Recipe", what: str, other_what: str, hint: str = "") -> None:
        """Raise RecipeMismatchError naming every differing field (see ``check_compatible``)."""
        check_compatible(self, other, what, other_what, hint)

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)


# a field's type -> (the Python types a stored value may take, how a message names it); fps may be a number
_SCALARS = {str: (str, "text"), int: (int, "an integer"), Optional[str]: ((str, type(None)), "text or null")}


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _numbers(values: Any) -> Tuple[float, ...]:
    if not isinstance(values, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in values):
        raise ValueError(f"expected a list of numbers, got {values!r}")
    return tuple(float(x) for x in values)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def parse_regions(text: str) -> Optional[Tuple[int, int]]:
    """"RxC" → (R, C); "" → None; anything else a ValueError."""
    if not text:
        return None
    rows, sep, cols = str(text).lower().partition("x")
    if not sep or not rows.isdigit() or not cols.isdigit() or int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"regions must look like 2x4 (rows x columns), got {text!r}")
    return int(rows), int(cols)


def check_compatible(expected: Optional[Recipe], found: Optional[Recipe], expected_what: str, found_what: str,
                     hint: str = "") -> List[str]:
    """The one recipe-compatibility rule (extract, features, train, eval and score all call it).

    Features are comparable only when every field that changes them is equal: a difference raises
    RecipeMismatchError naming each field (``hint`` says what to do about it). When one side has
    no recipe (RTFM list files) nothing can be checked: the returned note says so.
    """
    if expected is not None and found is not None:
        diffs = expected.differences(found)
        if diffs:
            raise RecipeMismatchError(
                f"{expected_what} and {found_what} were made with different feature recipes "
                f"({expected.recipe_id} vs {found.recipe_id}): " + "; ".join(diffs) + (f"; {hint}" if hint else ""))
        return []
    if expected is None and found is None:
        return []
    return [f"recipe not checked: {expected_what if expected is None else found_what} carries no recipe "
            "(RTFM list files)"]


def save_recipe(folder: str | Path, recipe: Recipe) -> Path:
    path = Path(folder) / RECIPE_FILE
    atomic.write_json(path, recipe.to_dict())
    return path


def load_recipe(folder_or_file: str | Path) -> Recipe:
    """The Recipe of a recipe.json (or of a folder holding one); any failure a one-line ConfigError naming
    the file: unreadable, not UTF-8, not JSON, or not a recipe this vadpipe reads (:meth:`Recipe.from_dict`)."""
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / RECIPE_FILE
    text = read_text(path, error=ConfigError, what="recipe")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: unreadable recipe (not JSON: {exc})") from None
    try:
        return Recipe.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
