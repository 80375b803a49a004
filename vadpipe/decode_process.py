"""Decode ONE clip in a child process ahead of the backbone: a decoder that crashes (a segfault in decord
or FFmpeg on a corrupt file) or hangs costs that clip, not a run over many (``vadpipe score``, ``calibrate``).

The child runs ``encode.snippet_batches`` on a reader of its own (a decoder opened before a fork does not
survive it) under a one-worker torch DataLoader, which ships the uint8 batches through shared memory,
notices a worker that dies and stops waiting after its ``timeout``; a hung worker is terminated as the
loader shuts down (a thread cannot be). The batches are the thread path's, so the features are the same.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from . import encode   # its names looked up when used: encode imports this module only inside ClipFeatures
from .decode_workers import (decode_worker_init, exit_reason, identity, is_stall, is_worker_crash, one_line,
                             stall_reason)
from .errors import VideoDecodeError
from .recipe import Recipe
from .video import VideoInfo


@dataclass(frozen=True)
class DecodedClip:
    """What the child's reader knew once the clip was decoded (``VideoReader.info`` and ``frame_times``)."""

    info: VideoInfo
    frame_times: np.ndarray


class _ClipBatches(IterableDataset):
    """("batch", uint8 tensor) items, then ("end", DecodedClip), or ("error", the exception) in their place."""

    def __init__(self, path: str, recipe: Recipe, batch_size: int):
        self.path, self.recipe, self.batch_size = path, recipe, batch_size

    def __iter__(self):
        try:
            reader = encode.reader_for(self.path, self.recipe)
            for batch in encode.snippet_batches(reader, self.recipe, self.batch_size):
                yield "batch", batch
            yield "end", DecodedClip(reader.info, np.asarray(reader.frame_times))
        except Exception as exc:   # raised again in the scoring process, as the decode thread's would be
            yield "error", _portable(exc, self.path)


def _portable(exc: Exception, path: str) -> Exception:
    """``exc`` when it survives pickling, else a VideoDecodeError that names the file and says it in one line."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return VideoDecodeError(f"{path}: {one_line(exc)}")


def _death(items, exc: BaseException) -> str:
    """How the loader's worker ended ("killed by SIGSEGV", "exit status 3"), else the loader's own words."""
    codes = [w.exitcode for w in getattr(items, "_workers", ()) if w.exitcode]   # the loader's process list
    return exit_reason(codes[0]) if codes else one_line(exc)


class DecodeProcess:
    """Iterating gives the clip's batches, decoded in a child process at most ``prefetch`` ahead; ``clip``
    is its DecodedClip once they are all through. A child that dies or gives nothing for ``timeout_s``
    (> 0) seconds is a VideoDecodeError naming the file."""

    def __init__(self, path: str, recipe: Recipe, batch_size: int, prefetch: int = encode.PREFETCH_BATCHES,
                 timeout_s: float = 0.0):
        self.path, self.timeout_s = str(path), float(timeout_s)
        self.loader = DataLoader(_ClipBatches(self.path, recipe, batch_size), batch_size=None, num_workers=1,
                                 collate_fn=identity, timeout=self.timeout_s,
                                 worker_init_fn=decode_worker_init(),
                                 prefetch_factor=max(1, prefetch))
        self.clip: Optional[DecodedClip] = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        items = iter(self.loader)
        try:
            while True:
                try:
                    kind, value = next(items)
                except StopIteration:   # the child left without its closing item (it always sends one)
                    raise VideoDecodeError(f"{self.path}: the decode process ended before the clip did") from None
                except RuntimeError as exc:
                    if is_stall(exc):
                        raise VideoDecodeError(f"{self.path}: {stall_reason(self.timeout_s)}") from None
                    if is_worker_crash(exc):
                        raise VideoDecodeError(f"{self.path}: the decoder crashed its process "
                                               f"({_death(items, exc)})") from None
                    raise
                if kind == "error":
                    raise value
                if kind == "end":
                    self.clip = value
                    return
                yield value
        finally:
            # now, not when collected: a hung decoder is terminated here (a private method of torch's loader
            # iterator; were it gone, collection still ends the worker, later; the hang test would say so)
            shutdown = getattr(items, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
