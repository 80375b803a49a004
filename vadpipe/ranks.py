"""Who does which share, on which device, with how many threads: rank, shard and thread policy.

``--shard i/n`` (0-based) or torchrun's RANK/WORLD_SIZE: the videos, sorted by
id, are dealt round-robin, so shares are deterministic and disjoint. Under
torchrun each local rank gets its own GPU and its share of the cores.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional, Sequence

import torch

from .errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (0-based): items ``index``, ``index + count``, ... of a sorted list."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= i < n (0-based)")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4 (0-based)") from None
        return cls(index, count)

    @classmethod
    def from_env(cls, environ=os.environ) -> Optional["Shard"]:
        """RANK/WORLD_SIZE as set by torchrun (or any launcher that follows it)."""
        if "RANK" in environ and "WORLD_SIZE" in environ:
            return cls(int(environ["RANK"]), int(environ["WORLD_SIZE"]))
        return None

    def take(self, items: Sequence) -> list:
        return list(items[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_shard(option: Optional[str], environ=os.environ) -> Shard:
    """``--shard`` when given, else torchrun's environment, else everything."""
    explicit = Shard.parse(option) if option else None
    env = Shard.from_env(environ)
    if explicit is not None and env is not None and env.count > 1 and explicit != env:
        raise ConfigError(f"--shard {explicit} contradicts RANK/WORLD_SIZE {env} from the launcher; give one")
    return explicit or env or Shard()


def resolve_extract_device(name: str, environ=os.environ) -> torch.device:
    """``resolve_device`` plus torchrun's LOCAL_RANK: each local rank gets its own GPU."""
    from .device import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in environ:
        device = torch.device("cuda", int(environ["LOCAL_RANK"]) % max(1, torch.cuda.device_count()))
    return device



def _cores_per_rank(environ=os.environ) -> int:
    """This process's share of the cores: all of them, or 1/LOCAL_WORLD_SIZE under torchrun."""
    return max(1, (os.cpu_count() or 1) // max(1, int(environ.get("LOCAL_WORLD_SIZE", "1"))))


def default_workers(environ=os.environ) -> int:
    """One decode process per spare core, at most 8 (the main process runs the model)."""
    return max(1, min(8, _cores_per_rank(environ) - 1))


def default_threads(device: str, workers: int, environ=os.environ) -> int:
    """Model threads for the main process. On CPU the 3D CNN is the bottleneck by far (a decode
    worker needs a few percent of a core to keep up), so the model gets every core; on a GPU the
    main process only feeds the device and leaves the cores to the decoders."""
    cores = _cores_per_rank(environ)
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return cores if on_cpu else max(1, cores - workers)



@contextmanager
def torchrun_group(shard: Shard, environ=os.environ):
    """Under torchrun, a gloo process group (CPU collectives, on GPU ranks too) so that every rank
    waits for the others at the end and all exit with the same code: torchrun tears down the
    remaining ranks as soon as one exits non-zero, which would cut off ranks still extracting
    when another merely had a failed video. Yields None outside torchrun."""
    import torch.distributed as dist

    wanted = shard.count > 1 and "MASTER_ADDR" in environ and Shard.from_env(environ) == shard
    if not wanted or not dist.is_available() or dist.is_initialized():
        yield None
        return
    # the long timeout lets a fast rank wait for the slowest one at the final rendezvous
    dist.init_process_group("gloo", rank=shard.index, world_size=shard.count, timeout=timedelta(days=7))
    try:
        yield dist
    finally:
        dist.destroy_process_group()
