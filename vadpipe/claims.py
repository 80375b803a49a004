"""Writers of one feature folder (``vadpipe extract``): the per-shard folder lock and per-video claims.

One process per shard of a folder holds ``.extract.shard-<i>-of-<n>.lock``
(``writer_lock``); a second one on the same shard waits for it and then
resumes. Every video being written is claimed by ``.<file>.claim`` (pid, host,
run token; created atomically), so processes with different shard settings
never write the same video; a claim whose process is gone is stale and taken
over.
"""
from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .atomic import write_error


@dataclass(frozen=True)
class Owner:
    """Who writes: a process on a host, in one run (a token, so a later run of the same process differs)."""

    pid: int
    host: str
    token: str

    @classmethod
    def me(cls) -> "Owner":
        return cls(os.getpid(), socket.gethostname(), uuid.uuid4().hex[:12])

    def alive(self, me: "Owner") -> bool:
        """Whether this owner may still be writing (another host: assumed so, it cannot be checked)."""
        if self.host != me.host:
            return True
        if self.pid == me.pid:
            return self.token == me.token
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def claim_path(folder: Path, file: str) -> Path:
    return folder / f".{file}.claim"


def read_claim(path: Path) -> Optional[Owner]:
    try:
        pid, host, token = path.read_text(encoding="utf-8").split()
        return Owner(int(pid), host, token)
    except (OSError, ValueError):
        return None


def try_claim(folder: Path, file: str, me: Owner) -> Optional[Owner]:
    """Claim one video for ``me``: None when claimed, else the live owner holding it.

    The claim appears with its content in one step (hard link of a written temp file), so a reader
    never sees it half-written; a stale claim (its process gone) is removed and taken over."""
    path = claim_path(folder, file)
    tmp = folder / f".{file}.claim-{me.pid}-{me.token}"
    try:
        tmp.write_text(f"{me.pid} {me.host} {me.token}\n", encoding="utf-8")
    except OSError as exc:                # a full disk: one line naming the claim, no temp file left
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)
                return None
            except FileExistsError:
                holder = read_claim(path)
                if holder == me:          # ours already (a worker that died after claiming it)
                    return None
                if holder is not None and holder.alive(me):
                    return holder
                path.unlink(missing_ok=True)
        return read_claim(path) or me
    finally:
        tmp.unlink(missing_ok=True)


def release_claim(folder: Path, file: str, me: Owner) -> None:
    path = claim_path(folder, file)
    if read_claim(path) == me:
        path.unlink(missing_ok=True)


def live_claim(folder: Path, file: str, me: Owner) -> Optional[Owner]:
    """The live owner of another process's claim on ``file``, or None (no claim, ours, or stale)."""
    holder = read_claim(claim_path(folder, file))
    return holder if holder is not None and holder != me and holder.alive(me) else None


@contextmanager
def writer_lock(folder: Path, key: str, on_wait=lambda message: None):
    """One writer per ``key`` (a shard) of a folder: a second one waits here until the first is done.
    The lock is the kernel's (flock), so a killed holder releases it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".extract.{key}.lock"
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: single-writer use only
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            on_wait(f"waiting for {holder}, which is extracting into {folder} ({key}); "
                    f"this run resumes after it")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"vadpipe extract pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
