"""Backbone registry: each backbone carries its own preprocessing config (as timm's pretrained_cfg).

Contract used by the rest of vadpipe:

    backbone = create_backbone("i3d-inception", weights=None | "random" | PATH, device="cpu")
    backbone.module      # nn.Module, eval mode: (B, 3, T, H, W) preprocessed float -> (B, D)
    backbone.config      # BackboneConfig (input range, mean/std, sizes, feature dim)
    backbone.weights_sha256   # sha256 of the weight file used, None for random init

``weights=None`` means the backbone's default weights (cached/packaged); a
missing file raises ``WeightsError`` with a one-line, actionable message.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from vadpipe.errors import ConfigError, WeightsError


@dataclass(frozen=True)
class BackboneConfig:
    name: str
    feature_dim: int
    value_range: Tuple[float, float]          # pixel range the network expects before mean/std
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    crop_size: int = 224
    resize_short_side: int = 256
    min_frames: int = 8
    snippet_len: int = 16
    weights_source: str = ""                  # where default weights come from, for `vadpipe backbones`
    # (endpoint, dim) the backbone can store with ``--layers`` (its ``forward_layers``), network order
    layers: Tuple[Tuple[str, int], ...] = ()
    description: str = ""
    # (compute dtype, clips per forward pass on CPU): the fastest pass size measured on the 2-core reference
    # CPU, used unless a run asks for another (``vadpipe extract --clips-per-forward``). Fixed, not tuned on
    # timing: the pass size moves a clip's features in float32's last digits (2e-6 for Inception I3D), so a
    # size chosen by the clock made features, and every head trained on them, depend on the machine's load.
    cpu_passes: Tuple[Tuple[str, int], ...] = ()

    def cpu_clips_per_forward(self, compute_dtype: str) -> int:
        """Clips per forward pass on CPU for ``compute_dtype`` (1 where none was measured)."""
        return dict(self.cpu_passes).get(compute_dtype, 1)


@dataclass
class Backbone:
    module: nn.Module
    config: BackboneConfig
    weights_sha256: Optional[str]
    weights_path: Optional[Path]


@dataclass(frozen=True)
class BackboneEntry:
    config: BackboneConfig
    # (weights: None | "random" | path, device) -> Backbone
    factory: Callable[[Union[None, str, Path], torch.device], Backbone]
    # path of the default weights when they are available locally, else None
    default_weights: Callable[[], Optional[Path]]


_REGISTRY: Dict[str, BackboneEntry] = {}


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    if entry.config.name in _REGISTRY:
        raise ValueError(f"backbone {entry.config.name!r} registered twice")
    _REGISTRY[entry.config.name] = entry
    return entry


def list_backbones() -> Dict[str, BackboneEntry]:
    return dict(_REGISTRY)


def get_entry(name: str) -> BackboneEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def create_backbone(name: str, weights: Union[None, str, Path] = None,
                    device: Union[str, torch.device] = "cpu") -> Backbone:
    entry = get_entry(name)
    try:
        backbone = entry.factory(weights, torch.device(device))
    except WeightsError as exc:
        here = [other for other, e in sorted(_REGISTRY.items()) if other != name and e.default_weights()]
        if weights is not None or not here:
            raise
        # offline without this backbone's default weights: say which backbone would run as installed
        raise WeightsError(f"{exc}; or use a backbone whose weights are here: --backbone {here[0]} "
                           "(`vadpipe backbones` lists them)") from None
    backbone.module.eval()
    return backbone
