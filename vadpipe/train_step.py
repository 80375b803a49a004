"""One optimiser step of the training loop: a batch's forward pass, loss terms, backward and update.

Pure of the run's state (the loop in :mod:`vadpipe.train` builds the batches and owns the model and
optimiser), so a benchmark (``tools/bench_train.py``) and tests step a head exactly as training does.
An ensemble's members step together on the sum of their own losses (:func:`members_step`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch

from .device import autocast
from .errors import TrainingDiverged
from .models.ensemble import members_of
from .models.losses import compute_losses


@dataclass
class Batch:
    x: torch.Tensor                       # (rows, T, D)
    targets: torch.Tensor                 # (rows, T)
    n_anomalous: int                      # the first rows are anomalous
    mask: Optional[torch.Tensor] = None   # (rows, T) real segments of padded rows
    prior: Optional[torch.Tensor] = None  # (rows, T) selection prior (``train.loss.topk_by`` distance / fused)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, targets: torch.Tensor,
               n_anomalous: int, loss_cfg, use_amp: bool = False, mask: Optional[torch.Tensor] = None,
               crop_group: int = 1) -> Dict[str, float]:
    """One optimiser step on a batch (first ``n_anomalous`` rows anomalous; ``mask`` (N, T) marks real
    segments of padded rows); returns the loss terms. ``crop_group`` G > 1: every G consecutive rows
    are the crops of one video, scored as the max over them (``train.crops: max``)."""
    heads = members_of(model)                # an ensemble given here trains every member on this batch
    return members_step(heads, opt, [Batch(x, targets, n_anomalous, mask)] * len(heads), loss_cfg, use_amp,
                        crop_group)


def members_step(heads: Sequence[torch.nn.Module], opt: torch.optim.Optimizer, batches: Sequence[Batch], loss_cfg,
                 use_amp: bool = False, crop_group: int = 1) -> Dict[str, float]:
    """One optimiser step on the sum of each head's losses on its own batch; the terms returned are
    the mean over heads. The heads share no parameter, so each one's gradient is its own loss's and
    Adam (per-parameter) steps it as if it trained alone: an ensemble's members train independently."""
    per_head = [_head_losses(h, b, loss_cfg, use_amp, crop_group) for h, b in zip(heads, batches)]
    total = sum(terms["total"] for terms in per_head)
    if not torch.isfinite(total):     # a step on it would carry NaN into every weight
        raise TrainingDiverged("the loss is " + ("NaN" if torch.isnan(total) else "infinite"))
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return {k: float(sum(terms[k].detach() for terms in per_head)) / len(per_head) for k in per_head[0]}


def _head_losses(head: torch.nn.Module, batch: Batch, loss_cfg, use_amp: bool, crop_group: int):
    head.train()
    x, mask, targets, n_anomalous, prior = batch.x, batch.mask, batch.targets, batch.n_anomalous, batch.prior
    with autocast(x.device, "bfloat16" if use_amp else "float32"):
        out = head(x) if mask is None else head(x, mask)
    scores, features = out.scores, out.features
    if not torch.isfinite(scores).all():   # BCE would stop on them with torch's own words
        raise TrainingDiverged("the head's scores became NaN or infinite")
    if crop_group > 1:
        scores, features, mask, prior = max_over_crops(scores, features, mask, crop_group, prior)
        targets, n_anomalous = targets[::crop_group], n_anomalous // crop_group
    return compute_losses(scores, features, n_anomalous, targets, loss_cfg, mask, prior)


def max_over_crops(scores: torch.Tensor, features: Optional[torch.Tensor], mask: Optional[torch.Tensor],
                   group: int, prior: Optional[torch.Tensor] = None):
    """Rows (N*G, T) → (N, T): each segment's score is its best crop's, with that crop's representation
    (and selection prior; the 4th value, None without one)."""
    n, t = scores.shape[0] // group, scores.shape[1]
    s = scores.view(n, group, t)
    best = s.argmax(1)                                               # (N, T)
    reduced = s.gather(1, best[:, None]).squeeze(1)
    if features is not None:
        f = features.view(n, group, t, -1)
        features = f.gather(1, best[:, None, :, None].expand(-1, 1, -1, f.shape[-1])).squeeze(1)
    if prior is not None:
        prior = prior.view(n, group, t).gather(1, best[:, None]).squeeze(1)
    return reduced, features, None if mask is None else mask[::group], prior
