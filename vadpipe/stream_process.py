"""A watched source decoded in a child process (``vadpipe watch``): a decoder that crashes (a segfault in
FFmpeg on a corrupt stream) ends the source with one line naming it and the signal, and the watch scores
what arrived, closes its events and prints its summary, where the crash used to end the whole process.

The child runs ``stream.stream_snippets`` on a FrameSource of its own and sends ("snippet", StreamSnippet,
FrameStats) items, then one ("end", StreamError or None, FrameStats), through a queue of
``QUEUE_ITEMS``: a consumer that takes its time (a file scored whole) holds the child back, and one that
drops snippets (a live source) takes them as they come, as the decoding thread's queue does. Its log lines
(reconnects, decoder errors) come through a second queue as they happen. The child ignores Ctrl-C (the watch's
clean stop sets ``stop``, which the child's source reads), stops quietly on SIGTERM (a service manager's stop
reaches every process of the group) and dies with the process (``decode_workers.die_with_parent``).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from dataclasses import replace
from typing import Callable, Iterator, Optional, Tuple

import torch

from .decode_workers import exit_reason, worker_init
from .prefetch import put_until_stopped
from .recipe import Recipe
from .stream import FrameSource, FrameStats, SourceSpec, StreamError, StreamOptions, stream_error, stream_snippets

QUEUE_ITEMS = 2           # snippets decoded ahead of the relay (the watch's own queue holds the rest)
POLL_S = 0.2              # how often a wait for the child looks at the stop and at the child itself


def _context():
    # fork: the child starts at once, without importing torch again (spawn where there is no fork)
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _child(spec: SourceSpec, recipe: Recipe, options: StreamOptions, items, logs, stop, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())   # a service manager's stop: end quietly
    worker_init(0, parent)        # one thread for the resize (the parent's run the backbone); dies with it
    source = FrameSource(spec, recipe, options, stop, logs.put)

    def send(item) -> bool:
        return put_until_stopped(items, item, stop, POLL_S)

    error: Optional[StreamError] = None
    try:
        for snippet in stream_snippets(source, recipe):
            # pixels by value: a tensor would travel as a shared-memory handle that dies with this process
            if not send(("snippet", replace(snippet, pixels=snippet.pixels.numpy()), source.stats)):
                return
    except Exception as exc:      # noqa: BLE001 - the parent prints it as the source's one line
        error = None if stop.is_set() else stream_error(exc, spec.source)
    send(("end", error, source.stats))


class StreamProcess:
    """The child decoding one source; ``items()`` relays what it sends, ``stop()`` ends it."""

    def __init__(self, spec: SourceSpec, recipe: Recipe, options: StreamOptions):
        ctx = _context()
        self.source = spec.source
        self.items_queue, self.logs, self.stop_event = ctx.Queue(QUEUE_ITEMS), ctx.Queue(), ctx.Event()
        self.process = ctx.Process(target=_child, name="vadpipe-decode", daemon=True,
                                   args=(spec, recipe, options, self.items_queue, self.logs, self.stop_event,
                                         os.getpid()))
        self.process.start()

    def _pass_logs(self, log: Callable[[str], None]) -> None:
        while True:
            try:
                log(self.logs.get_nowait())
            except queue.Empty:
                return

    def items(self, stop, log: Callable[[str], None]) -> Iterator[Tuple[str, object, FrameStats]]:
        """The child's items until its end item or ``stop``; a child that dies first is a StreamError that
        names the source and how the child ended."""
        try:
            while not stop.is_set():
                self._pass_logs(log)
                try:
                    item = self.items_queue.get(timeout=POLL_S)
                except queue.Empty:
                    if self.process.is_alive():
                        continue
                    try:                 # what it sent just before it ended may still be in the pipe
                        item = self.items_queue.get(timeout=POLL_S)
                    except queue.Empty:
                        if self.process.exitcode == 0:      # stopped by its SIGTERM before its end item
                            return
                        raise StreamError(f"{self.source}: the decoder crashed its process "
                                          f"({exit_reason(self.process.exitcode)})") from None
                if item[0] == "end":
                    yield item
                    return
                kind, snippet, stats = item
                yield kind, replace(snippet, pixels=torch.from_numpy(snippet.pixels)), stats
        finally:
            self._pass_logs(log)

    def stop(self, wait_s: float = 2.0) -> None:
        """Ask the child to stop, then end it (one stuck in a network read or a decoder is terminated)."""
        self.stop_event.set()
        self.process.join(wait_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
