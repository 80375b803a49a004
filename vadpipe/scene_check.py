"""Does a clip's scene look like the normal training videos, scores aside? A reading of the head's normal
statistics (models/normal_stats.py) that ``vadpipe score`` and ``vadpipe watch`` add to a clip flagged nearly
throughout (vadpipe/threshold.py ``whole_clip_note``), and ``vadpipe score`` writes into every clip's JSON.

A camera the head never trained on scores high from its first frame to its last, and so does an event that
lasts the whole clip: the scores cannot tell which. The standardised distance z of each snippet to the
normal training snippets tells part of it. A clip's *quiet z* is the ``QUIET_SHARE`` quantile of its
snippets' z (its quietest tenth). At training each normal training video's quiet z is measured against a
Gaussian fitted without it (the folds of ``NormalStats.held_out_video_distances``); the largest is the
*bound*, stored in the checkpoint (``Checkpoint.scene``): as far as a normal video of the training cameras
(one its fold lacks, often its camera's only one) lay from the others. Measured with
tools/probe_new_scene.py (docs/localisation.md, "A scene the head never saw"): clips of cameras the head
never saw lie beyond the bound, test clips of the training cameras almost never do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:      # torch loads with the checkpoint, not with this module
    import torch

QUIET_SHARE = 0.1        # the quantile of a clip's snippet z that speaks for its scene (its quietest tenth)


def standardised(stats, distances: "torch.Tensor") -> np.ndarray:
    """(C, T) or (T,) distances to ``stats``' Gaussian as z (T,), the crops averaged."""
    z = ((distances - stats.scale[0]) / stats.scale[1]).double().cpu().numpy()
    return z.reshape(-1, z.shape[-1]).mean(axis=0)


def snippet_z(stats, feats: np.ndarray) -> np.ndarray:
    """z (T,) of a clip's features (T, C, D) (or one snippet's (C, D): (1,)) to ``stats``' Gaussian."""
    import torch

    x = np.asarray(feats, dtype=np.float32)
    x = x[None] if x.ndim == 2 else x
    rows = torch.from_numpy(np.array(x.transpose(1, 0, 2), order="C")).to(stats.mean.device)   # a copy
    with torch.no_grad():
        return standardised(stats, stats.distance(rows))


def quiet_z(z: np.ndarray, share: float = QUIET_SHARE) -> float:
    """The ``share`` quantile of a clip's snippet z: how unlike the normal videos its quietest part is."""
    return float(np.quantile(np.asarray(z, dtype=np.float64), share))


def held_out_quiet_z(stats, normal_rows: Sequence["torch.Tensor"],
                     keep: Optional[Callable[[int], "torch.Tensor"]] = None, share: float = QUIET_SHARE) -> List[float]:
    """Each normal training video's quiet z (``normal_rows``: its (C, T, D) crop rows) against a Gaussian
    fitted without it; ``keep``: the snippet subset the statistics' own fit used."""
    import torch

    with torch.no_grad():
        distances = stats.held_out_video_distances(list(normal_rows), keep)
    return [quiet_z(standardised(stats, d), share) for d in distances]


def scene_record(stats, normal_rows: Sequence["torch.Tensor"], keep: Optional[Callable[[int], "torch.Tensor"]] = None,
                 share: float = QUIET_SHARE) -> Optional[Dict[str, float]]:
    """What a checkpoint keeps (``Checkpoint.scene``): the quantile, the bound (the largest held-out quiet
    z), the median and the count of the videos; None with fewer than two normal videos (none to hold out)."""
    if len(normal_rows) < 2:
        return None
    quiet = held_out_quiet_z(stats, normal_rows, keep, share)
    return {"quiet_share": share, "bound": float(np.max(quiet)), "median": float(np.median(quiet)),
            "videos": len(quiet)}


@dataclass(frozen=True)
class SceneReading:
    """One clip's quiet z against the checkpoint's bound."""

    quiet_z: float
    bound: float
    quiet_share: float = QUIET_SHARE

    @property
    def beyond(self) -> bool:
        """Its quietest part lies farther from the normal training videos than any of them did."""
        return self.quiet_z > self.bound

    def to_dict(self) -> dict:
        return {"quiet_z": round(self.quiet_z, 3), "bound": round(self.bound, 3), "quiet_share": self.quiet_share,
                "beyond_bound": self.beyond}

    def clause(self) -> str:
        """What the reading says about a clip flagged nearly throughout (part of ``whole_clip_note``)."""
        figures = f"normal-statistics z {self.quiet_z:.1f}; normal training videos held out reach {self.bound:.1f}"
        part = f"quietest {self.quiet_share:.0%} of its snippets"
        if self.beyond:
            return (f"even the {part} lies beyond every normal training video ({figures}): most likely a camera, "
                    "view or lighting the head never trained on (something filling the whole view reads so too)")
        return (f"the {part} looks like the normal training videos ({figures}): a known scene, so an event "
                "lasting the whole clip, or normal activity the training videos lack (a crowd), is likelier "
                "than a new camera")


class SceneCheck:
    """A checkpoint's scene check: the head's fitted normal statistics and the stored bound."""

    def __init__(self, stats, record: Dict[str, float]):
        self.stats, self.record = stats, record

    @classmethod
    def of(cls, model: "torch.nn.Module", record: Optional[dict]) -> Optional["SceneCheck"]:
        """None where there is nothing to read: no record (a checkpoint from before 2026-12-07, an
        ensemble bagged on folds or a pair) or no fitted normal statistics."""
        stats = getattr(model, "normal_stats", None)
        if not record or stats is None or not stats.fitted:
            return None
        return cls(stats, record)

    @property
    def per_snippet(self) -> bool:
        """Whether a snippet's z needs no neighbours (streamed scoring can read it snippet by snippet)."""
        return self.stats.context == 1

    def snippet_z(self, feats: np.ndarray) -> np.ndarray:
        """z (T,) of a clip's features (T, C, D) (or one snippet's (C, D): (1,))."""
        return snippet_z(self.stats, feats)

    def reading(self, z: np.ndarray) -> Optional[SceneReading]:
        """The reading of a clip's snippet z (None for a clip without snippets)."""
        if np.asarray(z).size == 0:
            return None
        share = float(self.record.get("quiet_share", QUIET_SHARE))
        return SceneReading(quiet_z(z, share), float(self.record["bound"]), share)


def beyond_of_videos(check: SceneCheck, videos: Sequence, view: Optional[int] = None) -> Dict[str, bool]:
    """Each video's reading (``videos``: vadpipe.data.Video, scored on stored ``view`` alone when given):
    True where its quietest part lies beyond the bound (``vadpipe eval``)."""
    views = slice(None) if view is None else slice(view, view + 1)
    readings = {v.id: check.reading(check.snippet_z(v.raw()[:, views])) for v in videos}
    return {vid: r.beyond for vid, r in readings.items() if r is not None}     # None: a video without snippets
