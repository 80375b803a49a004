"""Reading the files a user hands vadpipe: one-line reasons, never a traceback or unsafe advice.

- :func:`read_array`: a ``.npy`` array (optionally memory-mapped). An empty, truncated, pickled,
  text or ``.npz`` file, a folder or a missing file is one error naming the file and the cause.
  vadpipe reads plain arrays only: Python objects are refused, never unpickled.
- :func:`check_finite`: refuse features that hold NaN or inf (one pass, no copy: memory maps
  stay cheap).
- :func:`read_text`: a UTF-8 text file; bytes that do not decode are ``not UTF-8 text``.

Each takes the error class to raise (for arrays ``FeatureStoreError`` by default), so
ground-truth, score and configuration callers raise their own family.
"""
from __future__ import annotations

import os
from typing import Optional, Type

import numpy as np

from .errors import FeatureStoreError, VadpipeError

NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def os_reason(exc: OSError) -> str:
    """The OS's words for an OSError ("No such file or directory"), without the errno and path."""
    return exc.strerror or str(exc)


def _array_reason(path: str | os.PathLike, exc: BaseException) -> str:
    """Why ``np.load`` failed on ``path``, in a few words a user can act on."""
    if isinstance(exc, OSError):
        return os_reason(exc)
    message = str(exc)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
    except OSError as err:
        return os_reason(err)
    if size == 0:
        return "empty file"
    if head.startswith(_ZIP_MAGIC):
        return "a .npz archive, not a .npy array"
    if head != NPY_MAGIC:
        return "not a .npy file"
    if "object" in message.lower() or "pickle" in message.lower():
        return "holds Python objects; vadpipe reads plain arrays only"
    if isinstance(exc, EOFError) or "EOF" in message or "Failed to read all data" in message \
            or "mmap length" in message or "reshape" in message:
        return "truncated"
    return f"damaged .npy ({message.splitlines()[0] if message else type(exc).__name__})"


def read_array(path: str | os.PathLike, mmap: bool = False, *, what: str = "features",
               error: Type[VadpipeError] = FeatureStoreError, finite: bool = False) -> np.ndarray:
    """The array stored in the ``.npy`` file ``path`` (read-only memory map with ``mmap``).

    Any failure is ``error(f"{path}: cannot read {what} ({reason})")``: a missing file or a folder
    (the OS's words), ``empty file``, ``truncated``, ``holds Python objects``, ``not a .npy array``.
    ``finite``: also refuse NaN or inf (:func:`check_finite`).
    """
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise error(f"{path}: cannot read {what} ({_array_reason(path, exc)})") from None
    if not isinstance(array, np.ndarray):          # np.load opened a .npz archive
        getattr(array, "close", lambda: None)()
        raise error(f"{path}: cannot read {what} (a .npz archive, not a .npy array)")
    if finite:
        check_finite(array, path, what=what, error=error)
    return array


def check_finite(array: np.ndarray, path: str | os.PathLike, *, what: str = "features",
                 error: Type[VadpipeError] = FeatureStoreError) -> None:
    """``error(f"{path}: {what} hold NaN or inf")`` when any value of ``array`` is not finite.

    One float64 sum streams through the array (a memory map is read once, nothing the array's size
    is allocated): a finite float32/float16 array cannot overflow it, and any NaN or inf carries into
    it. Only a non-finite sum (or a float64 array of huge values) is looked at value by value."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return                                     # integers and booleans are always finite
    if array.dtype.kind == "f" and np.isfinite(np.sum(array, dtype=np.float64)):
        return
    array = np.atleast_1d(array)
    rows = max(1, (1 << 22) // max(1, array[0].size))       # about 4 M values at a time
    for start in range(0, len(array), rows):
        if not np.isfinite(array[start:start + rows]).all():
            raise error(f"{path}: {what} hold NaN or inf")


def read_text(path: str | os.PathLike, *, error: Type[VadpipeError], what: str = "text",
              encoding: str = "utf-8", newline: Optional[str] = None) -> str:
    """The text of ``path`` (``newline`` as ``open`` takes it: None turns \\r\\n and \\r into \\n).

    ``error(f"{path}: cannot read {what} ({reason})")`` when the OS refuses it,
    ``error(f"{path}: not UTF-8 text (byte 0x.. on line N)")`` when its bytes do not decode."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({os_reason(exc)})") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} on line {line})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if newline is None else text
