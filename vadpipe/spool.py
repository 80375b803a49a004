"""One video's features while they are extracted: appended to a hidden spool file block by block,
then turned into the final ``.npy`` by an atomic rename, so memory stays flat in video length."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import atomic


class FeatureSpool:
    """Appends (n, C, D) blocks to a hidden raw file; ``finish`` turns it into the final .npy atomically."""

    def __init__(self, final_path: Path, dtype: np.dtype, crops: int, dim: int):
        self.final_path = final_path
        # one spool per process: two writers of one folder never share it (claims keep them apart anyway)
        self.part_path = final_path.with_name(f".{final_path.name}.part-{os.getpid()}")
        self.dtype, self.crops, self.dim = np.dtype(dtype), crops, dim
        self.rows = 0
        self._fh = open(self.part_path, "wb")

    def append(self, block: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def finish(self) -> None:
        self._fh.close()
        row_bytes = self.crops * self.dim * self.dtype.itemsize
        step = max(1, (64 << 20) // row_bytes)
        with atomic.atomic_path(self.final_path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=(self.rows, self.crops, self.dim))
            with open(self.part_path, "rb") as raw:
                for start in range(0, self.rows, step):
                    n = min(step, self.rows - start)
                    out[start:start + n] = np.frombuffer(raw.read(n * row_bytes), dtype=self.dtype).reshape(
                        n, self.crops, self.dim)
            out.flush()
            del out
        self.part_path.unlink(missing_ok=True)

    def discard(self) -> None:
        self._fh.close()
        self.part_path.unlink(missing_ok=True)
