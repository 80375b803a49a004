"""Backbones (I3D ResNet-50, Inception I3D), their weight loaders and preprocessing.

Importing this package registers ``i3d-r50`` and ``i3d-inception``.
"""
from . import i3d_r50, inception_i3d  # noqa: F401  (registration)
from .inference import embed
from .presets import PRESETS, make_recipe
from .registry import (Backbone, BackboneConfig, BackboneEntry, create_backbone, get_entry,
                       list_backbones, register_backbone)
from .transforms import preprocess

__all__ = ["Backbone", "BackboneConfig", "BackboneEntry", "PRESETS", "create_backbone", "embed", "get_entry",
           "list_backbones", "make_recipe", "preprocess", "register_backbone"]
