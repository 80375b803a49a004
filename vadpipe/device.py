"""Device and precision choice: explicit, per call, never a global default."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Iterator

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device


def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX512-BF16 or AMX (bf16 matmuls run natively, not emulated)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, compute_dtype: str) -> ContextManager:
    """Autocast for ``compute_dtype`` ('float32' → none, 'bfloat16'/'float16' → torch.autocast)."""
    if compute_dtype == "float32":
        return contextlib.nullcontext()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(compute_dtype)
    if dtype is None:
        raise ConfigError(f"unknown compute dtype {compute_dtype!r} (float32, bfloat16, float16)")
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op thread count set to ``count`` for the block, then restored. Threads started
    inside inherit it, and TorchInductor generates its kernels for it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
