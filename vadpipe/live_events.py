"""Online intervals: the threshold / merge-gap / min-duration rule of ``vadpipe score``, decided as scores arrive.

``intervals.find_intervals`` sees a whole clip: frames at or above the
threshold form runs, runs closer than the merge gap join, joined runs shorter
than the minimum duration are dropped. Online the same rule becomes:

- an event **starts** once the current joined run lasts at least the minimum
  duration (a run that never gets that long is dropped silently);
- it **ends** once the frames seen after its last frame above the threshold
  reach the merge gap: no later run can join it any more.

So the intervals of the start/end pairs are exactly ``find_intervals`` on the
same per-frame scores (tested); each is described by ``intervals.describe_run``.
Frames that got no score (snippets dropped under load) count as below the
threshold, with score 0 inside an interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, List, Optional, Tuple

import numpy as np

from .intervals import Interval, describe_run, seconds_to_frames


@dataclass
class LiveEvent:
    id: int
    start_frame: int
    end_frame: int                               # exclusive; grows while the event is open
    peak_score: float
    first_tag: Any = None                        # the caller's tag of its first snippet
    peak_tag: Any = None                         # ... and of its highest-scoring one
    started: bool = False                        # the start was announced (long enough)
    interval: Optional[Interval] = None          # set at the end
    parts: List[Tuple[int, int, float]] = field(default_factory=list)   # (start, end, score) of its snippets


@dataclass(frozen=True)
class Transition:
    kind: str                                    # "start" | "end"
    event: LiveEvent


class OnlineIntervals:
    """Feed consecutive scored frame ranges with ``add``; ``finish`` at the end of the stream."""

    def __init__(self, threshold: float, fps: float, merge_gap_s: float, min_duration_s: float):
        self.threshold, self.fps = threshold, fps
        self.gap = seconds_to_frames(merge_gap_s, fps)
        self.min_frames = max(1, seconds_to_frames(min_duration_s, fps))
        self.current: Optional[LiveEvent] = None
        self.count = 0                           # events started so far
        self.frames_seen = 0                     # the end of the last range added

    def add(self, start_frame: int, end_frame: int, score: float, tag: Any = None) -> List[Transition]:
        """A snippet's frames [start_frame, end_frame) all scored ``score``."""
        out: List[Transition] = []
        cur = self.current
        self.frames_seen = max(self.frames_seen, end_frame)
        if score >= self.threshold:
            # contiguous frames are one run whatever the gap (as runs_above sees them)
            if cur is not None and start_frame > cur.end_frame and start_frame - cur.end_frame >= self.gap:
                out += self._close()
                cur = None
            if cur is None:
                cur = self.current = LiveEvent(self.count + 1, start_frame, end_frame, score, tag, tag)
            else:
                cur.end_frame = end_frame
                if score > cur.peak_score:
                    cur.peak_score, cur.peak_tag = score, tag
            cur.parts.append((start_frame, end_frame, score))
            if not cur.started and cur.end_frame - cur.start_frame >= self.min_frames:
                cur.started = True
                self.count += 1
                out.append(Transition("start", cur))
        elif cur is not None:
            if end_frame - cur.end_frame >= self.gap:
                out += self._close()
            else:
                cur.parts.append((start_frame, end_frame, score))   # inside the gap: counts for the mean
        return out

    def finish(self) -> List[Transition]:
        """The end of the stream: the open event ends; one shorter than the minimum that spans the whole
        stream starts and ends here (``find_intervals`` keeps it: the stream could hold no longer one)."""
        cur, out = self.current, []
        if cur is not None and not cur.started and cur.start_frame == 0 and cur.end_frame == self.frames_seen:
            cur.started = True
            self.count += 1
            out.append(Transition("start", cur))
        return out + self._close()

    def _close(self) -> List[Transition]:
        cur, self.current = self.current, None
        if cur is None or not cur.started:
            return []
        cur.interval = self.describe(cur)
        return [Transition("end", cur)]

    def describe(self, event: LiveEvent) -> Interval:
        """``describe_run`` of the event's frames (its gaps included, as the offline rule sees them)."""
        scores = np.zeros(event.end_frame - event.start_frame)
        for lo, hi, s in event.parts:
            lo, hi = max(lo, event.start_frame), min(hi, event.end_frame)
            scores[lo - event.start_frame:hi - event.start_frame] = s
        local = describe_run(scores, (0, scores.size), self.fps)
        shift = event.start_frame
        return replace(local, start_frame=shift, end_frame=shift + scores.size, start_s=shift / self.fps,
                       end_s=(shift + scores.size) / self.fps, peak_frame=local.peak_frame + shift)
