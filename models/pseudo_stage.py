"""A second, self-trained stage on the head's own pseudo-labels (MIST, Feng et al., CVPR 2021, in its
simplest form): after training, the head scores its training videos; every snippet of a normal video
is labelled 0 and, in each anomalous video, the top ``share`` of its snippets 1 and the bottom
``share`` 0 (the rest left out). A logistic regression on unit-length snippet features learns those
labels, so it sees anomalous-video snippets the head ranked low as negatives: the head itself only
ever learnt "this video holds an event". Its logit, standardised on the normal training snippets (z₂)
and put in the units of the head's own (fused) logit ℓ (σ₁: ℓ's spread on those snippets), is added to ℓ:

    s = ℓ + weight · σ₁ · z₂,    score = sigmoid(b(s)),   b(s) = s for |s| ≤ 8, 8 + 8 tanh((|s| − 8) / 8) beyond

so that weight 0 gives back the head's scores exactly and the stage changes only the order it adds; b
keeps every score off 0 and 1 (|b| < 16), and is the identity over the range of ℓ (the head's scores,
squashed by models/normal_stats.py, have |ℓ| < 8). Until 2026-12-05 the stage fused standardised logits,
z₁ + weight · z₂ with z₁ = (ℓ − μ₁) / σ₁, squashed again: the same order before the squash, but a second
squash of the head's scores that test-time smoothing and frame interpolation then average, so weight 0
did not give the head back (on long videos: Ped1 long 80.6 → 79.3 frame AUC, the generated features'
short events 100.0 → 97.1; docs/localisation.md). A stage fitted then keeps that fusion (``scale[4]`` 1,
now 2), so its checkpoint scores as it did.

Fitted once after training on training videos only (never held-out, validation or test videos) and
kept as buffers in the head's state dict, so a checkpoint carries it.

σ₁ comes from ``unit``: "train" takes ℓ's spread on the normal training snippets, which the head was
trained to push to one value and the normal statistics were fitted on (0.23–0.33 on UCSD Ped1 with the
default's statistics); "held-out" takes it on the held-out normal videos that calibrate the threshold
(``set_unit``), the spread new normal video gets (1.0–2.5 on Ped1 with ``normal_standardise``
"held-out"), so a weight means the same against ℓ's variation on new video whatever the set's size
(docs/localisation.md, "The stage in the units of new video").
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .normal_stats import SQUASH, logit, spread, squashed_score, take_span


def pseudo_labels(scores: np.ndarray, anomalous: bool, share: float) -> Tuple[np.ndarray, np.ndarray]:
    """(kept snippet indices, their 0/1 labels) of one video's (T,) scores: all 0 for a normal video;
    for an anomalous one the top ``share`` of snippets 1 and the bottom ``share`` 0."""
    t = len(scores)
    if not anomalous:
        return np.arange(t), np.zeros(t)
    rank = (np.argsort(np.argsort(scores, kind="stable"), kind="stable") / (t - 1) if t > 1
            else np.ones(t))                   # 0 lowest, 1 highest; a lone snippet is its video's top
    top, bottom = np.flatnonzero(rank >= 1 - share), np.flatnonzero(rank <= share)
    bottom = np.setdiff1d(bottom, top)          # a one-snippet video is a positive, not both
    return np.concatenate([top, bottom]), np.concatenate([np.ones(top.size), np.zeros(bottom.size)])


HEAD_UNITS = 2.0           # scale[4] of a stage fused in the head's units (module docstring)
# Where σ₁, the stage's unit, is measured: the normal training snippets, or held-out normal videos (set_unit).
UNITS = ("train", "held-out")


def bounded_logit(s: Tensor) -> Tensor:
    """s over |s| ≤ 8 (where the head's squashed logits lie), softly bounded by 16 beyond (monotone):
    sigmoid of it never rounds to 0 or 1, even in float32."""
    beyond = s.abs() - SQUASH
    return torch.where(beyond <= 0, s, torch.sign(s) * (SQUASH + SQUASH * torch.tanh(beyond.clamp(min=0) / SQUASH)))


class PseudoStage(nn.Module):
    def __init__(self, dim: int, weight: float = 1.0, share: float = 0.3, c: float = 1.0,
                 span: Tuple[int, int] = (0, 0), unit: str = "train"):
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"pseudo-label stage unit {unit!r}: expected one of {', '.join(UNITS)}")
        self.weight, self.share, self.c, self.unit = weight, share, c, unit
        self.span = tuple(span)       # the part of the features it sees (dim wide, the head's); (0, 0): all
        self.register_buffer("coef", torch.zeros(dim))
        self.register_buffer("intercept", torch.zeros(()))
        # μ and σ of the head's logits and of the stage's logits on the normal training snippets, and the
        # fusion it was fitted for: 0 not fitted, 1 standardised logits (before 2026-12-05), 2 the head's units
        self.register_buffer("scale", torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))

    @property
    def fitted(self) -> bool:
        return bool(self.scale[4] > 0)

    def stage_logit(self, x: Tensor) -> Tensor:
        """(...,) logits of features (..., D)."""
        return torch.nn.functional.normalize(x.float(), dim=-1) @ self.coef + self.intercept

    @torch.no_grad()
    def fit(self, features: Sequence[np.ndarray], head_scores: Sequence[np.ndarray], anomalous: Sequence[bool],
            seed: int, cap: int = 50000) -> int:
        """Fit on training rows: ``features`` (T_i, D) with the head's scores (T_i,) and each row's video
        label; returns the number of pseudo-labelled snippets used."""
        xs, ys, normal_x, normal_s = [], [], [], []
        for f, s, a in zip(features, head_scores, anomalous):
            f = take_span(np.asarray(f), self.span)
            keep, y = pseudo_labels(np.asarray(s), bool(a), self.share)
            xs.append(f[keep])
            ys.append(y)
            if not a:
                normal_x.append(f)
                normal_s.append(s)
        x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
        if not normal_x or y.min() == y.max():
            return 0                                  # one class only: the stage stays off
        if len(y) > cap:                              # a seeded subset keeps the fit cheap on big sets
            keep = np.random.default_rng([seed, 11]).choice(len(y), cap, replace=False)
            x, y = x[keep], y[keep]
        x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
        self.fit_classifier(x, y, seed)
        head = logit(torch.from_numpy(np.concatenate(normal_s)).float())
        stage = self.stage_logit(torch.from_numpy(np.concatenate(normal_x)).float().to(self.coef.device))
        # head on the CPU, stage on coef's device: plain floats, then one tensor on the buffer's device
        values = [float(head.mean()), float(spread(head)), float(stage.mean()), float(spread(stage)), HEAD_UNITS]
        self.scale.copy_(torch.tensor(values, device=self.scale.device))
        return int(len(y))

    @contextmanager
    def left_out(self) -> Iterator[None]:
        """Within the block ``fuse`` gives the scores back unchanged (ℓ, what the stage is added to); the
        stage's fusion is restored after, whatever happens inside."""
        fusion = float(self.scale[4])
        self.scale[4] = 0.0
        try:
            yield
        finally:
            self.scale[4] = fusion

    @torch.no_grad()
    def set_unit(self, head_logits: Tensor) -> None:
        """Take σ₁ from ``head_logits``, ℓ on other normal snippets than the training ones (``unit``
        "held-out": the held-out normal videos); a fitted stage's fusion is otherwise unchanged."""
        self.scale[1] = spread(head_logits.flatten().float()).to(self.scale.device)

    def fit_classifier(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        """Learn the pseudo-labels ``y`` of unit-length rows ``x``: the linear model ``stage_logit`` applies
        (tools/probe_pseudo_labels.py puts other classifiers here)."""
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced").fit(x, y)
        self.coef.copy_(torch.from_numpy(clf.coef_[0].astype(np.float32)))
        self.intercept.fill_(float(clf.intercept_[0]))

    def fuse(self, scores: Tensor, x: Tensor) -> Tensor:
        """Scores (...,) with the stage's term added, for features (..., D); unchanged until fitted."""
        if not self.fitted:
            return scores
        mu_h, sd_h, mu_s, sd_s = self.scale[:4]
        z = (self.stage_logit(take_span(x, self.span)) - mu_s) / sd_s
        if self.scale[4] < HEAD_UNITS:            # fitted before 2026-12-05: its own fusion (module docstring)
            return squashed_score((logit(scores.float()) - mu_h) / sd_h + self.weight * z)
        # in double: weight 0 must give back the head's float32 scores to the bit
        s = logit(scores.double()) + self.weight * float(sd_h) * z.double()
        return torch.sigmoid(bounded_logit(s)).to(scores.dtype)
