"""Weight files: identity (sha256), the cache folder, and safe loading.

Nothing here unpickles arbitrary objects: PyTorch files go through
``torch.load(weights_only=True)`` and the Flax pickle of the Inception weights
through an unpickler that admits numpy arrays and dtypes only.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping

import numpy as np
import torch

from vadpipe.errors import WeightsError

CACHE_ENV = "VADPIPE_CACHE"


def cache_dir() -> Path:
    """Where converted weights are kept: $VADPIPE_CACHE, else ~/.cache/vadpipe (XDG_CACHE_HOME honoured)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vadpipe"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(state: Dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names and float32 values, in name order: what a converted copy holds, whatever
    file it was saved in (a file's own claim about its source is checked against this)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: weight file {path} does not exist")
    return path


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Seed torch's CPU generator for a random init without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- PyTorch files ------------------------------------------------------------
def torch_load(path: Path) -> Any:
    """torch.load(weights_only=True) with failures told as one-line WeightsErrors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise WeightsError(f"{path}: not a readable PyTorch checkpoint (not a zip or pickle file)") from None
        raise WeightsError(f"{path}: refused to unpickle {found.group(1)} (only plain tensor checkpoints are "
                           "loaded; save the state dict alone with torch.save(model.state_dict(), FILE))") from None
    except Exception as exc:  # zip/pickle/IO errors: not a readable checkpoint
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def state_dict_from(obj: Any, path: Path, keys: tuple = ("model_state", "state_dict")) -> Dict[str, torch.Tensor]:
    """The state dict in a loaded checkpoint: the object itself or one nested under one of ``keys``
    (pytorchvideo's model zoo stores ``{"model_state": ...}``)."""
    if isinstance(obj, Mapping):
        for key in keys:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors (optionally under {' or '.join(keys)})")
    return dict(obj)


def load_torch_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    return state_dict_from(torch_load(path), path)


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: Any) -> None:
    """load_state_dict(strict=True), with the mismatch told in one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {what} (e.g. {v[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatches", wrong)) if v]
        raise WeightsError(f"{path}: weights do not fit the network: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)


# --- the Flax pickle ----------------------------------------------------------------
def _reconstruct():
    try:  # numpy >= 2 moved the implementation; the old path still pickles as numpy.core
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


MAX_NESTING = 64          # the Flax checkpoint nests 5 deep

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits ndarray reconstruction and dtypes; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _NUMPY_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_numpy_pickle(path: Path) -> Dict[str, np.ndarray]:
    """Read a pickle of nested dicts of numeric numpy arrays; return them flat, keyed 'a/b/c'."""
    try:
        with open(path, "rb") as fh:
            tree = _NumpyOnlyUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: refused or unreadable numpy pickle ({exc})") from None
    # walked with a stack, not recursion: the C unpickler builds a dict holding itself, or one nested
    # thousands deep, without recursing, and a recursive walk would end in a RecursionError traceback
    flat: Dict[str, np.ndarray] = {}
    stack, open_dicts = [(tree, "", 0)], set()
    while stack:
        node, prefix, depth = stack.pop()
        if isinstance(node, dict):
            if id(node) in open_dicts or depth > MAX_NESTING:
                raise WeightsError(f"{path}: refused numpy pickle (nested more than {MAX_NESTING} deep, or a dict "
                                   f"holding itself, at {prefix or '/'})")
            open_dicts.add(id(node))
            for key, value in node.items():
                if not isinstance(key, str):
                    raise WeightsError(f"{path}: non-string key {key!r} at {prefix or '/'}")
                stack.append((value, f"{prefix}/{key}" if prefix else key, depth + 1))
        elif isinstance(node, np.ndarray) and node.dtype.kind in "fiu":
            flat[prefix] = node
        else:
            raise WeightsError(f"{path}: unexpected {type(node).__name__} at {prefix or '/'} (numeric arrays only)")
    return flat


# torch.save's legacy (non-zip) format opens with its magic number pickled as a long
_LEGACY_TORCH_START = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def is_torch_file(path: Path) -> bool:
    """A file torch.save wrote, in its zip format or the legacy one (anything else: another format)."""
    import zipfile

    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as fh:
        return fh.read(len(_LEGACY_TORCH_START)) == _LEGACY_TORCH_START
