"""Score thresholds: a given number, or a quantile of normal videos' scores calibrated at training.

The calibration is stored in the checkpoint (``Checkpoint.calibration``); when
no normal video was held out it comes from the training videos themselves and
is marked optimistic (the head has fitted them, so the threshold is too low).
A clip that such a threshold flags nearly throughout gets a note (``whole_clip_note``): the head's
normal statistics say whether a new scene or a long event is likelier (vadpipe/scene_check.py), and
the camera's own normal clips settle it (``vadpipe calibrate``).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Deque, Iterable, List, Optional

import numpy as np

from .errors import CheckpointError, ConfigError
from .intervals import format_clock

if TYPE_CHECKING:
    from .scene_check import SceneCheck, SceneReading

DEFAULT_QUANTILE = "0.99"
# calibration["source"] written by `vadpipe calibrate` (normal clips of the camera itself, not training videos)
SITE_CALIBRATION = "site normal videos (vadpipe calibrate)"
# `vadpipe score` notes a clip at least this share of whose frames a threshold not set on its camera flags
WHOLE_CLIP_SHARE = 0.9


@dataclass(frozen=True)
class Threshold:
    value: float
    source: str                       # "given" | "calibration"
    quantile: Optional[str] = None    # the calibration quantile used
    calibrated_on: Optional[str] = None   # which normal videos the calibration scored (from training)
    pooling: Optional[str] = None         # how it pooled them: frames | clips (vadpipe/calibration.py)

    @property
    def optimistic(self) -> bool:
        """Calibrated on videos the head trained on: it has fitted them, so the threshold is too low."""
        from .checkpoint import OPTIMISTIC_CALIBRATION

        return self.calibrated_on == OPTIMISTIC_CALIBRATION

    def label(self) -> str:
        if self.source == "calibration":
            optimistic = ", optimistic" if self.optimistic else ""
            site = "site " if self.calibrated_on == SITE_CALIBRATION else ""
            clip = " of a typical clip" if self.pooling == "clips" else ""
            return f"threshold {self.value:.3f} (auto: {site}normal q{self.quantile}{clip}{optimistic})"
        return f"threshold {self.value:.3f}"

    def to_dict(self) -> dict:
        return {"value": self.value, "source": self.source, "quantile": self.quantile,
                "calibrated_on": self.calibrated_on, "pooling": self.pooling}


def resolve_threshold(spec: str, calibration: Optional[dict], where: str = "the checkpoint") -> Threshold:
    """``spec``: a number, ``auto`` (the calibration's 0.99 quantile) or ``auto:<q>``.

    The calibration is the score quantiles of held-out normal videos stored at
    training time (``{"normal_frame_score_quantiles": {"0.99": x, ...}}``).
    """
    spec = str(spec).strip()
    expected = f"--threshold {spec!r}: expected a finite number, 'auto' or 'auto:0.999'"
    if not spec.startswith("auto"):
        try:
            value = float(spec)
        except ValueError:
            raise ConfigError(expected) from None
        if not math.isfinite(value):
            raise ConfigError(expected)
        return Threshold(value, "given")
    head, colon, quantile = spec.partition(":")
    if head != "auto" or (colon and not quantile):      # 'auto0.999' or 'auto:' would read as the default 0.99
        raise ConfigError(expected)
    quantile = quantile or DEFAULT_QUANTILE
    table = (calibration or {}).get("normal_frame_score_quantiles") or {}
    if not table:
        raise CheckpointError(f"{where} has no score calibration (trained without held-out normal videos); "
                              f"pass a number, e.g. --threshold 0.5")
    match = next((k for k in table if same_quantile(k, quantile)), None)
    if match is None:
        raise ConfigError(f"--threshold {spec}: {where} has quantiles {', '.join(sorted(table))}, not {quantile}")
    return Threshold(float(table[match]), "calibration", match, calibration.get("source"), pooling_of(calibration))


def pooling_of(calibration: Optional[dict]) -> str:
    """How a stored calibration pooled its videos (one written before the choice existed: ``frames``)."""
    return (calibration or {}).get("pooling", "frames")


def same_quantile(a, b) -> bool:
    """Whether two quantiles (numbers or their text, as a calibration's keys) are one."""
    try:
        return abs(float(a) - float(b)) < 1e-9
    except ValueError:
        return a == b


def flagged_share(frame_scores: np.ndarray, value: float) -> float:
    """The share of frames at or above the threshold ``value`` (the frames intervals are made of)."""
    return float(np.mean(np.asarray(frame_scores) >= value))


def is_whole_flagged(frame_scores: np.ndarray, value: float) -> bool:
    """Whether ``vadpipe score`` would note this clip (its frame scores) at the threshold ``value``."""
    return flagged_share(frame_scores, value) >= WHOLE_CLIP_SHARE


def whole_flagged(clips_frame_scores: Iterable[np.ndarray], value: float) -> int:
    """How many of these clips (each its frame scores) ``vadpipe score`` would note at the threshold ``value``."""
    return sum(is_whole_flagged(f, value) for f in clips_frame_scores)


def noted_share(frame_scores: np.ndarray, threshold: Threshold) -> Optional[float]:
    """The share of frames at or above ``threshold`` where ``whole_clip_note`` notes the clip; None where it
    does not (under ``WHOLE_CLIP_SHARE``, or a threshold set on the camera's own clips)."""
    share = flagged_share(frame_scores, threshold.value)
    if share < WHOLE_CLIP_SHARE or threshold.calibrated_on == SITE_CALIBRATION:
        return None
    return share


def whole_clip_note(frame_scores: np.ndarray, threshold: Threshold, checkpoint: str,
                    what: str = "its frames", scene: Optional["SceneReading"] = None) -> Optional[str]:
    """A note for a clip flagged over nearly its whole length (at least ``WHOLE_CLIP_SHARE`` of its frames)
    by a threshold that was not set on its camera; None otherwise. A scene unlike every normal video the
    head trained on (another camera, view or lighting) scores high from its first frame to its last, as
    does an event that lasts the whole clip: the curve cannot tell them apart; the clip's ``scene`` reading
    (vadpipe/scene_check.py, where the checkpoint has one) says which is likelier, and the camera's own
    normal clips settle it (``vadpipe calibrate``). A threshold set on them already is left alone."""
    share = noted_share(frame_scores, threshold)
    if share is None:
        return None
    reading = ("a scene unlike every normal video the head trained on (another camera, view or lighting) "
               "scores so, as does an event lasting the whole clip") if scene is None else scene.clause()
    return (f"{share:.0%} of {what} at or above the threshold: {reading}; for a camera its training lacked, "
            f"set the threshold on that camera's own normal clips: vadpipe calibrate NORMAL_CLIPS --checkpoint "
            f"{checkpoint}")


class StreamCheck:
    """A live stream judged block by block as ``vadpipe score`` judges a whole clip (``whole_clip_note``):
    every ``block`` scored snippets (two windows). The first block names a camera new to the head within
    the first minute; a later one a scene that changed (a camera moved, another view), instead of an alarm that
    never ends. One note for a run of noted blocks; a block not noted re-arms it. With a ``scene`` check the
    block's features (``observe``) give the note its scene reading."""

    def __init__(self, threshold: Threshold, checkpoint: str, block: int, scene: Optional["SceneCheck"] = None):
        self.threshold, self.checkpoint, self.block = threshold, checkpoint, max(int(block), 1)
        self.scene = scene
        self.scores: List[float] = []
        self.features: Deque[np.ndarray] = deque()   # arrive before their scores (by up to a window)
        self.blocks = 0
        self.block_start_s = 0.0
        self.noted = False            # the last block was noted: its run has had its note

    def observe(self, features: np.ndarray) -> None:
        """Each snippet's features (C, D), in stream order; kept until its block is judged."""
        if self.scene is not None:
            self.features.append(np.asarray(features, dtype=np.float32))

    def add(self, score: float, stream_s: float) -> Optional[str]:
        """The note, when the snippet ending at ``stream_s`` completes a block that starts a run of noted ones."""
        self.scores.append(float(score))
        if len(self.scores) < self.block:
            return None
        scores, self.scores = np.array(self.scores), []
        feats = [self.features.popleft() for _ in range(min(self.block, len(self.features)))]
        what = (f"the stream's first {self.block} snippets ({stream_s:.0f} s)" if self.blocks == 0 else
                f"the stream's {self.block} snippets from {format_clock(self.block_start_s)} to "
                f"{format_clock(stream_s)}")
        self.blocks, self.block_start_s = self.blocks + 1, stream_s
        was_noted, self.noted = self.noted, noted_share(scores, self.threshold) is not None
        if not self.noted or was_noted:
            return None
        scene = self.scene.reading(self.scene.snippet_z(np.stack(feats))) if self.scene is not None and feats else None
        return whole_clip_note(scores, self.threshold, self.checkpoint, what, scene)
