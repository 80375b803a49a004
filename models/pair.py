"""Two heads of different kinds, each trained with its own losses, whose logits are put on one scale
and averaged (``model.partner``).

A head's logits have a scale of their own: RTFM-style's BCE on a video's mean top-k score drives its
logits far larger than the default's smoothed, video-mean targets do, so a plain average lets the
larger one decide alone. Each head's logits are therefore standardised first, by their mean and sd
over the snippets of the videos both heads trained on (fitted after training, no label read:
``vadpipe.calibration.fit_pair_scale``), then averaged: ``sigmoid(mean_h (logit(s_h) - mu_h) / sd_h)``.
Until fitted (mu 0, sd 1) it is the plain mean of the logits. The heads' own fused terms (normal
statistics, pseudo-label stage) stay with each head (``vadpipe.checkpoint.head_scores``).

Measured on trained runs before it was built (tools/probe_ensemble.py --standardise) and as this
module (tools/bench_accuracy.py): docs/localisation.md.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .ltgs import HeadOutput, full_mask
from .normal_stats import logit, spread


class StandardisedPair(nn.Module):
    """``primary`` and ``partner`` (built heads, any registered kind) fused as standardised logits."""

    def __init__(self, primary: nn.Module, partner: nn.Module):
        super().__init__()
        self.primary, self.partner = primary, partner
        self.register_buffer("location", torch.zeros(2))     # per head: mean and sd of its logits
        self.register_buffer("scale", torch.ones(2))

    @torch.no_grad()
    def fit(self, primary_logits: Tensor, partner_logits: Tensor) -> None:
        """Each head's logits (all training snippets, any shape) set its location and scale."""
        for h, x in enumerate((primary_logits, partner_logits)):
            x = x.detach().float().flatten()
            self.location[h] = x.mean()
            self.scale[h] = spread(x)

    def fuse(self, primary_scores: Tensor, partner_scores: Tensor, mask: Tensor) -> Tensor:
        """(N, T) fused scores from the two heads' (N, T) scores; 0 at padding, in the first's dtype."""
        z = [(logit(s.float()) - self.location[h]) / self.scale[h]
             for h, s in enumerate((primary_scores, partner_scores))]
        return torch.sigmoid((z[0] + z[1]) / 2).masked_fill(~mask, 0.0).to(primary_scores.dtype)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        """The two heads' own scores fused (without their fitted terms: ``head_scores`` adds those)."""
        outputs: Sequence[HeadOutput] = [h(x) if mask is None else h(x, mask) for h in (self.primary, self.partner)]
        return HeadOutput(self.fuse(outputs[0].scores, outputs[1].scores, full_mask(x, mask)), None)
