"""One video's features while they are extracted: appended to a hidden spool file block by block,
then turned into the final ``.npy`` by an atomic rename, so memory stays flat in video length.

A write that fails (a full disk, a quota) is one ``OutputWriteError`` naming the final file
(``atomic.writing``); the spool is removed by ``discard``, which never fails."""
from __future__ import annotations

import os
import shutil
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
        with atomic.writing(self.final_path):
            self._fh = open(self.part_path, "wb")

    def append(self, block: np.ndarray) -> None:
        with atomic.writing(self.final_path):
            self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def finish(self) -> None:
        """The spool's rows as the final ``.npy`` (header, then the rows as written: what ``np.save`` writes).
        Plain writes, not a memory map: a full disk is an error here, never a SIGBUS."""
        with atomic.writing(self.final_path):
            self._fh.close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, self.crops, self.dim)}
        with atomic.atomic_path(self.final_path, suffix=".npy") as tmp:
            with open(tmp, "wb") as out, open(self.part_path, "rb") as raw:
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(raw, out, 16 << 20)
        self.part_path.unlink(missing_ok=True)

    def discard(self) -> None:
        try:
            self._fh.close()
        except OSError:          # the failed flush of a full disk: the spool goes anyway
            pass
        self.part_path.unlink(missing_ok=True)
