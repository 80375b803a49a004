"""The per-segment prior of ``train.loss.topk_by`` distance / fused: how unlike normal video each
training snippet is.

Before the first step, normal statistics of the kind the head fuses after training (``model.normal_*``:
feature form, shrinkage, context, layer) are fitted on the normal training videos, and every training
snippet's distance to them is standardised by the normal snippets' own distances: 0 is a typical normal
snippet, 1 one sd further. With ``train.bags = resample`` the segments are the resampled ones the head
sees (each the mean of its snippets), and the statistics are fitted on those. The priors are a pure
function of the features, the split and the seed, so a resumed run recomputes the same ones.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from .checkpoint import normal_stats_of
from .fitted_terms import snippet_subset


@torch.no_grad()
def selection_priors(model_config, bags: Sequence[np.ndarray], normal: Sequence[int], seed: int,
                     cap: int = 20000, chunk: int = 4096) -> List[np.ndarray]:
    """(C, T) float32 priors of every bag (C, T, D); ``normal``: the positions of the normal training
    bags the statistics are fitted on. Distances are computed ``chunk`` snippets at a time."""
    if len(normal) == 0:
        raise ValueError("a distance prior needs normal training videos to fit on")
    stats = normal_stats_of(model_config)
    feats = [torch.tensor(bags[i]) for i in normal]       # copies: bags may be read-only
    stats.fit(feats, [torch.full(f.shape[:-1], 0.5) for f in feats], snippet_subset(seed, cap))
    mu, sd = (float(v) for v in stats.scale[:2])
    out = []
    for bag in bags:
        x = torch.tensor(bag)
        if stats.context > 1:                 # neighbourhoods need the whole row
            d = stats.distance(x)
        else:
            flat = x.reshape(-1, x.shape[-1])
            d = torch.cat([stats.distance(flat[i:i + chunk]) for i in range(0, flat.shape[0], chunk)])
        out.append(((d.reshape(bag.shape[:-1]) - mu) / sd).numpy().astype(np.float32))
    return out
