"""Run an iterator ahead in a thread: decoding overlaps the backbone on the single-clip path.

PyAV decodes and torch resizes with the GIL released, so one thread is enough
for the overlap (the folder driver uses worker processes instead: many videos,
see ``decode_workers``). The hand-over queue is bounded, so at most ``depth``
items wait, plus the one the producer is handing over and the one the consumer
holds: memory stays flat in clip length.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

_END = object()
_POLL_S = 0.1        # how often a blocked producer looks whether the consumer has gone


def put_until_stopped(handover, item, stop, poll_s: float = _POLL_S) -> bool:
    """Put ``item`` into the bounded queue ``handover`` (a thread's or a process's), waiting for room until
    ``stop`` is set: True once it is in, False when stopped first."""
    while not stop.is_set():
        try:
            handover.put(item, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False


class Stalled(TimeoutError):
    """The producer gave nothing for ``stall_s`` seconds (a decoder that hangs)."""


def prefetched(items: Iterable[T], depth: int = 2, name: str = "prefetch",
               stall_s: Optional[float] = None) -> Iterator[T]:
    """The items of ``items``, produced in a daemon thread at most ``depth`` ahead.

    An exception raised by the producer is raised here, after the items it
    produced before it (so a decode error reaches the caller as it would
    without the thread). Closing this generator early (break, an error in the
    consumer) stops the producer and waits for it. With ``stall_s``, waiting
    longer than that for the next item raises ``Stalled``; the producer, which
    a hung call cannot be made to leave, is told to stop and left behind (a
    daemon thread: it does not hold the process at exit).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    handover: "queue.Queue[tuple]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        return put_until_stopped(handover, entry, stop)

    def produce() -> None:
        error: Optional[BaseException] = None
        source = iter(items)
        try:
            for item in source:
                if not put((item, None)):
                    getattr(source, "close", lambda: None)()   # the consumer left: release the file now
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            error = exc
        put((_END, error))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    stalled = False
    try:
        while True:
            try:
                item, error = handover.get(timeout=stall_s)
            except queue.Empty:
                stalled = True
                raise Stalled(f"nothing from the {name} thread in {stall_s:g} s") from None
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        if not stalled:
            thread.join()
