"""Windowed head scoring: the head sees at most W snippets at a time (flat memory, live streams).

The rule ("full-window", recorded as :data:`RULE`). Snippets are numbered
0..T-1 in the order they reach the head. Every window is W consecutive
snippets, or the whole clip when it is shorter. Snippet ``i`` is scored once,
in the window whose last snippet is ``i + lookahead``, shifted to stay inside
the clip::

    start(i) = clamp(i + lookahead - W + 1, 0, max(0, T - W)),  window = [start, start + W) ∩ [0, T)

Consequences:

- a clip of T <= W snippets is one window, the whole clip: its scores are
  exactly ``score_features`` on the whole clip, whatever W and lookahead;
- live (``lookahead = 0``) a snippet is scored as the last element of the W
  snippets that end with it, once the first W have arrived; the first W - 1
  snippets of a stream wait for the first full window (or the end of a
  shorter stream), so the head never sees a window shorter than it will see
  later (LTGS's temporal matrix H depends on the window length);
- ``lookahead = k`` gives every snippet k snippets of future context (k
  snippets more latency live); at the end of a stream the last window scores
  what is left.

``WindowScorer`` applies the rule online (push features as they come);
``score_windowed`` is the offline call for a whole clip, built on it, so both
give the very same numbers. Each window goes through
``checkpoint.score_features`` (crops averaged exactly as whole-clip scoring).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Iterable, List, Tuple

import numpy as np

from .errors import ConfigError

RULE = "full-window"
DEFAULT_WINDOW = 32          # the training bag length ("embedding length 32"): the context the head learnt


def window_start(index: int, total: int, window: int, lookahead: int = 0) -> int:
    """First snippet of the window that scores snippet ``index`` of a clip of ``total`` snippets."""
    return min(max(0, index + lookahead - window + 1), max(0, total - window))


def check_window(window: int, lookahead: int) -> None:
    if window < 1:
        raise ConfigError(f"--window {window}: expected at least 1 snippet")
    if not 0 <= lookahead < window:
        raise ConfigError(f"lookahead {lookahead}: expected 0 <= lookahead < window ({window})")


@dataclass
class Scored:
    index: int           # arrival number of the snippet (0-based)
    score: float
    tag: Any             # what the caller pushed with the features (frame range, times...)


@dataclass
class WindowScorer:
    """Online windowed scoring: ``push`` each snippet's features (C, D) or (D,); ``finish`` at the end.

    Both return the snippets whose score is now final, in order. Memory: the
    last W snippets' features.
    """

    model: Any
    window: int = DEFAULT_WINDOW
    lookahead: int = 0
    device: Any = "cpu"
    _feats: Deque[np.ndarray] = field(default_factory=deque, repr=False)
    _pending: Deque[Tuple[int, Any]] = field(default_factory=deque, repr=False)
    _count: int = 0
    _finished: bool = False

    def __post_init__(self) -> None:
        check_window(self.window, self.lookahead)
        self._feats = deque(maxlen=self.window)

    @property
    def count(self) -> int:
        """Snippets pushed so far."""
        return self._count

    def push(self, features: np.ndarray, tag: Any = None) -> List[Scored]:
        if self._finished:
            raise RuntimeError("push after finish")
        self._feats.append(np.asarray(features, dtype=np.float32))
        self._pending.append((self._count, tag))
        self._count += 1
        newest = self._count - 1
        if self._count < self.window:
            return []     # no full window yet: a shorter one would be scored differently later
        # The window is full and ends at `newest`: it scores every pending snippet i with i + lookahead <= newest.
        return self._score(lambda i: i + self.lookahead <= newest)

    def finish(self) -> List[Scored]:
        """End of the clip: the last window (or the whole clip, when shorter than W) scores the rest."""
        self._finished = True
        return self._score(lambda i: True) if self._pending else []

    def _score(self, ready) -> List[Scored]:
        from .checkpoint import score_features

        first = self._count - len(self._feats)           # arrival number of the window's first snippet
        todo: List[Tuple[int, Any]] = []
        while self._pending and ready(self._pending[0][0]):
            todo.append(self._pending.popleft())
        if not todo:
            return []
        scores = score_features(self.model, np.stack(self._feats), self.device)
        return [Scored(i, float(scores[i - first]), tag) for i, tag in todo]


def score_windowed(model, features: Iterable[np.ndarray], window: int = DEFAULT_WINDOW, lookahead: int = 0,
                   device="cpu") -> np.ndarray:
    """Snippet scores (T,) of one clip under :data:`RULE`; ``features`` (T, C, D) or any iterable of
    per-snippet (C, D) arrays (a generator keeps memory flat in clip length)."""
    scorer = WindowScorer(model, window, lookahead, device)
    out: List[float] = []
    for feats in features:
        out += [s.score for s in scorer.push(feats)]
    out += [s.score for s in scorer.finish()]
    return np.asarray(out, dtype=np.float32)
