"""``vadpipe calibrate``: re-fit a trained run's ``auto`` threshold on normal footage of the camera it watches.

Training calibrates the threshold on held-out normal *training* videos (:mod:`vadpipe.calibration`). A
camera whose normal scenes differ from those (a crowd at rush hour, an empty walkway at night) shows
normal frames the head scores higher: on UCSD Ped1 trained on one split and tested on the other, the
training threshold lets through 21–52 % of the new scenes' normal frames (docs/localisation.md, "Ped1
the other way round"). Normal clips of that camera, scored exactly as ``vadpipe score`` scores them
(videos extracted with the checkpoint's recipe, or features of that recipe), give the threshold the
camera needs: their frame-score quantiles replace the checkpoint's calibration, and the calibration they
replace is kept inside it (``calibration["previous"]``). The head itself is not changed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .calibration import calibration_summary, quantile_record
from .errors import ConfigError, VadpipeError
from .progress import progress_bar
from .score import CLIP_ERRORS, ScoreOptions, Scorer, clip_error, echo_err as print_error
from .score_io import collect_inputs
from .threshold import DEFAULT_QUANTILE, SITE_CALIBRATION, pooling_of   # SITE_CALIBRATION: the source it writes
FALLBACK_QUANTILES = (0.95, 0.99, 0.999)
FEW_VIDEOS = 3               # fewer: one unusual clip sets the threshold (tools/probe_calibration.py)


@dataclass
class SiteCalibration:
    """What ``vadpipe calibrate`` did: the checkpoint written, its new calibration, the one replaced."""

    written: Path
    calibration: dict
    previous: Optional[dict]
    errors: List[str] = field(default_factory=list)
    anomalous: List[str] = field(default_factory=list)   # clips their feature folder's manifest labels anomalous

    @property
    def frames(self) -> int:
        """Frames the new calibration scored (its per-clip record holds each clip's count)."""
        return sum(v["frames"] for v in self.calibration["videos"].values())

    def summary_lines(self) -> List[str]:
        new = self.calibration["normal_frame_score_quantiles"]
        old = (self.previous or {}).get("normal_frame_score_quantiles") or {}
        changes = ", ".join(f"q{q} {old[q]:.4g} -> {v:.4g}" if q in old else f"q{q} {v:.4g}" for q, v in new.items())
        n = self.calibration["n_videos"]
        lines = [f"{self.written}: calibrated on {n} normal clip{'' if n == 1 else 's'} "
                 f"({self.frames} frames): {changes}", calibration_summary(self.calibration)]
        if self.previous:
            lines.append(f"replaced: {calibration_summary(self.previous)} (kept in the checkpoint as "
                         f"calibration['previous'])")
        lines += [f"note: {note}" for note in self.notes()]
        return lines

    def notes(self) -> List[str]:
        out = []
        n = self.calibration["n_videos"]
        if n < FEW_VIDEOS:
            out.append(f"only {n} clip(s): one unusual clip sets the threshold; calibrate on more of this "
                       f"camera's normal footage")
        if self.anomalous:
            out.append(f"{len(self.anomalous)} of the {n} clips are labelled anomalous in their feature folder's "
                       f"manifest (first: {self.anomalous[0]}), yet calibrated on as normal: their events raise the "
                       f"threshold; calibrate on the camera's normal clips alone")
        q = float(DEFAULT_QUANTILE)
        if self.frames < 1.0 / (1.0 - q):
            out.append(f"{self.frames} frames are too few for a {DEFAULT_QUANTILE} quantile: `auto` is about "
                       f"their highest score")
        return out


def calibration_quantiles(previous: Optional[dict], trained: Optional[Sequence[float]]) -> List[float]:
    """The quantiles to store: those the checkpoint already has (so ``auto:Q`` keeps working), else
    the ones training was set to store, else 0.95 / 0.99 / 0.999."""
    table = (previous or {}).get("normal_frame_score_quantiles") or {}
    if table:
        return sorted(float(q) for q in table)
    return sorted(trained or FALLBACK_QUANTILES)


def checkpoint_pooling(ckpt, previous: Optional[dict]) -> str:
    """How the checkpoint's calibration pooled its videos; with none, how its training was set to."""
    if previous is not None or ckpt.train_config is None:
        return pooling_of(previous)
    return ckpt.train_config.calibration_pooling


def labelled_anomalous(clips: Sequence) -> List[str]:
    """The ids of ``clips`` (score_io.ClipInput) whose feature folder's manifest labels them anomalous."""
    return [clip.record.id for clip in clips if clip.record is not None and clip.record.label == 1]


def without_history(calibration: Optional[dict]) -> Optional[dict]:
    """A calibration as it is kept under "previous": its own "previous" dropped, so that calibrating
    again and again keeps one level (the one it replaced), not a growing chain."""
    if calibration is None:
        return None
    return {k: v for k, v in calibration.items() if k != "previous"}


def site_calibrate(sources: Sequence[str], checkpoint: Path, out: Optional[Path] = None,
                   options: ScoreOptions = ScoreOptions(threshold=None),
                   quantiles: Optional[Sequence[float]] = None, pooling: Optional[str] = None,
                   echo_err: Callable[[str], None] = print_error) -> SiteCalibration:
    """Score every normal clip under ``sources`` with the checkpoint, store the quantiles of their frame
    scores (pooled as ``pooling`` says, else as the checkpoint's calibration pooled, else as its training
    was set to) as its calibration and write it to ``out`` (default: over ``checkpoint``, atomically). A clip
    that fails is one line through ``echo_err`` and the others go on; none scored is an error and
    nothing is written."""
    if quantiles is not None and not len(quantiles):
        raise ConfigError("--quantiles: no quantile given; list them (e.g. 0.95,0.99,0.999) or leave the option "
                          "out to keep the checkpoint's")
    bad = [q for q in quantiles or () if not 0.0 < q < 1.0]
    if bad:
        raise ConfigError(f"--quantiles: each must lie in (0, 1), got {', '.join(map(str, bad))}")
    clips, path_errors = collect_inputs(sources)
    errors = [f"{p}: {why}" for p, why in path_errors]
    for line in errors:
        echo_err(line)
    if not clips:
        raise VadpipeError(f"no normal clip to calibrate on in {', '.join(map(str, sources))}; "
                           f"{checkpoint} unchanged")
    scorer = Scorer(checkpoint, dataclasses.replace(options, threshold=None))
    per_clip: Dict[str, np.ndarray] = {}
    scored = []
    snippet_bars = scorer.snippet_bars(len(clips))
    for clip in progress_bar(clips, unit="clip", desc="calibrate", enabled=options.progress and len(clips) >= 2):
        try:
            per_clip[clip.name] = scorer.clip_scores(clip, snippet_bars).frame_scores
            scored.append(clip)
        except CLIP_ERRORS as exc:
            errors.append(clip_error(exc, clip.path))
            echo_err(errors[-1])
    if not per_clip:
        raise VadpipeError(f"none of the {len(clips)} clip(s) could be scored; {scorer.checkpoint_file} unchanged")
    ckpt = scorer.ckpt
    previous = without_history(ckpt.calibration)
    if quantiles is None:
        quantiles = calibration_quantiles(previous, ckpt.train_config and ckpt.train_config.calibration_quantiles)
    record = quantile_record(per_clip, SITE_CALIBRATION, quantiles, pooling or checkpoint_pooling(ckpt, previous))
    record["previous"] = previous
    written = Path(out) if out is not None else scorer.checkpoint_file
    dataclasses.replace(ckpt, calibration=record).save(written)
    return SiteCalibration(written, record, previous, errors, labelled_anomalous(scored))
