"""What a run settles before its first step: rules resolved from the features and the planned length.

The features' recipe decides how crops train and reduce (regions: the max), the head's segment counts
at their snippet step and which stored layer the head and the normal statistics read; the data decide
how many iterations an epoch schedule makes. Each value resolved here is what the run records in its
checkpoints, so scoring and resuming use it as it is.
"""
from __future__ import annotations

import math
from typing import Callable

from .config import Config, at_stride, config_to_dict

MEMBER_SEED_STEP = 7919          # between the sampling seeds of an ensemble's members (a prime: no overlap
                                 # with neighbouring run seeds for small ensembles)


def member_seed(seed: int, member: int) -> int:
    """The sampling seed of an ensemble's member (batches, crops, windows): member 0 keeps the run's
    seed, so a one-head run samples exactly as before ensembles existed."""
    return seed + MEMBER_SEED_STEP * member


def resolve_crop_rules(cfg: Config, recipe) -> None:
    """``auto`` crop rules from the features: region grids train and score by the max over regions
    (the event is in some region), other crops (ten-crop augmentation, one crop) by one random crop
    and the mean. The resolved values are what the run records."""
    regions = bool(recipe is not None and recipe.region_grid)
    if cfg.train.crops == "auto":
        cfg.train.crops = "max" if regions else "random"
    if cfg.model.crop_reduce == "auto":
        cfg.model.crop_reduce = "max" if regions else "mean"


def resolve_terms_fit(cfg: Config, log: Callable[[str], None]) -> None:
    """``model.terms_fit`` all where it is built: one head, or members on disjoint folds (``model.bag_folds``),
    each held-out normal video scored cross-fitted by the one member that held it out. Members bagged on shares
    that overlap calibrate out of bag with several holders, a pair of heads calibrates as a pair, and a
    pseudo-label stage with the held-out unit reads its unit on the held-out normal videos; each of those keeps
    its terms on the training split (train), logged, and the resolved value is what the run records."""
    m = cfg.model
    why = ("model.bagging without model.bag_folds" if m.bagging and not m.bag_folds else
           "model.partner" if m.partner else "model.pseudo_unit held-out" if m.pseudo_unit == "held-out" else "")
    if m.terms_fit == "all" and why:
        log(f"model.terms_fit: train with {why} (all is built for one head and for members on disjoint folds, "
            "whose held-out normal videos calibrate cross-fitted)")
        m.terms_fit = "train"


def resolve_stride_counts(cfg: Config, stride: int, log: Callable[[str], None]) -> None:
    """The head's segment counts for the features' snippet step (``config.at_stride``); the rescaled
    counts are what the run records, so scoring and resuming use them as they are."""
    before = config_to_dict(cfg.model)
    cfg.model = at_stride(cfg.model, stride)
    after = config_to_dict(cfg.model)
    changed = [f"{name} {before[name]} -> {after[name]}" for name in before
               if before[name] != after[name] and name != "stride_base"]
    if changed:
        log(f"snippets every {stride} frames, segment counts written for {before['stride_base']}: "
            + ", ".join(f"model.{c}" for c in changed))


def resolve_layer_spans(cfg: Config, recipe, log: Callable[[str], None]) -> None:
    """Where the head and its normal statistics read features stored with layers (``vadpipe extract
    --layers``): the head the last stored layer, the statistics ``model.normal_layer`` when stored (else
    the head's). Features of one layer leave both at (0, 0), all of D. The spans are what the run records."""
    m = cfg.model
    spans = recipe.layer_spans if recipe is not None else {}
    if not spans:
        m.head_span = m.normal_span = (0, 0)
        if m.normal_layer and m.normal_weight > 0:
            log(f"model.normal_layer {m.normal_layer}: the features store no layers (vadpipe extract --layers); "
                "the normal statistics see the head's features")
        return
    last = list(spans)[-1]
    m.head_span = spans[last]            # the last listed layer (Mixed_5c of Mixed_4f,Mixed_5c) trains the head
    seen = m.normal_layer if m.normal_layer in spans else last
    m.normal_span = spans[seen]
    if m.normal_weight > 0:
        missing = f" ({m.normal_layer} is not stored)" if m.normal_layer and seen != m.normal_layer else ""
        log(f"features store layers {', '.join(spans)}: the head reads {last}, the normal statistics {seen}{missing}")


def planned_iterations(t, n_anomalous: int) -> int:
    """Iterations a run makes: ``iterations``, or with ``epochs`` > 0 that many passes over the
    anomalous training videos in batches of ``batch_anomalous``, within [min_iterations, iterations]."""
    if t.epochs <= 0:
        return t.iterations
    per_epoch = math.ceil(max(1, n_anomalous) / max(1, min(t.batch_anomalous, max(1, n_anomalous))))
    return int(min(t.iterations, max(t.min_iterations, math.ceil(t.epochs * per_epoch))))


def schedule_text(t, n_anomalous: int) -> str:
    if t.epochs <= 0:
        return "fixed schedule"
    return (f"{t.epochs:g} epochs of {n_anomalous} anomalous videos, batch {t.batch_anomalous}+{t.batch_normal}, "
            f"within [{t.min_iterations}, {t.iterations}]")
