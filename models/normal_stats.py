"""Normal statistics: how far a segment's feature lies from the normal training features.

A Gaussian of the normal training snippets (mean, shrunk covariance) gives each
segment a Mahalanobis distance d (on the features as they are, or with
``features="l2"`` on unit-length features: the default preset's choice, since
a benign burst that scales the whole vector is "unlike normal" in raw
features; measured in docs/localisation.md); standardised it is z = (d − μ_d) / σ_d,
added to the head's own logit ℓ (label smoothing keeps it within a few units),
and the sum is squashed smoothly into (−8, 8) so that no score rounds to exactly
0 or 1 in float32 (monotone: the ranking is kept):

    s = ℓ + weight · z,    score = sigmoid(s / (1 + |s| / 8))

so "unlike anything normal" raises a segment's score even where the weakly
supervised head, trained on a few anomalous videos, has not learnt the event
(BN-WVAD, Zhou et al. 2023, uses the same cue). Everything is fitted once after
training on the training normals (never on held-out or test videos) and kept as
buffers in the head's state dict, so a checkpoint carries it.

μ_d and σ_d come from ``standardise``: "fit" takes the distances of the snippets
the Gaussian was fitted on; "held-out" each normal training video's distance to a
Gaussian fitted without it (5 folds by video). A Gaussian of 1,024-d features
fitted on a few hundred snippets lies far closer to them than to any new snippet:
on UCSD Ped1 a new *normal* snippet's "fit" z averages 17.5 and new snippets spread
over 4 σ_d (the demo world: 37 and 8; 0.1 and 1 on a set of 9,000 snippets), so
weight · z moved every normal test frame's score to about 0.95, and a weight means
4–8 times more on new video than it says, by how far the Gaussian overfits (the
set's size). "held-out" puts new normal video near z = 0 (docs/localisation.md,
"The normal statistics' z on new video")."""
from __future__ import annotations

import copy
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn


SQUASH = 8.0
# What the Gaussian is fitted on: the features as they are, or their direction only ("l2": unit length),
# which a change of the whole vector's magnitude (lighting, crowd density, camera shake) cannot move.
FEATURE_FORMS = ("raw", "l2")
# How the distance is standardised: by the fitted snippets' own distances ("fit", until 2026-12-06), or by
# each normal training video's distance to a Gaussian fitted without it ("held-out"; NormalStats.fit).
STANDARDISE = ("fit", "held-out")
HELD_OUT_FOLDS = 5


def squashed_score(s: Tensor) -> Tensor:
    """sigmoid(s / (1 + |s| / 8)): a fused logit as a score that never rounds to 0 or 1 (monotone)."""
    return torch.sigmoid(s / (1 + s.abs() / SQUASH))


def logit(p: Tensor, eps: float = 1e-6) -> Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def spread(v: Tensor) -> Tensor:
    """The standard deviation of ``v``, at least 1e-6 (a divisor); 1 for a single value, which has no spread
    (its std is NaN)."""
    return v.std().clamp(min=1e-6) if v.numel() > 1 else torch.ones((), device=v.device)


def take_span(x, span: Tuple[int, int]):
    """Features (..., D), a tensor or an array, cut to ``span`` (start, stop) of D; (0, 0) keeps them
    whole. Features stored with layers (``vadpipe extract --layers``) give each part of a head its own
    layer. The cut is made contiguous: a strided view takes other matmul kernels (last bits differ), and
    a layered store must train the very head its last layer alone trains."""
    if span == (0, 0):
        return x
    part = x[..., span[0]:span[1]]
    return part.contiguous() if isinstance(part, Tensor) else np.ascontiguousarray(part)


def neighbourhoods(z: Tensor, context: int, mask: Optional[Tensor] = None) -> Tensor:
    """(..., T, E) -> (..., T, K·E): each segment beside its K − 1 neighbours (odd K), a video's first and
    last real segment repeated at its edges (``mask`` (..., T): real segments; padding is never a neighbour)."""
    t = torch.arange(z.shape[-2], device=z.device)
    length = mask.sum(-1, keepdim=True) if mask is not None else torch.full(z.shape[:-2] + (1,), z.shape[-2],
                                                                            device=z.device)
    last = (length - 1).clamp(min=0)
    half = context // 2
    parts = [z.gather(-2, torch.minimum((t + offset).clamp(min=0), last).unsqueeze(-1).expand_as(z))
             for offset in range(-half, half + 1)]
    return torch.cat(parts, -1)


class NormalStats(nn.Module):
    """``context`` K > 1 (odd): the Gaussian is fitted on each segment together with its K − 1 neighbours
    (edges repeat a video's first and last segment), each first projected on the ``rank`` principal
    directions of the normal training features, so the covariance stays (K·rank)² whatever D is. An event
    is often unlike normal in how the features change over a few snippets more than in any one of them
    (measured in docs/localisation.md)."""

    def __init__(self, dim: int, weight: float = 0.5, shrinkage: float = 0.5, features: str = "raw",
                 context: int = 1, rank: int = 256, span: Tuple[int, int] = (0, 0), standardise: str = "fit"):
        super().__init__()
        if features not in FEATURE_FORMS:
            raise ValueError(f"normal statistics features {features!r}: expected one of {', '.join(FEATURE_FORMS)}")
        if standardise not in STANDARDISE:
            raise ValueError(f"normal statistics standardise {standardise!r}: expected one of {', '.join(STANDARDISE)}")
        if context < 1 or context % 2 == 0 or rank < 1:
            raise ValueError(f"normal statistics context {context} and rank {rank}: an odd context >= 1, rank >= 1")
        self.weight, self.shrinkage, self.features, self.context = weight, shrinkage, features, context
        self.standardise = standardise
        self.span = tuple(span)       # the part of the features it sees (dim wide); (0, 0): all of them
        embedded = dim
        if context > 1:
            rank = min(rank, dim)
            embedded = context * rank
            self.register_buffer("center", torch.zeros(dim))
            self.register_buffer("basis", torch.zeros(rank, dim))     # principal directions, one per row
        self.register_buffer("mean", torch.zeros(embedded))
        self.register_buffer("precision", torch.eye(embedded))
        # μ_d, σ_d, μ_ℓ, σ_ℓ (the head's logits on the normals, for the record) and a fitted flag
        self.register_buffer("scale", torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))

    @property
    def fitted(self) -> bool:
        return bool(self.scale[4] > 0)

    def prepare(self, x: Tensor) -> Tensor:
        x = take_span(x, self.span).float()
        return torch.nn.functional.normalize(x, dim=-1) if self.features == "l2" else x

    def embed(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """What the Gaussian sees of features (..., T, D) (``mask`` (..., T): real segments of padded
        rows): (..., T, D) prepared features, or with a context (..., T, K·rank) neighbourhoods."""
        x = self.prepare(x)
        if self.context == 1:
            return x
        return neighbourhoods((x - self.center) @ self.basis.T, self.context, mask)

    def _mahalanobis(self, e: Tensor) -> Tensor:
        d = e - self.mean
        return torch.einsum("...i,ij,...j->...", d, self.precision, d).clamp(min=0).sqrt()

    def distance(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Mahalanobis distance (..., T) of features (..., T, D) to the normal Gaussian (without a
        context any (..., D) works)."""
        return self._mahalanobis(self.embed(x, mask))

    @torch.no_grad()
    def fit(self, features: Union[Tensor, Sequence[Tensor]], head_scores: Union[Tensor, Sequence[Tensor]],
            keep: Optional[Callable[[int], Tensor]] = None) -> None:
        """``features``: the normal training videos, each (..., T, D) (a tensor (N, D) is one video), and the
        head's scores on them (..., T); ``keep(n)``: indices of the n snippets to fit on (a subset keeps
        the covariance cheap on big sets; all by default)."""
        videos = [features] if isinstance(features, Tensor) else list(features)
        scores = [head_scores] if isinstance(head_scores, Tensor) else list(head_scores)
        videos = [v.to(self.mean.device) for v in videos]
        e, chosen = self._fit_gaussian(videos, keep)
        s = torch.cat([sc.reshape(-1) for sc in scores]).to(self.mean.device)
        if chosen is not None:
            s = s[chosen.to(s.device)]
        held_out = self.standardise == "held-out" and len(videos) > 1   # one video has nothing to hold out
        d = self.held_out_distances(videos, keep) if held_out else self._mahalanobis(e)
        lg = logit(s.float())
        self.scale.copy_(torch.stack([d.mean(), spread(d), lg.mean(), spread(lg), torch.ones((), device=d.device)]))

    def _fit_gaussian(self, videos: Sequence[Tensor], keep: Optional[Callable[[int], Tensor]]):
        """Fit the basis (with a context), mean and precision on ``videos``; returns the embedded snippets
        fitted on and the subset ``keep`` chose (None: all)."""
        if self.context > 1:           # the principal directions of the normal snippets come first
            rows = torch.cat([self.prepare(v).reshape(-1, v.shape[-1]) for v in videos]).double()
            center = rows.mean(0)
            basis = torch.linalg.svd(rows - center, full_matrices=False).Vh[:self.basis.shape[0]]
            self.center.copy_(center.float())
            self.basis.zero_()
            self.basis[:basis.shape[0]].copy_(basis.float())
        e = torch.cat([self.embed(v).reshape(-1, self.mean.shape[0]) for v in videos])
        chosen = keep(e.shape[0]) if keep is not None else None
        if chosen is not None:
            e = e[chosen.to(e.device)]
        x = e.double()
        mean = x.mean(0)
        dim = x.shape[1]
        cov = torch.cov((x - mean).T) if x.shape[0] > 1 else x.new_zeros(dim, dim)
        target = torch.eye(dim, dtype=x.dtype, device=x.device) * (torch.trace(cov) / dim).clamp(min=1e-12)
        self.mean.copy_(mean.float())
        self.precision.copy_(torch.linalg.inv((1 - self.shrinkage) * cov + self.shrinkage * target).float())
        return e, chosen

    def held_out_distances(self, videos: Sequence[Tensor], keep: Optional[Callable[[int], Tensor]]) -> Tensor:
        """Each video's distances to a Gaussian fitted without it (``HELD_OUT_FOLDS`` folds by video, the
        i-th video in fold i mod k): what a new normal snippet's distance looks like, which the fitted
        snippets' own distances understate (a D-dimensional Gaussian fitted on a few hundred snippets lies
        much closer to them than to any other)."""
        parts = []
        for other, held in self._fold_fits(videos, keep):
            held = torch.cat([other.embed(v).reshape(-1, self.mean.shape[0]) for v in held])
            chosen = keep(held.shape[0]) if keep is not None else None
            parts.append(other._mahalanobis(held if chosen is None else held[chosen.to(held.device)]))
        return torch.cat(parts)

    def held_out_video_distances(self, videos: Sequence[Tensor],
                                 keep: Optional[Callable[[int], Tensor]] = None) -> List[Tensor]:
        """Each video's distances (all its snippets, in order; (..., T)) to a Gaussian fitted without it,
        on the same folds as :meth:`held_out_distances`: how far a normal video of a camera the Gaussian
        knows lies from it, video by video (``vadpipe.scene_check``)."""
        folds = min(HELD_OUT_FOLDS, len(videos))
        out: List[Optional[Tensor]] = [None] * len(videos)
        for fold, (other, held) in enumerate(self._fold_fits(videos, keep)):
            for k, video in zip(range(fold, len(videos), folds), held):
                out[k] = other.distance(video)
        return out

    def _fold_fits(self, videos: Sequence[Tensor], keep: Optional[Callable[[int], Tensor]]):
        """(a copy fitted without fold i, fold i's videos) for each of the ``HELD_OUT_FOLDS`` folds (the
        i-th video in fold i mod k)."""
        folds = min(HELD_OUT_FOLDS, len(videos))
        for fold in range(folds):
            other = copy.deepcopy(self)
            other._fit_gaussian([v for i, v in enumerate(videos) if i % folds != fold], keep)
            yield other, [v for i, v in enumerate(videos) if i % folds == fold]

    def fuse(self, head_scores: Tensor, features: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Fused scores (..., T) from head scores (..., T) and their features (..., T, D); unchanged until
        fitted."""
        if not self.fitted:
            return head_scores
        mu_d, sd_d = self.scale[:2]
        s = logit(head_scores.float()) + self.weight * (self.distance(features, mask) - mu_d) / sd_d
        return squashed_score(s)
