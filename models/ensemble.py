"""A head made of several heads whose logits are averaged (``model.members`` N > 1).

Heads trained from different seeds disagree most where the evidence is weakest; averaging separate
runs' logits helped on every benchmark (tools/probe_ensemble.py). The members here are trained side
by side in one run, each on its own batches and from its own initialisation (vadpipe/train.py), so
one checkpoint, one optimiser state and one resume carry them all. By default they share the run's
split, and that has not repeated the separate runs' gain (docs/localisation.md). With
``model.bagging`` each member holds out its own normal videos, as separate runs did, and carries its
own normal statistics fitted on the normals it trained on: the fused scores are then each member's
head fused with its own statistics, averaged as logits (``vadpipe.checkpoint.head_scores``), and a
held-out video is calibrated on by the members that held it out (``vadpipe.calibration``).

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
        if not members:                  # one member is a bagged ensemble's out-of-bag view of a video
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def member_outputs(self, x: Tensor, mask: Optional[Tensor] = None) -> List[HeadOutput]:
        return [m(x) if mask is None else m(x, mask) for m in self.members]

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        return combine(self.member_outputs(x, mask), full_mask(x, mask))


def combine(outputs: Sequence[HeadOutput], mask: Tensor) -> HeadOutput:
    """One HeadOutput from the members' (see the module docstring)."""
    scores = mean_of_logits([o.scores for o in outputs], mask)
    if any(o.features is None for o in outputs):
        return HeadOutput(scores, None)
    return HeadOutput(scores, torch.cat([o.features for o in outputs], dim=-1))


def mean_of_logits(scores: Sequence[Tensor], mask: Tensor) -> Tensor:
    """sigmoid(mean of the logits) of several heads' scores, 0 at padding, in the first's dtype."""
    # logit clamps scores off 0 and 1: a saturated member at ±inf would otherwise decide the mean alone
    logits = torch.stack([logit(s.float()) for s in scores]).mean(0)
    return torch.sigmoid(logits).masked_fill(~mask, 0.0).to(scores[0].dtype)


def members_of(model: nn.Module) -> List[nn.Module]:
    """The heads that train (each with its own loss): an ensemble's members, or the head itself."""
    return list(model.members) if isinstance(model, MeanOfLogits) else [model]


def bagged_members(model: nn.Module) -> List[nn.Module]:
    """The members of an ensemble whose members carry their own fused terms (``model.bagging``), else []."""
    own = ("normal_stats", "pseudo_stage")
    if isinstance(model, MeanOfLogits) and any(getattr(model.members[0], name, None) is not None for name in own):
        return list(model.members)
    return []
