"""LTGS-Net head: Local Temporal (LT) + Global Spatial (GS) modules, fusion, classifier.

Follows ../shared/docs/LTGS.md. Input: segment features ``x`` (N, T, D) and an
optional validity mask (N, T) (True = a real segment, False = padding), so
videos of different lengths can share a batch without leaking into each other:
the temporal matrix H uses each video's own length, attention ignores padded
keys, GS pools over real segments only, and padded outputs are zero.

Output: :class:`HeadOutput` with ``scores`` (N, T) in [0, 1] and ``features``
(N, T, D), the segment representation L whose L2 norm is the "feature
magnitude" of the RTFM-style loss.

Readings fixed by LTGS.md, each a :class:`vadpipe.config.ModelConfig` field:
``h_reading`` = "reweight" (default, softmax(QKᵀ/√dk + log H)) or "literal"
(softmax((QKᵀ ⊙ H)/√dk)); ``decay`` False gives H = 1 (No-Decay); ``use_lt``
False replaces the encoder layer by the identity (w/o LT); ``gs`` = "full",
"avg" (g = mean over T of F, no parameters: GS→avg pooling) or "none" (w/o
GS: the fusion layer sees LT(F) alone, Linear D→D); ``heads`` = 1 (LT-1Head).

Localisation switches (not in the article; off here, the ``default`` preset sets some, measured by
tools/bench_accuracy.py): ``horizon`` N > 0 gives H a fixed local window of N segments instead of
the whole video, ``horizon_cap`` C > 0 only in videos longer than C (a window of C when N is 0),
``horizon_floor`` f keeps the segments beyond the window at H = f instead of 0, ``horizon_share`` s
gives the window to that share of the attention heads only (:func:`windowed_heads`), the others
keeping the whole-video H (local and global context side by side, as RTFM's multi-scale temporal
network pairs dilated convolutions with a non-local block); ``gs_gate`` scales the global vector by
a learned gate tanh(γ), γ = 0 at the start; ``context`` K > 0 (odd) adds to each segment a learned
mix of its K − 1 neighbours (a temporal convolution, zero at the start so the head begins as without
it) before LT and GS see the features. ``attn_dropout`` sets the attention
weights' dropout apart from ``lt_dropout`` (None: the same rate, as the article):
on CPU any attention dropout forces the unfused kernel, the largest cost of a
training step on long windows.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_head


class HeadOutput(NamedTuple):
    scores: Tensor                 # (N, T) anomaly scores in [0, 1]; 0 at padding
    features: Optional[Tensor]     # (N, T, D') segment representation (None for heads without one)


def full_mask(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """The validity mask (N, T) bool; all True when none is given."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:2])}")
    return mask.to(device=x.device, dtype=torch.bool)


def windowed_videos(lengths: Tensor, horizon_cap: int) -> Tensor:
    """(N,) bool: the videos a window applies to, those longer than ``horizon_cap`` (all when it is 0)."""
    return lengths > horizon_cap


def temporal_relation_matrix(lengths: Tensor, t_max: int, decay: bool = True, horizon: int = 0,
                             horizon_cap: int = 0, horizon_floor: float = 0.0) -> Tensor:
    """H (N, t_max, t_max): H[i, j] = cos(π|i−j| / 2T) = sin(π(T+|i−j|) / 2T), T = each video's length.

    ``horizon`` N > 0 replaces T by a fixed N and makes H 0 for |i − j| ≥ N (a local window: a
    segment's context no longer grows with the video). ``horizon_cap`` C > 0 limits that window to
    videos longer than C: those of up to C segments keep the article's H exactly, longer ones get a
    window of N segments (of C when N is 0). ``horizon_floor`` f in (0, 1) keeps a windowed video's far
    segments at H = f instead of 0 (H = max(window, f)): attenuated, not cut. Entries that involve
    padding are 1 (harmless, and finite under log; attention masks padded keys anyway).
    """
    idx = torch.arange(t_max, device=lengths.device, dtype=torch.float32)
    dist = (idx[:, None] - idx[None, :]).abs()
    if not decay:
        return torch.ones(lengths.shape[0], t_max, t_max, device=lengths.device)
    span = lengths.to(torch.float32).clamp(min=1.0)[:, None, None]
    if horizon > 0 or horizon_cap > 0:
        windowed = windowed_videos(lengths, horizon_cap)[:, None, None]
        span = torch.where(windowed, torch.full_like(span, float(horizon or horizon_cap)), span)
    h = torch.cos(math.pi * dist[None] / (2.0 * span))
    if horizon > 0 or horizon_cap > 0:      # in an unwindowed video |i - j| < T = span: nothing cut
        h = torch.where(dist[None] < span, h, torch.zeros_like(h))
        if horizon_floor > 0:
            h = torch.where(windowed, h.clamp(min=horizon_floor), h)
    valid = idx[None, :] < lengths[:, None]                       # (N, T)
    pair = valid[:, :, None] & valid[:, None, :]
    return torch.where(pair, h, torch.ones_like(h))


class TemporalAttention(nn.Module):
    """Multi-head self-attention carrying the temporal relationship matrix H."""

    def __init__(self, dim: int, heads: int, dropout: float, reading: str = "reweight"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads = {heads} does not divide feature dim {dim}")
        if reading not in ("reweight", "literal"):
            raise ValueError(f"unknown H reading {reading!r}")
        self.heads, self.reading, self.dropout = heads, reading, dropout
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, h: Tensor, mask: Tensor, h_rest: Optional[Tensor] = None,
                split: int = 0) -> Tensor:
        """``h`` (N, T, T) for every head; with ``h_rest``, ``h`` for the first ``split`` heads only and
        ``h_rest`` for the others (each group its own attention call: no per-head T x T bias)."""
        n, t, d = x.shape
        q, k, v = self.in_proj(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        pad = None if bool(mask.all()) else ~mask[:, None, None, :]   # (N, 1, 1, T) padded keys
        if h_rest is None:
            out = self._attend(q, k, v, h, pad)
        else:
            out = torch.cat([self._attend(q[:, :split], k[:, :split], v[:, :split], h, pad),
                             self._attend(q[:, split:], k[:, split:], v[:, split:], h_rest, pad)], dim=1)
        return self.out_proj(out.transpose(1, 2).reshape(n, t, d))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, h: Tensor, pad: Optional[Tensor]) -> Tensor:
        """Attention of heads (N, heads, T, dk) under H (N, T, T); ``pad`` (N, 1, 1, T) marks padded keys."""
        t, p = q.shape[2], (self.dropout if self.training else 0.0)
        if self.reading == "reweight":
            # softmax(S + log H) = rows of P·H renormalised; lets the fused SDPA kernel do the work
            # (no per-head T x T matrix is materialised, which matters for long test videos).
            bias = torch.log(h).to(q.dtype)[:, None]
            if pad is not None:
                bias = bias.masked_fill(pad, float("-inf"))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        else:
            # Query rows in blocks so a long video never holds all heads' T x T scores at once.
            step = t if t <= 1024 else max(1, (1 << 24) // (q.shape[1] * t))
            blocks = []
            for r in range(0, t, step):
                s = (q[:, :, r:r + step] @ k.transpose(-2, -1)) * h[:, None, r:r + step].to(q.dtype)
                s = s / math.sqrt(q.shape[-1])
                if pad is not None:
                    s = s.masked_fill(pad, float("-inf"))
                blocks.append(F.dropout(torch.softmax(s, dim=-1), p, self.training) @ v)
            out = torch.cat(blocks, dim=2)
        return out


def windowed_heads(heads: int, share: float) -> int:
    """How many of ``heads`` attention heads take the window under ``horizon_share`` ``share``: 0 (every
    head, no split) for share 0 or a single head, else round(share·heads) kept within [1, heads − 1]."""
    if not share or heads < 2:
        return 0
    return min(heads - 1, max(1, round(share * heads)))


class LocalTemporal(nn.Module):
    """Transformer encoder layer (post-norm, ReLU FFN) whose attention carries H."""

    def __init__(self, dim: int, heads: int = 16, ffn_dim: int = 2048, dropout: float = 0.1,
                 reading: str = "reweight", decay: bool = True, horizon: int = 0,
                 attn_dropout: Optional[float] = None, horizon_cap: int = 0, horizon_floor: float = 0.0,
                 horizon_share: float = 0.0):
        super().__init__()
        if horizon_share and not (0.0 < horizon_share < 1.0 and (horizon or horizon_cap)):
            raise ValueError(f"horizon_share must lie in (0, 1) with a window set, got {horizon_share}")
        self.decay, self.horizon, self.horizon_cap, self.horizon_floor = decay, horizon, horizon_cap, horizon_floor
        self.split = windowed_heads(heads, horizon_share)
        self.attn = TemporalAttention(dim, heads, dropout if attn_dropout is None else attn_dropout, reading)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1)
        h = temporal_relation_matrix(lengths, x.shape[1], self.decay, self.horizon, self.horizon_cap,
                                     self.horizon_floor)
        if self.split and bool(windowed_videos(lengths, self.horizon_cap).any()):
            # the first `split` heads see the window, the others the whole video (the article's H);
            # a batch with no windowed video takes the one-call path below, bit-identical to no split
            whole = temporal_relation_matrix(lengths, x.shape[1], self.decay)
            attended = self.attn(x, h, mask, h_rest=whole, split=self.split)
        else:
            attended = self.attn(x, h, mask)
        x = self.norm1(x + self.drop1(attended))
        return self.norm2(x + self.drop2(self.ffn(x)))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over T of real segments: (N, T, D) -> (N, D)."""
    if bool(mask.all()):
        return x.mean(1)
    m = mask[..., None].to(x.dtype)
    return (x.masked_fill(~mask[..., None], 0.0)).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    if bool(mask.all()):
        return x.amax(1)
    return x.masked_fill(~mask[..., None], float("-inf")).amax(1)


class GlobalSpatial(nn.Module):
    """g = ReLU(Linear(Conv1d_{2→1}([W1·avg_T F; W2·max_T F]))): one vector per video."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_avg = nn.Linear(dim, dim, bias=False)               # W1
        self.w_max = nn.Linear(dim, dim, bias=False)               # W2
        self.fuse = nn.Conv1d(2, 1, kernel_size=1)                  # adaptive weighting of the two rows
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        pooled = torch.stack([self.w_avg(masked_mean(x, mask)), self.w_max(masked_max(x, mask))], dim=1)
        return F.relu(self.mlp(self.fuse(pooled).squeeze(1)))


class ScoreMLP(nn.Module):
    """Classifier D → hidden… → 1: Linear, ReLU, Dropout per hidden layer, then a sigmoid."""

    def __init__(self, dim: int, hidden: Sequence[int] = (512, 128), dropout: float = 0.7):
        super().__init__()
        layers, width = [], dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.net(x).squeeze(-1))


@register_head("ltgs")
class LTGS(nn.Module):
    """The LTGS head. See the module docstring for the switches."""

    def __init__(self, feature_dim: int = 2048, heads: int = 16, ffn_dim: int = 2048, lt_dropout: float = 0.1,
                 h_reading: str = "reweight", decay: bool = True, use_lt: bool = True, gs: str = "full",
                 hidden: Sequence[int] = (512, 128), dropout: float = 0.7, gs_gate: bool = False,
                 horizon: int = 0, attn_dropout: Optional[float] = None, context: int = 0,
                 horizon_cap: int = 0, horizon_floor: float = 0.0, horizon_share: float = 0.0):
        super().__init__()
        if context < 0 or context and context % 2 == 0:
            raise ValueError(f"context must be 0 or an odd kernel size, got {context}")
        if gs not in ("full", "avg", "none"):
            raise ValueError(f"unknown gs mode {gs!r}")
        d = feature_dim
        self.gs_mode = gs
        self.lt = (LocalTemporal(d, heads, ffn_dim, lt_dropout, h_reading, decay, horizon, attn_dropout,
                                 horizon_cap, horizon_floor, horizon_share) if use_lt else None)
        self.gs = GlobalSpatial(d) if gs == "full" else None
        # gs_gate: g enters as tanh(γ)·g with γ = 0 at the start, so every segment starts from its own
        # evidence and the one-per-video vector only weighs in as far as the losses ask for it.
        self.gs_gate = nn.Parameter(torch.zeros(())) if gs_gate and gs != "none" else None
        # One Linear over [LT(F); g] (2D → D), applied as two halves so g is projected
        # once per video instead of once per segment (same parameters, same result).
        self.fusion = nn.Linear(2 * d if gs != "none" else d, d)
        self.classifier = ScoreMLP(d, hidden, dropout)
        # Built last so the other modules draw the same initial weights with or without it.
        self.context = nn.Conv1d(d, d, context, padding=context // 2) if context else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def global_vector(self, x: Tensor, mask: Tensor) -> Optional[Tensor]:
        if self.gs_mode == "full":
            return self.gs(x, mask)
        if self.gs_mode == "avg":
            return masked_mean(x, mask)
        return None

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> HeadOutput:
        mask = full_mask(x, mask)
        padded = not bool(mask.all())          # skip the masking copies for full-length batches (training)
        if padded:
            x = x.masked_fill(~mask[..., None], 0.0)
        if self.context is not None:      # padding is zero, as the convolution's own edge padding
            x = x + self.context(x.transpose(1, 2)).transpose(1, 2)
            if padded:
                x = x.masked_fill(~mask[..., None], 0.0)
        t = self.lt(x, mask) if self.lt is not None else x
        g = self.global_vector(x, mask)
        if g is None:
            rep = self.fusion(t)
        else:
            d = t.shape[-1]
            w, b = self.fusion.weight, self.fusion.bias
            g_term = F.linear(g, w[:, d:])[:, None, :]
            if self.gs_gate is not None:
                g_term = torch.tanh(self.gs_gate) * g_term
            rep = F.linear(t, w[:, :d], b) + g_term
        rep = F.relu(rep)
        scores = self.classifier(rep)
        if padded:
            rep = rep.masked_fill(~mask[..., None], 0.0)
            scores = scores.masked_fill(~mask, 0.0)
        return HeadOutput(scores, rep)
