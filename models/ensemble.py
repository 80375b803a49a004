"""A head made of several heads whose logits are averaged (``model.members`` N > 1).

Heads trained from different seeds disagree most where the evidence is weakest; averaging separate
runs' logits helped on every benchmark (tools/probe_ensemble.py). The members here are trained side
by side in one run, each on its own batches and from its own initialisation (vadpipe/train.py), so
one checkpoint, one optimiser state and one resume carry them all; they share the run's split, and
so far that has not repeated the separate runs' gain (README, Localisation).

Output: :class:`HeadOutput` whose scores are sigmoid(mean over members of logit(score)), 0 at
padding as every head's, and whose features are the members' representations side by side (the
norm of that concatenation is the root of the sum of squared magnitudes, which is what a
magnitude-ranked top-k of the whole ensemble should see); None when a member has none.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from .ltgs import HeadOutput, full_mask
from .normal_stats import logit


class MeanOfLogits(nn.Module):
    """Members' scores combined as sigmoid(mean logit). ``members`` are built heads (any registered
    head: ``vadpipe.checkpoint.build_model`` makes them from one ModelConfig)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def member_outputs(self, x: Tensor, mask: Optional[Tensor] = None) -> List[HeadOutput]:
        return [m(x) if mask is None else m(x, mask) for m in self.members]

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        return combine(self.member_outputs(x, mask), full_mask(x, mask))


def combine(outputs: Sequence[HeadOutput], mask: Tensor) -> HeadOutput:
    """One HeadOutput from the members' (see the module docstring)."""
    # logit clamps scores off 0 and 1: a saturated member at ±inf would otherwise decide the mean alone
    logits = torch.stack([logit(o.scores.float()) for o in outputs]).mean(0)
    scores = torch.sigmoid(logits).masked_fill(~mask, 0.0).to(outputs[0].scores.dtype)
    if any(o.features is None for o in outputs):
        return HeadOutput(scores, None)
    return HeadOutput(scores, torch.cat([o.features for o in outputs], dim=-1))


def members_of(model: nn.Module) -> List[nn.Module]:
    """The heads that train (each with its own loss): an ensemble's members, or the head itself."""
    return list(model.members) if isinstance(model, MeanOfLogits) else [model]
