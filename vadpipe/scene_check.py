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
never saw lie beyond the bound, test clips of the training cameras almost never do. A head made of heads
with their own statistics (a bagged ensemble's members, a pair's two heads) stores one bound per head; a clip
reads beyond when most of them read it so.
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


def reads_scene(head: "torch.nn.Module") -> bool:
    """Whether ``head`` has fitted normal statistics of its own to read a scene with."""
    stats = getattr(head, "normal_stats", None)
    return stats is not None and bool(stats.fitted)


def scene_heads(model: "torch.nn.Module") -> List["torch.nn.Module"]:
    """The heads whose fitted normal statistics a checkpoint's scene record reads, in its order: a bagged
    ensemble's members (each its own statistics), a pair's heads that have them, else the model itself
    (heads side by side share one set)."""
    from .models.ensemble import bagged_members
    from .models.pair import StandardisedPair

    heads = bagged_members(model) or (
        [model.primary, model.partner] if isinstance(model, StandardisedPair) else [model])
    return [h for h in heads if reads_scene(h)]


def record_of_heads(heads: Sequence["torch.nn.Module"], records: Sequence[Optional[dict]]) -> Optional[dict]:
    """``Checkpoint.scene`` from each head's own record (heads without fitted statistics passed over, as
    :func:`scene_heads` passes them): the record itself for one head, ``{"members": [...]}`` for several;
    None where a head that reads has none (nothing held out) or no head reads."""
    kept = [r for h, r in zip(heads, records) if reads_scene(h)]
    if not kept or any(r is None for r in kept):
        return None
    return dict(kept[0]) if len(kept) == 1 else {"members": [dict(r) for r in kept]}


@dataclass(frozen=True)
class SceneReading:
    """One clip's quiet z against the checkpoint's bound (with several heads, those of the middle one: the
    clip reads beyond when most heads read it so)."""

    quiet_z: float
    bound: float
    quiet_share: float = QUIET_SHARE
    heads: int = 1               # how many heads read the clip, and how many of them beyond their bound
    heads_beyond: Optional[int] = None

    @property
    def beyond(self) -> bool:
        """Its quietest part lies farther from the normal training videos than any of them did."""
        return self.quiet_z > self.bound

    def to_dict(self) -> dict:
        out = {"quiet_z": round(self.quiet_z, 3), "bound": round(self.bound, 3), "quiet_share": self.quiet_share,
               "beyond_bound": self.beyond}
        if self.heads > 1:
            out.update(heads=self.heads, heads_beyond=self.heads_beyond)
        return out

    def clause(self) -> str:
        """What the reading says about a clip flagged nearly throughout (part of ``whole_clip_note``)."""
        figures = f"normal-statistics z {self.quiet_z:.1f}; normal training videos held out reach {self.bound:.1f}"
        if self.heads > 1:
            figures += f"; {self.heads_beyond} of {self.heads} heads read it beyond"
        part = f"quietest {self.quiet_share:.0%} of its snippets"
        if self.beyond:
            return (f"even the {part} lies beyond every normal training video ({figures}): most likely a camera, "
                    "view or lighting the head never trained on (something filling the whole view reads so too)")
        return (f"the {part} looks like the normal training videos ({figures}): a known scene, so an event "
                "lasting the whole clip, or normal activity the training videos lack (a crowd), is likelier "
                "than a new camera")


class SceneCheck:
    """A checkpoint's scene check: each of its heads' fitted normal statistics (:func:`scene_heads`) and
    the bound stored for it."""

    def __init__(self, stats: Sequence, records: Sequence[Dict[str, float]]):
        self.stats, self.records = list(stats), list(records)

    @classmethod
    def of(cls, model: "torch.nn.Module", record: Optional[dict]) -> Optional["SceneCheck"]:
        """None where there is nothing to read: no record (a checkpoint older than the scene check, or a
        bagged ensemble or pair older than its bounds per head) or no fitted normal statistics."""
        heads = scene_heads(model)
        records = (record or {}).get("members", [record] if record else [])
        if not heads or len(records) != len(heads):
            return None
        return cls([h.normal_stats for h in heads], records)

    @property
    def per_snippet(self) -> bool:
        """Whether a snippet's z needs no neighbours (streamed scoring can read it snippet by snippet)."""
        return all(s.context == 1 for s in self.stats)

    def snippet_z(self, feats: np.ndarray) -> np.ndarray:
        """z (T, heads) of a clip's features (T, C, D) (or one snippet's (C, D): (1, heads))."""
        return np.stack([snippet_z(s, feats) for s in self.stats], axis=-1)

    def reading(self, z: np.ndarray) -> Optional[SceneReading]:
        """The reading of a clip's snippet z ((T, heads), or (T,) for one head; None for a clip without
        snippets): each head's quiet z against its bound, reported by the head whose margin is the median
        (the lower of the two middle ones for an even count: beyond only when more than half are)."""
        z = np.asarray(z, dtype=np.float64)
        if z.size == 0:
            return None
        z = z.reshape(z.shape[0], -1)
        shares = [float(r.get("quiet_share", QUIET_SHARE)) for r in self.records]
        quiet = np.array([quiet_z(z[:, h], share) for h, share in enumerate(shares)])
        bounds = np.array([float(r["bound"]) for r in self.records])
        middle = int(np.argsort(quiet - bounds, kind="stable")[(len(bounds) - 1) // 2])
        return SceneReading(float(quiet[middle]), float(bounds[middle]), shares[middle], len(bounds),
                            int(np.sum(quiet > bounds)) if len(bounds) > 1 else None)


def reads_beyond(check: SceneCheck, features: np.ndarray) -> Optional[bool]:
    """Whether a video's stored (T, C, D) features read beyond the bound (None: a video without snippets)."""
    reading = check.reading(check.snippet_z(features))
    return None if reading is None else reading.beyond
