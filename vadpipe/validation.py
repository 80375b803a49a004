"""A training run's validation: the validation set and its ground truth, the metric, the selection note.

Validation metric: with ``val_gt``, frame AUC (on ``val_features`` or on the
held-out share); otherwise video-level AUC of each held-out video's max
snippet score. Without a usable metric (a held-out share lacking a class) the
last checkpoint is also the best, and the checkpoint says so.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import score_features
from .config import TrainConfig
from .data import FeatureSet, open_features
from .errors import ConfigError
from .recipe import check_compatible


def score_videos(model: torch.nn.Module, videos: Sequence, device: torch.device) -> Dict[str, np.ndarray]:
    """Snippet scores of every video, by id (the model is left in eval mode)."""
    model.eval()
    return {v.id: score_features(model, v.raw(), device) for v in videos}


def open_validation(t: TrainConfig, data: FeatureSet, held: np.ndarray, log: Callable[[str], None],
                    dim: Optional[int] = None) -> Tuple[Optional[FeatureSet], Optional[dict]]:
    """(validation set, its ground truth by id): ``val_features`` if given, else the held-out share
    ``held`` of ``data`` (None when empty); the ground truth only with ``val_gt``. Every validation video is
    read now and must have the crops of its set's first video and D = ``dim`` (default: the training set's)."""
    val_set: Optional[FeatureSet] = None
    val_gt = None
    dim = data.shape()[1] if dim is None else dim
    like = "the training videos"
    if t.val_features:
        val_set = open_features(t.val_features, "none")
        for note in check_compatible(data.recipe, val_set.recipe, f"training features {t.features}",
                                     f"validation features {t.val_features}"):
            log(note)
    elif held.size:
        val_set, like = data.subset(held), "the other videos"
    if val_set is not None:   # a bad validation video stops the run before training, not at its first evaluation
        crops = (val_set if t.val_features else data).shape()[0]
        val_set.read_all((crops, dim), like)
    if t.val_gt and val_set is not None:
        from .groundtruth import load_ground_truth, match_ids

        order = [v.id for v in val_set.videos]
        snippets = [v.T if v.T is not None else v.raw().shape[0] for v in val_set.videos]
        val_gt = load_ground_truth(t.val_gt, order=order, snippets=snippets,
                                   frames=[v.frames for v in val_set.videos], snippet_len=val_set.snippet_len,
                                   stride=val_set.stride)
        matched = match_ids(order, list(val_gt))
        if not matched:
            raise ConfigError(f"none of the {len(order)} validation videos has ground truth in {t.val_gt}")
        if len(matched) < len(order):
            log(f"{len(order) - len(matched)} validation video(s) have no ground truth in {t.val_gt}")
    return val_set, val_gt


def validation_metrics(scores: Dict[str, np.ndarray], val_set: FeatureSet, val_gt: Optional[dict],
                       frame_mode: str = "hold") -> dict:
    """The validation record of one evaluation: ``val_auc`` (None without both classes) and its kind;
    frame-level with ``val_gt``, its snippet scores made frame scores by ``frame_mode``."""
    if val_gt is not None:
        from .evaluate import evaluate_feature_scores

        res = evaluate_feature_scores(scores, val_set, val_gt, on_mismatch="skip", frame_mode=frame_mode)
        skipped = sum(a.action == "mismatch" for a in res.alignments)
        return {"val_auc": res.metrics["auc"], "val_metric": "frame_auc", "val_ap": res.metrics["ap"],
                "val_videos": res.metrics["n_videos"], "val_skipped": skipped}
    from sklearn.metrics import roc_auc_score

    y = np.array([v.label for v in val_set.videos])
    s = np.array([scores[v.id].max() for v in val_set.videos])
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else None
    return {"val_auc": auc, "val_metric": "video_auc_of_max", "val_videos": int(y.size)}


def selection_note(t: TrainConfig, best_metric: Optional[float]) -> str:
    """How best.pt was chosen, as the checkpoint records it."""
    if t.select == "last":
        return "last (select: last; validation only reported)"
    if best_metric is None:
        return "last (no validation metric)"
    if t.val_is_test:
        return "best on the TEST set (val_is_test; as the public repos do)"
    if t.val_features:
        return "best on an external validation set"
    return "best on the held-out share of the training videos"
