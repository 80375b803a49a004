"""How a config field's value is read: the one typing that YAML files, checkpoints' stored configs and
``--set`` text share (``lr: 1e-4``, which YAML reads as text, is a number; ``lr: x`` is an error saying
what was expected), and how a value of the wrong shape is named in a message."""
from __future__ import annotations

import numbers
import typing
from typing import Any, Optional, Tuple

SEED_LIMIT = 2 ** 32      # seeds lie in [0, 2**32): numpy's SeedSequence and torch.manual_seed take every one
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_NONE = ("none", "null", "")


def field_value(hint: Any, value: Any) -> Any:
    """``value`` as a value of the field type ``hint``: the one typing of config fields, for YAML
    files, checkpoints' stored configs and ``--set`` text alike. Text is parsed (``"1e-4"``, ``"true"``,
    ``"512,32"``, ``"none"`` for an optional field); a YAML number or list is checked. A value that is not
    of the type is a ValueError naming what was expected (``expected a number, got 'x'``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:             # Optional[X]
        if value is None or isinstance(value, str) and value.strip().lower() in _NONE:
            return None
        return field_value(next(a for a in args if a is not type(None)), value)
    if origin in (tuple, Tuple):                                   # Tuple[X, ...] or Tuple[X, Y]
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        elif not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        if Ellipsis in args:
            return tuple(field_value(args[0], item) for item in value)
        if len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} values, got {list(value)!r}")
        return tuple(field_value(a, item) for a, item in zip(args, value))
    word = value.strip() if isinstance(value, str) else value
    flag = isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"   # numpy too
    if hint is bool:
        if flag:
            return bool(value)
        if isinstance(value, (str, numbers.Integral)) and str(word).lower() in _TRUE + _FALSE:
            return str(word).lower() in _TRUE
        raise ValueError(f"expected true or false, got {word!r}")
    if hint is int:
        if isinstance(value, numbers.Integral) and not flag:
            return int(value)
        if isinstance(value, numbers.Real) and not flag and float(value).is_integer():
            return int(value)
        return _parsed(int, word, "an integer")
    if hint is float:
        if isinstance(value, numbers.Real) and not flag:
            return float(value)
        return _parsed(float, word, "a number")
    if hint is str:
        if isinstance(value, str):
            return word
        quote = f" (quote it: '{value}')" if isinstance(value, numbers.Real) and not flag else ""
        raise ValueError(f"expected text, got {value!r}{quote}")     # YAML reads 2024 and 1:30 as numbers
    return value


def seed_problem(value: Any) -> Optional[str]:
    """What is wrong with ``value`` as a seed (the run's ``train.seed``, ``--seed`` options), or None: the
    one range check, so a negative or oversized seed is a line naming it, not numpy's or torch's traceback."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT:
        return None
    return f"must be an integer in [0, 2**32), got {value!r}"


def _parsed(kind: type, word: Any, expected: str) -> Any:
    """Text ``word`` read as ``kind`` (int or float); anything else a ValueError saying what was expected."""
    if isinstance(word, str):
        try:
            return kind(word)
        except ValueError:
            pass
    raise ValueError(f"expected {expected}, got {word!r}")


def shown(value: Any) -> str:
    """How a value of the wrong shape is named in a message: its YAML kind and, when short, itself."""
    kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "nothing"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text}" if value is not None and len(text) <= 40 else kind
