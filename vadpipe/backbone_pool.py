"""Several snippets through the backbone at once, each on its own thread, results in order.

`vadpipe watch --workers N` runs N passes at once with torch's threads split between them, instead
of one pass using every thread. On the quiet 2-core CPU this did *not* pay: compiled i3d-inception
took 0.31-0.33 s a clip with one 2-thread pass against 0.36-0.48 s with two 1-thread passes
(``python tools/bench_workers.py``), and a 60-s watch kept up with more capacity with 1 worker
(1.69x) than with 2 (1.41x). So the default is 1; the option stays for machines where the barrier
cost of wide passes is higher. Torch releases the GIL inside its kernels, so threads are enough.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Generic, List, Optional, Tuple, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def split_threads(threads: int, workers: int) -> int:
    """Torch intra-op threads for each of ``workers`` concurrent passes sharing ``threads``."""
    return max(1, threads // max(1, workers))


class BackbonePool(Generic[Item, Result]):
    """``run(item)`` for up to ``workers`` items at once (threads with ``threads_each`` torch threads);
    ``ready`` hands back ``(item, result, finished_at)`` in submission order (``finished_at``: the
    monotonic time the result was ready, so lag is measured at the work's end, not at pick-up)."""

    def __init__(self, run: Callable[[Item], Result], workers: int, threads_each: int):
        import torch

        self.run, self.workers = run, max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vadpipe-backbone",
                                        initializer=torch.set_num_threads, initargs=(threads_each,))
        self._pending: Deque[Tuple[Item, Future]] = deque()
        self.busy_s = 0.0          # summed seconds of the items handed back (each on its own thread)
        self.handed = 0            # items handed back

    def capacity(self, work_s: float) -> Optional[float]:
        """How many times faster than ``work_s`` (e.g. the stream time of the items handed back) the
        workers could run if never idle: ``work_s`` / (busy seconds / workers)."""
        return work_s * self.workers / self.busy_s if self.busy_s > 0 else None

    def _timed(self, item: Item) -> Tuple[Result, float, float]:
        started = time.monotonic()
        result = self.run(item)
        finished = time.monotonic()
        return result, finished, finished - started

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.workers

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def submit(self, item: Item) -> None:
        self._pending.append((item, self._pool.submit(self._timed, item)))

    def ready(self, wait: bool = False) -> List[Tuple[Item, Result, float]]:
        """The finished items at the head of the line, in order; ``wait``: at least the first (if any).
        An item's exception is raised here, in its turn."""
        out: List[Tuple[Item, Result, float]] = []
        while self._pending and (self._pending[0][1].done() or (wait and not out)):
            item, future = self._pending[0]
            if out and future.exception() is not None:
                break                         # hand over the good results before it first
            self._pending.popleft()
            result, finished, seconds = future.result()
            self.busy_s += seconds
            self.handed += 1
            out.append((item, result, finished))
        return out

    def close(self) -> None:
        """Waits for the items in flight (their results are dropped) and stops the threads."""
        self._pool.shutdown(wait=True)
        self._pending.clear()
