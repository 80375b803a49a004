"""Normal statistics: how far a segment's feature lies from the normal training features.

A Gaussian of the normal training snippets (mean, shrunk covariance) gives each
segment a Mahalanobis distance d (on the features as they are, or with
``features="l2"`` on unit-length features: the default preset's choice, since
a benign burst that scales the whole vector is "unlike normal" in raw
features; measured in the README's localisation section); standardised on those same snippets it is
z = (d − μ_d) / σ_d, added to the head's own logit ℓ (label smoothing keeps it
within a few units), and the sum is squashed smoothly into (−8, 8) so that no
score rounds to exactly 0 or 1 in float32 (monotone: the ranking is kept):

    s = ℓ + weight · z,    score = sigmoid(s / (1 + |s| / 8))

so "unlike anything normal" raises a segment's score even where the weakly
supervised head, trained on a few anomalous videos, has not learnt the event
(BN-WVAD, Zhou et al. 2023, uses the same cue). Everything is fitted once after
training on the training normals (never on held-out or test videos) and kept as
buffers in the head's state dict, so a checkpoint carries it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


SQUASH = 8.0
# What the Gaussian is fitted on: the features as they are, or their direction only ("l2": unit length),
# which a change of the whole vector's magnitude (lighting, crowd density, camera shake) cannot move.
FEATURE_FORMS = ("raw", "l2")


def squashed_score(s: Tensor) -> Tensor:
    """sigmoid(s / (1 + |s| / 8)): a fused logit as a score that never rounds to 0 or 1 (monotone)."""
    return torch.sigmoid(s / (1 + s.abs() / SQUASH))


def logit(p: Tensor, eps: float = 1e-6) -> Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class NormalStats(nn.Module):
    def __init__(self, dim: int, weight: float = 0.5, shrinkage: float = 0.5, features: str = "raw"):
        super().__init__()
        if features not in FEATURE_FORMS:
            raise ValueError(f"normal statistics features {features!r}: expected one of {', '.join(FEATURE_FORMS)}")
        self.weight, self.shrinkage, self.features = weight, shrinkage, features
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("precision", torch.eye(dim))
        # μ_d, σ_d, μ_ℓ, σ_ℓ (the head's logits on the normals, for the record) and a fitted flag
        self.register_buffer("scale", torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))

    @property
    def fitted(self) -> bool:
        return bool(self.scale[4] > 0)

    def prepare(self, x: Tensor) -> Tensor:
        x = x.float()
        return torch.nn.functional.normalize(x, dim=-1) if self.features == "l2" else x

    def distance(self, x: Tensor) -> Tensor:
        """Mahalanobis distance (..., ) of features (..., D) to the normal Gaussian."""
        d = self.prepare(x) - self.mean
        return torch.einsum("...i,ij,...j->...", d, self.precision, d).clamp(min=0).sqrt()

    @torch.no_grad()
    def fit(self, features: Tensor, head_scores: Tensor) -> None:
        """``features`` (N, D) normal training snippets and the head's scores (N,) on them."""
        features, head_scores = features.to(self.mean.device), head_scores.to(self.mean.device)
        x = self.prepare(features).double()
        mean = x.mean(0)
        cov = torch.cov((x - mean).T) if x.shape[0] > 1 else torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype)
        target = torch.eye(x.shape[1], dtype=x.dtype) * (torch.trace(cov) / x.shape[1]).clamp(min=1e-12)
        self.mean.copy_(mean.float())
        self.precision.copy_(torch.linalg.inv((1 - self.shrinkage) * cov + self.shrinkage * target).float())
        d, lg = self.distance(features), logit(head_scores.float())
        self.scale.copy_(torch.stack([d.mean(), d.std().clamp(min=1e-6), lg.mean(), lg.std().clamp(min=1e-6),
                                      torch.ones((), device=d.device)]))

    def fuse(self, head_scores: Tensor, features: Tensor) -> Tensor:
        """Fused scores (...,) from head scores (...,) and their features (..., D); unchanged until fitted."""
        if not self.fitted:
            return head_scores
        mu_d, sd_d = self.scale[:2]
        s = logit(head_scores.float()) + self.weight * (self.distance(features) - mu_d) / sd_d
        return squashed_score(s)
