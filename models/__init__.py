"""Anomaly heads (LTGS and baselines), their losses and the dynamic label table.

Importing the package registers the heads (``ltgs``, ``rtfm``, ``mil``); build one with
``create_head(name, **cfg)`` and list them with ``list_heads()`` (see ``registry``).
"""
from . import baselines, ltgs  # noqa: F401  (registration)
from .registry import create_head, list_heads, register_head

__all__ = ["create_head", "list_heads", "register_head"]
