"""Backbones (I3D ResNet-50, Inception I3D), their weight loaders and preprocessing."""
from .registry import (Backbone, BackboneConfig, BackboneEntry, create_backbone, get_entry,
                       list_backbones, register_backbone)

__all__ = ["Backbone", "BackboneConfig", "BackboneEntry", "create_backbone", "get_entry",
           "list_backbones", "register_backbone"]
