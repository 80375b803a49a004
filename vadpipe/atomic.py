"""Atomic file writes: a crash leaves either the whole new file or the old one, never half.

Every writer goes through ``atomic_path``: write to a temporary sibling, fsync,
then ``os.replace`` (atomic on POSIX within one filesystem). A write that fails
(a full disk, no permission) leaves no temporary file behind and is raised as
one ``OutputWriteError`` naming the file, the cause and the space left.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import OutputWriteError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    ``suffix`` keeps the extension some writers insist on (numpy adds ``.npy``).
    """
    target = Path(path)
    # the temporary name adds ~17 bytes to the target's: a name near the file system's 255-byte limit is cut
    # (on a character boundary) so that it still fits
    name = os.fsencode(target.name)
    prefix = target.name if len(name) <= 200 else os.fsdecode(name[:200].decode("utf-8", "ignore").encode())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{prefix}.", suffix=".tmp" + suffix, dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual umask-based mode
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise write_error(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Writes to ``target`` (or to files that become it) inside: an OSError is its one-line write error."""
    try:
        yield
    except OSError as exc:
        raise write_error(Path(target), exc) from exc


def write_error(target: Path, exc: BaseException) -> OutputWriteError:
    """The one-line error of a failed write to ``target``: its cause and the space left where it goes."""
    import shutil

    cause = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    try:
        free = f"; {shutil.disk_usage(target.parent).free / 2**20:.0f} MB free there"
    except OSError:
        free = ""
    return OutputWriteError(f"{target}: cannot write it ({cause}{free})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:       # torch's zip writer reports a short write (a full disk) so
            if "inline_container" not in str(exc) and "write" not in str(exc).lower():
                raise
            raise OSError(f"torch.save: {str(exc).splitlines()[0]}") from exc
