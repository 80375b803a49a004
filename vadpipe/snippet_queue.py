"""The bounded hand-over between a live stream's decoding thread and the model (``stream.SnippetStream``).

Bounded so a consumer that falls behind a live source lags by at most ``size``
snippets: the oldest are dropped and counted rather than queued without end.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Generic, Optional, TypeVar

Item = TypeVar("Item")


class SnippetQueue(Generic[Item]):
    """A bounded hand-over between the decoding thread and the model. ``put`` on a full queue
    drops the oldest snippet (``drop``) or waits for room; the end (and its error) travels last."""

    _END = object()

    def __init__(self, size: int, drop: bool, stop: threading.Event):
        self.size, self.drop, self.stop = max(1, size), drop, stop
        self.items: Deque[Item] = deque()
        self.dropped = 0
        self.error: Optional[BaseException] = None
        self.ended = False
        self._cond = threading.Condition()

    def put(self, item: Item) -> None:
        with self._cond:
            while len(self.items) >= self.size and not self.drop and not self.stop.is_set():
                self._cond.wait(0.1)
            if len(self.items) >= self.size:
                if not self.drop:       # stopped while waiting for room: the stream ends before it, not a drop
                    return
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self._cond.notify_all()

    def close(self, error: Optional[BaseException] = None) -> None:
        with self._cond:
            self.ended, self.error = True, error
            self._cond.notify_all()

    def get(self, timeout: float) -> Optional[Item]:
        """The next snippet; None when none came within ``timeout`` or the stream ended (see ``done``)."""
        with self._cond:
            if not self.items and not self.ended:
                self._cond.wait(timeout)
            if self.items:
                item = self.items.popleft()
                self._cond.notify_all()
                return item
            return None

    @property
    def done(self) -> bool:
        with self._cond:
            return self.ended and not self.items
