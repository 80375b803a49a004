"""vadpipe/backbone_pool.py: several snippets through the backbone at once, handed back in order."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from vadpipe.backbone_pool import BackbonePool, split_threads
from vadpipe.device import torch_threads
from vadpipe.errors import ConfigError
from vadpipe.watch import backbone_workers


def test_results_come_back_in_submission_order_with_at_most_workers_in_flight():
    running, most = [0], [0]
    lock = threading.Lock()

    def run(item: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05 if item % 2 == 0 else 0.005)     # odd items finish before the even one ahead of them
        with lock:
            running[0] -= 1
        return item * 10

    pool = BackbonePool(run, workers=2, threads_each=1)
    got = []
    for item in range(8):
        if pool.full:
            got += pool.ready(wait=True)
        pool.submit(item)
        assert len(pool._pending) <= 2
    while pool.busy:
        got += pool.ready(wait=True)
    pool.close()
    assert [(i, r) for i, r, _ in got] == [(i, 10 * i) for i in range(8)]
    assert most[0] == 2                                   # two ran at once, never more
    finished = [t for _, _, t in got]
    assert all(t > 0 for t in finished)


def test_an_items_error_is_raised_in_its_turn():
    def run(item: int) -> int:
        if item == 1:
            raise ValueError("bad snippet")
        return item

    pool = BackbonePool(run, workers=2, threads_each=1)
    pool.submit(0)
    pool.submit(1)
    time.sleep(0.2)                                     # both done: item 0's result is not lost to item 1's error
    assert [(i, r) for i, r, _ in pool.ready(wait=True)] == [(0, 0)]
    with pytest.raises(ValueError, match="bad snippet"):
        pool.ready(wait=True)
    pool.close()


def test_worker_threads_use_their_share_of_torch_threads():
    before = torch.get_num_threads()
    seen = []
    with torch_threads(1):
        pool = BackbonePool(lambda item: seen.append(torch.get_num_threads()), workers=2, threads_each=1)
        pool.submit(0)
        pool.ready(wait=True)
        pool.close()
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before and seen == [1]
    assert split_threads(2, 2) == 1 and split_threads(16, 2) == 8 and split_threads(1, 3) == 1


def test_workers_default_to_one_and_must_be_positive():
    assert backbone_workers(None) == 1 and backbone_workers(3) == 3
    with pytest.raises(ConfigError, match="--workers"):
        backbone_workers(0)


def test_capacity_is_work_time_over_busy_time_per_worker():
    pool = BackbonePool(lambda item: time.sleep(0.05), workers=2, threads_each=1)
    assert pool.capacity(1.0) is None                    # nothing measured yet
    for item in range(4):
        if pool.full:
            pool.ready(wait=True)
        pool.submit(item)
    while pool.busy:
        pool.ready(wait=True)
    pool.close()
    assert pool.handed == 4 and 0.19 < pool.busy_s < 0.5
    # 4 items of 0.64 s of stream each, ~0.05 s of work each on 2 workers: ~25x real time
    assert 10 < pool.capacity(4 * 0.64) <= 2 * 4 * 0.64 / 0.2
