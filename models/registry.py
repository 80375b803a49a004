"""The registry of anomaly heads: the one place that knows their names (as timm's ``create_model``).

A head class registers itself with ``@register_head("name")``; ``create_head(name, **cfg)`` builds it
from configuration fields (``vadpipe.config.ModelConfig``'s names), passing each constructor the
fields it takes: the config holds the fields of every head, and a head ignores the others (the
baselines have no LT/GS switches). ``list_heads()`` gives the names in registration order.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Tuple, Type

_HEADS: Dict[str, type] = {}


def register_head(name: str) -> Callable[[Type], Type]:
    """Class decorator: make the head constructible as ``create_head(name, ...)``."""
    def add(cls: Type) -> Type:
        if name in _HEADS and _HEADS[name] is not cls:
            raise ValueError(f"head {name!r} registered twice")
        _HEADS[name] = cls
        return cls
    return add


def list_heads() -> Tuple[str, ...]:
    """Registered head names, in registration order (ltgs, rtfm, mil)."""
    return tuple(_HEADS)


def head_parameters(name: str) -> List[str]:
    """The configuration fields the head ``name`` takes."""
    return [p for p in inspect.signature(head_class(name).__init__).parameters if p != "self"]


def head_class(name: str) -> type:
    try:
        return _HEADS[name]
    except KeyError:
        raise KeyError(f"unknown head {name!r}; known: {', '.join(_HEADS)}") from None


def create_head(name: str, /, **cfg: Any):
    """The head ``name`` built from the configuration fields in ``cfg`` that it takes (others ignored)."""
    taken = set(head_parameters(name))
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in taken}
    return head_class(name)(**kwargs)
