"""Loss terms of LTGS (and its baselines), each weighted from :class:`vadpipe.config.LossConfig`.

A batch is laid out as ``n_anomalous`` anomalous rows followed by the normal
rows (each crop of a video is its own row). Anomalous row i is paired with
normal row i when both halves have the same size, otherwise every anomalous row
is paired with every normal row.

Terms (LTGS.md, "Losses"):

- ``mag``: G(F) = mean L2 norm of the top-k segments by norm;
  mean over pairs of (|ε − G(F_a)| + G(F_n))².
- ``cls``: BCE at the top-k segments. ``cls_target = "dynamic"``: each top-k
  score against its dynamic label ỹ (normal rows: 0); ``"video-mean"`` (RTFM):
  the mean top-k score against the video label.
- ``rank``: mean over pairs of max(0, 1 − (max ŷ_a − max ŷ_n)).
- ``sparse``: mean ŷ over anomalous rows.
- ``smooth``: mean |ŷ_t − ŷ_{t+1}| over anomalous rows (or all rows).
  ``reg_form`` gives these two the forms their weights were set for in the baselines' papers: ``rtfm``
  the L2 norm of the anomalous scores and the sum of squared differences over the batch, ``sultani``
  each video's sum of scores and of squared differences, averaged over videos.
- ``normal`` (not in the article): BCE of every real segment of the normal rows against 0, so
  a segment is pushed down wherever it looks like normal video, not only at a normal video's top-k.
- ``bottom`` (not in the article): BCE of the bottom ``bottom_share`` of each anomalous row's real
  segments (by score, max(1, ⌊share·T⌋)) against 0. Video labels say an anomalous video holds an
  event somewhere, not everywhere; its least anomalous-looking segments are the likeliest normal
  ones, so the head is taught to rank *inside* the video, not only to tell videos apart.
  ``bottom_by = "distance"`` takes them by the trainer's distance prior instead (the segments most
  like normal video), so the head's own mistakes do not choose its negatives.

``topk_keep`` < 1 draws the top-k each step from that random share of the segments (RTFM's 0.3);
with ``topk_keep_k = "kept"`` and ``k_share``, k is that share of the segments kept (⌈k_share·keep·T⌉), so a
long video's top-k stays a tenth of its candidates instead of a third of them.
``k_share`` > 0 makes k follow each video's real length (max(1, ⌈share·T⌉), not a fixed 3 whatever
T); ``k_upto`` > 0 lets each row's k grow from there to every top candidate the head scores at least
``k_level``, at most ⌈k_upto·T⌉ (k follows the event's length as the head reads it: a short event keeps a
small k, a long one is learnt whole); ``label_smoothing`` ε moves every BCE target to ε/2 / 1 − ε/2
(finite logits: no ties at 0/1).

Top-k segments are chosen by representation norm (``topk_by = "magnitude"``,
RTFM) or by score; a head without a representation always uses scores. Two
choices (not in the article) rank by a per-segment ``prior`` the trainer
passes in, the standardised distance of the segment's feature to the normal
training snippets (as BN-WVAD's sample-level selection): ``"distance"`` by the
prior alone, ``"fused"`` by logit(score) + ``prior_weight`` · prior. The head
then learns from the segments least like normal video rather than from those
it already scores high, whose choice video-level cues can drive.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .normal_stats import logit


def _fill(values: Tensor, mask: Optional[Tensor], value: float) -> Tensor:
    return values if mask is None else values.masked_fill(~mask, value)


def topk_indices(values: Tensor, k: int, mask: Optional[Tensor] = None) -> Tensor:
    """Indices (N, k') of the k largest valid entries per row, k' = min(k, T)."""
    k = min(k, values.shape[1])
    return _fill(values.detach(), mask, float("-inf")).topk(k, dim=1).indices


def draw_kept(values: Tensor, keep: float) -> Tensor:
    """Bool mask of ``values``' shape, True for a random ``keep`` share of the entries (torch's global
    generator, as dropout draws)."""
    return torch.rand(values.shape, device=values.device) < keep


def drop_candidates(values: Tensor, keep: float, drawn: Optional[Tensor] = None) -> Tensor:
    """``values`` with a random (1 − keep) of the entries (those not ``drawn``, default a new draw) moved
    below every kept one, order kept within each group: a top-k over the result is drawn from the kept
    segments while a row has k of them (RTFM's dropout mask on its magnitudes before the top-k)."""
    values = values.detach()
    dropped = ~(draw_kept(values, keep) if drawn is None else drawn)
    finite = values[torch.isfinite(values)]
    span = (finite.max() - finite.min() + 1.0) if finite.numel() else values.new_ones(())
    return torch.where(dropped, values - span, values)


def k_share_of(cfg) -> float:
    """k's share of each video's real length (0: a fixed k): ``k_share``, times ``topk_keep`` when k is a share of
    the segments the draw keeps (``topk_keep_k = "kept"``, as RTFM takes 3 of the ~10 of 32 it keeps)."""
    share, keep = getattr(cfg, "k_share", 0.0), getattr(cfg, "topk_keep", 1.0)
    return share * keep if keep < 1.0 and getattr(cfg, "topk_keep_k", "video") == "kept" else share


def real_lengths(mask: Optional[Tensor], n_rows: int, t: int, device) -> Tensor:
    """(N,) real segments per row: the mask's count, or T for every row without a mask."""
    return mask.sum(1) if mask is not None else torch.full((n_rows,), t, device=device)


def k_per_row(mask: Optional[Tensor], n_rows: int, t: int, k: int, share: float, device) -> Tensor:
    """(N,) top-k sizes: ``k`` for every row, or max(1, ceil(share · real length)) when share > 0."""
    lengths = real_lengths(mask, n_rows, t, device)
    if share > 0:
        return torch.clamp(torch.ceil(lengths.float() * share).long(), min=1)
    return torch.clamp(lengths, max=k).long()


def grown_k(top_scores: Tensor, top_drawn: Optional[Tensor], lo: Tensor, hi: Tensor, level: float) -> Tensor:
    """(N,) top-k sizes that follow the head's own reading of the event's length: the count of each row's
    top-ranked candidates (``top_scores``, rank order, only those ``top_drawn``) scoring at least ``level``,
    clamped to [lo, hi]."""
    above = top_scores.detach() >= level
    if top_drawn is not None:
        above &= top_drawn
    within = torch.arange(top_scores.shape[1], device=top_scores.device)[None, :] < hi[:, None]
    return torch.maximum(torch.minimum((above & within).sum(1), hi), lo)


def kept(idx: Tensor, ks: Tensor) -> Tensor:
    """(N, kmax) float mask of each row's first ks[i] entries of its top-k indices ``idx``."""
    return (torch.arange(idx.shape[1], device=idx.device)[None, :] < ks[:, None]).float()


def bottom_loss(scores: Tensor, mask: Optional[Tensor], share: float, smoothing: float = 0.0,
                rank: Optional[Tensor] = None) -> Tensor:
    """BCE against 0 of each row's max(1, floor(share · real length)) lowest real segments by ``rank``
    (default: their scores)."""
    lengths = real_lengths(mask, scores.shape[0], scores.shape[1], scores.device)
    ks = torch.clamp(torch.floor(lengths.float() * share).long(), min=1)
    idx = topk_indices(-(scores if rank is None else rank), int(ks.max()), mask)   # lowest first
    low = scores.gather(1, idx)
    return _bce(low, torch.zeros_like(low), smoothing, kept(idx, ks))


def topk_mean(values: Tensor, idx: Tensor, ks: Tensor) -> Tensor:
    """Mean of ``values`` at each row's first ks[i] top-k indices (idx sorted by rank, N x kmax)."""
    return (values.gather(1, idx) * kept(idx, ks)).sum(1) / ks.clamp(min=1)


def _pairs(a: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    """Align per-row anomalous and normal values: elementwise when sizes match, else all pairs."""
    if a.shape[0] == n.shape[0]:
        return a, n
    return a[:, None].expand(-1, n.shape[0]), n[None, :].expand(a.shape[0], -1)


def magnitude_loss(mag_a: Tensor, mag_n: Tensor, margin: float, idx_a: Tensor, idx_n: Tensor,
                   ks_a: Optional[Tensor] = None, ks_n: Optional[Tensor] = None) -> Tensor:
    """(|margin − G(F_a)| + G(F_n))², G = mean of the norms at the given top-k indices (the first
    ks[i] of row i when per-row sizes are given)."""
    g_a = mag_a.gather(1, idx_a).mean(1) if ks_a is None else topk_mean(mag_a, idx_a, ks_a)
    g_n = mag_n.gather(1, idx_n).mean(1) if ks_n is None else topk_mean(mag_n, idx_n, ks_n)
    a, n = _pairs((margin - g_a).abs(), g_n)
    return ((a + n) ** 2).mean()


def ranking_loss(s_a: Tensor, s_n: Tensor, mask_a: Optional[Tensor] = None, mask_n: Optional[Tensor] = None) -> Tensor:
    a, n = _pairs(_fill(s_a, mask_a, 0.0).amax(1), _fill(s_n, mask_n, 0.0).amax(1))
    return F.relu(1.0 - (a - n)).mean()


REG_FORMS = ("mean", "rtfm", "sultani")


def sparsity_loss(scores: Tensor, mask: Optional[Tensor] = None, form: str = "mean") -> Tensor:
    """``mean`` (LTGS.md): the mean score; ``rtfm``: the L2 norm of all the scores (RTFM's
    ``torch.norm`` over the batch's flattened anomalous scores); ``sultani``: each row's sum, averaged."""
    s = _fill(scores, mask, 0.0)
    if form == "rtfm":
        return s.norm()
    if form == "sultani":
        return s.sum(1).mean()
    return s.mean() if mask is None else s.sum() / mask.sum().clamp(min=1)


def smoothness_loss(scores: Tensor, mask: Optional[Tensor] = None, form: str = "mean") -> Tensor:
    """Differences of neighbouring real segments within each row. ``mean`` (LTGS.md): their mean absolute
    value; ``rtfm``: the sum of their squares over the batch; ``sultani``: each row's sum of squares,
    averaged. (RTFM's own code flattens the batch first and so also pairs one video's last segment with the
    next video's first; that pair is left out here.)"""
    diff = scores[:, 1:] - scores[:, :-1]
    if mask is not None:
        diff = diff.masked_fill(~(mask[:, 1:] & mask[:, :-1]), 0.0)
    if form == "rtfm":
        return (diff ** 2).sum()
    if form == "sultani":
        return (diff ** 2).sum(1).mean() if diff.numel() else scores.sum() * 0.0
    if mask is None:
        return diff.abs().mean() if diff.numel() else scores.sum() * 0.0
    return diff.abs().sum() / (mask[:, 1:] & mask[:, :-1]).sum().clamp(min=1)


def _bce(p: Tensor, target: Tensor, smoothing: float = 0.0, keep: Optional[Tensor] = None) -> Tensor:
    """Mean BCE; with ``keep`` (a 0/1 mask of p's shape) the mean over the kept entries only."""
    # Computed in float32 outside autocast (BCE is unsafe in half precision). Label smoothing moves
    # the targets to eps/2 and 1 - eps/2, so the optimum logit is finite and scores do not tie at 0/1.
    target = target.float() * (1.0 - smoothing) + 0.5 * smoothing
    loss = F.binary_cross_entropy(p.float().clamp(1e-7, 1 - 1e-7), target, weight=keep)
    return loss if keep is None else loss * keep.numel() / keep.sum()


PRIOR_RANKINGS = ("distance", "fused")     # top-k choices that need the trainer's per-segment prior


def needs_prior(cfg) -> bool:
    """Whether a LossConfig's choices read the trainer's per-segment distance prior."""
    return cfg.topk_by in PRIOR_RANKINGS or (cfg.w_bottom > 0 and getattr(cfg, "bottom_by", "score") == "distance")


def ranking_values(cfg, scores: Tensor, mags: Optional[Tensor], prior: Optional[Tensor]) -> Tensor:
    """(N, T) values whose top-k are the selected segments, by ``cfg.topk_by`` (see the module docstring)."""
    if cfg.topk_by in PRIOR_RANKINGS:
        if prior is None:
            raise ValueError(f"topk_by = {cfg.topk_by} needs each segment's distance prior")
        if cfg.topk_by == "distance":
            return prior
        return logit(scores.detach().float()) + cfg.prior_weight * prior
    return mags if (cfg.topk_by == "magnitude" and mags is not None) else scores


def compute_losses(scores: Tensor, features: Optional[Tensor], n_anomalous: int, targets: Tensor, cfg,
                   mask: Optional[Tensor] = None, prior: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """All weighted terms plus ``total``.

    scores (N, T) in [0, 1]; features (N, T, D) or None; the first
    ``n_anomalous`` rows are anomalous; targets (N, T) the dynamic labels
    (video labels broadcast when dynamic labels are off); cfg a LossConfig;
    prior (N, T) the per-segment selection prior of ``topk_by`` distance / fused.
    Returned values are the unweighted terms; ``total`` is the weighted sum.
    """
    scores = scores.float()
    na = n_anomalous
    m_a = None if mask is None else mask[:na]
    m_n = None if mask is None else mask[na:]
    mags = features.float().norm(dim=-1) if features is not None else None
    rank_by = ranking_values(cfg, scores, mags, prior)
    keep_share = getattr(cfg, "topk_keep", 1.0)
    drawn = None
    if keep_share < 1.0:
        drawn = draw_kept(rank_by, keep_share)
        rank_by = drop_candidates(rank_by, keep_share, drawn)
    share, upto = k_share_of(cfg), getattr(cfg, "k_upto", 0.0)
    smoothing = getattr(cfg, "label_smoothing", 0.0)
    n_rows, t = scores.shape
    if upto > 0:    # k grows from its share to the candidates the head scores past k_level, up to k_upto · T
        lo = k_per_row(mask, n_rows, t, cfg.k, share, scores.device)
        hi = torch.maximum(k_per_row(mask, n_rows, t, cfg.k, upto, scores.device), lo)
        idx = topk_indices(rank_by, int(hi.max()), mask)
        ks = grown_k(scores.gather(1, idx), None if drawn is None else drawn.gather(1, idx), lo, hi,
                     getattr(cfg, "k_level", 0.5))
    elif share > 0:   # k follows each video's real length; rows are ranked, the first ks[i] count
        ks = k_per_row(mask, n_rows, t, cfg.k, share, scores.device)
        idx = topk_indices(rank_by, int(ks.max()), mask)
    else:
        ks, idx = None, topk_indices(rank_by, cfg.k, mask)
        if mask is not None:   # a video shorter than k counts its real segments only, never padding
            real = k_per_row(mask, n_rows, t, cfg.k, 0.0, scores.device)
            ks = real if bool((real < idx.shape[1]).any()) else None

    terms: Dict[str, Tensor] = {}
    weights = {"mag": cfg.w_mag, "cls": cfg.w_cls, "rank": cfg.w_rank, "sparse": cfg.w_sparse,
               "smooth": cfg.w_smooth, "normal": getattr(cfg, "w_normal", 0.0), "bottom": getattr(cfg, "w_bottom", 0.0)}
    if cfg.w_mag > 0:
        if mags is None:
            raise ValueError("the magnitude loss needs a head with a segment representation")
        terms["mag"] = magnitude_loss(mags[:na], mags[na:], cfg.margin, idx[:na], idx[na:],
                                      None if ks is None else ks[:na], None if ks is None else ks[na:])
    if cfg.w_cls > 0:
        top = scores.gather(1, idx)
        keep = None if ks is None else kept(idx, ks)
        if cfg.cls_target == "dynamic":
            terms["cls"] = _bce(top, targets.gather(1, idx), smoothing, keep)
        else:
            video_label = torch.zeros(scores.shape[0], device=scores.device)
            video_label[:na] = 1.0
            mean_top = top.mean(1) if ks is None else topk_mean(scores, idx, ks)
            terms["cls"] = _bce(mean_top, video_label, smoothing)
    if weights["normal"] > 0 and scores.shape[0] > na:
        normal = scores[na:] if m_n is None else scores[na:][m_n]
        terms["normal"] = _bce(normal, torch.zeros_like(normal), smoothing)
    if weights["bottom"] > 0 and na > 0:
        by_prior = getattr(cfg, "bottom_by", "score") == "distance"
        if by_prior and prior is None:
            raise ValueError("bottom_by = distance needs each segment's distance prior")
        terms["bottom"] = bottom_loss(scores[:na], m_a, cfg.bottom_share, smoothing,
                                      prior[:na] if by_prior else None)
    if cfg.w_rank > 0:
        terms["rank"] = ranking_loss(scores[:na], scores[na:], m_a, m_n)
    form = getattr(cfg, "reg_form", "mean")
    if cfg.w_sparse > 0:
        terms["sparse"] = sparsity_loss(scores[:na], m_a, form)
    if cfg.w_smooth > 0:
        terms["smooth"] = (smoothness_loss(scores[:na], m_a, form) if cfg.smooth_on == "anomalous"
                           else smoothness_loss(scores, mask, form))
    total = sum((weights[name] * value for name, value in terms.items()), scores.new_zeros(()))
    terms["total"] = total
    return terms
