"""Dynamic segment labels (LTGS Algorithm 1).

A table ỹ[video, segment] over every training video's bag segments, initialised
to the video label (anomalous: all 1, normal: all 0). Normal rows never change.
After a warm-up of β iterations, and then every β iterations, the network runs
in eval mode over all anomalous training bags; for each video the top-k
segments (by the same criterion as the loss: representation norm or score) are
taken, the top-1 is pinned to 1 and the other top-k are updated:

- ``soft`` (default): ỹ ← α ỹ + (1 − α) ŷ_eval, α = 0.9;
- ``hard`` (ablation Hard-Update): ỹ ← 1[ŷ_eval > 0.5];
- ``off`` (ablation w/o Dyn): never updated.

Segments outside the top-k keep their label. Schedule: an update happens before
the training step of iteration i (0-based count of completed steps) when
i ≥ β and i mod β = 0.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

MODES = ("soft", "hard", "off")


def update_rows(rows: Tensor, scores: Tensor, rank_by: Tensor, k: int, mode: str = "soft",
                alpha: float = 0.9) -> Tensor:
    """New label rows (M, S) for anomalous videos from eval scores (M, S) and ranking values (M, S)."""
    if mode not in MODES:
        raise ValueError(f"unknown dynamic label mode {mode!r}")
    if mode == "off":
        return rows.clone()
    k = min(k, rows.shape[1])
    idx = rank_by.topk(k, dim=1).indices
    out = rows.clone()
    rest = idx[:, 1:]
    old, new = out.gather(1, rest), scores.to(out.dtype).gather(1, rest)
    updated = alpha * old + (1.0 - alpha) * new if mode == "soft" else (new > 0.5).to(out.dtype)
    out.scatter_(1, rest, updated)
    out.scatter_(1, idx[:, :1], 1.0)
    return out


class DynamicLabels:
    """The label table for ``labels`` (N,) 0/1 video labels and ``segments`` per bag."""

    def __init__(self, labels, segments: int, mode: str = "soft", alpha: float = 0.9, beta: int = 500, k: int = 3):
        if mode not in MODES:
            raise ValueError(f"unknown dynamic label mode {mode!r}")
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
        self.is_anomalous = labels > 0.5
        self.table = labels[:, None].repeat(1, segments)
        self.mode, self.alpha, self.beta, self.k = mode, alpha, beta, k

    def due(self, iteration: int) -> bool:
        return self.mode != "off" and iteration >= self.beta and iteration % self.beta == 0

    def rows(self, index) -> Tensor:
        return self.table[torch.as_tensor(np.asarray(index), dtype=torch.long)]

    def update(self, videos, scores: Tensor, rank_by: Tensor) -> None:
        """Apply the rule to the given (anomalous) video indices with their eval scores/ranking (M, S)."""
        videos = torch.as_tensor(np.asarray(videos), dtype=torch.long)
        if bool((~self.is_anomalous[videos]).any()):
            raise ValueError("dynamic labels of normal videos never change")
        self.table[videos] = update_rows(self.table[videos], scores.detach().cpu().float(),
                                         rank_by.detach().cpu().float(), self.k, self.mode, self.alpha)

    def state_dict(self) -> dict:
        return {"table": self.table.clone()}

    def load_state_dict(self, state: dict) -> None:
        table = state["table"]
        if table.shape != self.table.shape:
            raise ValueError(f"label table shape {tuple(table.shape)} != {tuple(self.table.shape)}")
        self.table = table.clone().float()
