"""Baseline heads in the LTGS harness (same inputs, outputs, masks, losses and loop).

- :class:`RTFMHead` — RTFM-style (Tian et al., ICCV 2021): a multi-scale temporal
  network (three dilated temporal convolutions plus a self-attention branch,
  fused by a temporal convolution, with a residual) gives the segment
  representation whose L2 norm feeds the magnitude loss; the same classifier as
  LTGS scores segments. No LT, no GS. As in RTFM, the representation is dropped
  out (the classifier's rate) in training, and the top-k is drawn each step from
  a random 30 % of the segments (``train.loss.topk_keep``). Left out: batch norm
  (so that padded batches give exactly the per-video result); the non-local
  block's 1/N normalisation and zero-initialised output (softmax attention
  here); averaging each video's crops before the top-k (each crop is its own
  row, as everywhere in vadpipe).
- :class:`MILHead` — Sultani et al. (CVPR 2018): an MLP D→512→32→1 (dropout 0.6)
  on each segment, trained with the ranking hinge plus sparsity and smoothness
  (see vadpipe.presets.use_model for the loss weights). It has no representation,
  so ``features`` is None.

Both accept (N, T, D) plus an optional validity mask (N, T) and return
:class:`~vadpipe.models.ltgs.HeadOutput`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ltgs import HeadOutput, ScoreMLP, full_mask
from .registry import register_head


class SelfAttention1d(nn.Module):
    """Non-local (embedded dot-product) block over time with a residual; padded keys ignored."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.theta = nn.Conv1d(channels, inner, 1)
        self.phi = nn.Conv1d(channels, inner, 1)
        self.g = nn.Conv1d(channels, inner, 1)
        self.out = nn.Conv1d(inner, channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:          # x (N, C, T)
        q, k, v = (f(x).transpose(1, 2) for f in (self.theta, self.phi, self.g))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])
        return x + self.out(y.transpose(1, 2))


class TemporalPyramid(nn.Module):
    """RTFM's multi-scale temporal network, in outline: dilations 1, 2, 4 + self-attention, fused."""

    def __init__(self, dim: int):
        super().__init__()
        c = max(1, dim // 4)
        self.dilated = nn.ModuleList(nn.Conv1d(dim, c, 3, padding=d, dilation=d) for d in (1, 2, 4))
        self.reduce = nn.Conv1d(dim, c, 1)
        self.attention = SelfAttention1d(c, max(1, c // 2))
        self.fuse = nn.Conv1d(4 * c, dim, 3, padding=1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:          # x (N, T, D)
        keep = mask[:, None, :].to(x.dtype)                         # zero padding between layers
        xt = x.transpose(1, 2) * keep
        branches = [F.relu(conv(xt)) for conv in self.dilated]
        branches.append(self.attention(F.relu(self.reduce(xt)), mask))
        y = F.relu(self.fuse(torch.cat(branches, dim=1) * keep))
        return (y * keep).transpose(1, 2) + x


@register_head("rtfm")
class RTFMHead(nn.Module):
    def __init__(self, feature_dim: int = 2048, hidden: Sequence[int] = (512, 128), dropout: float = 0.7):
        super().__init__()
        self.temporal = TemporalPyramid(feature_dim)
        self.drop = nn.Dropout(dropout)     # RTFM drops out the representation itself, so its norms train noisy
        self.classifier = ScoreMLP(feature_dim, hidden, dropout)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        mask = full_mask(x, mask)
        x = x.masked_fill(~mask[..., None], 0.0)
        rep = self.drop(self.temporal(x, mask)).masked_fill(~mask[..., None], 0.0)
        return HeadOutput(self.classifier(rep).masked_fill(~mask, 0.0), rep)


@register_head("mil")
class MILHead(nn.Module):
    def __init__(self, feature_dim: int = 2048, hidden: Sequence[int] = (512, 32), dropout: float = 0.6):
        super().__init__()
        self.classifier = ScoreMLP(feature_dim, hidden, dropout)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        mask = full_mask(x, mask)
        return HeadOutput(self.classifier(x).masked_fill(~mask, 0.0), None)
