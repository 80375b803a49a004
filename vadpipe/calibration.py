"""After a run's last step, once its terms are fitted (:mod:`vadpipe.fitted_terms`): its score levels and the
score-threshold calibration.

The held-out normal videos calibrate the threshold. Calibration: the head scores the held-out
normal videos (else the validation set's normal videos, else the training
normal videos, as recorded in ``source``) and the 95/99/99.9th percentiles of
their frame scores go into both checkpoints, with each video's share of frames at or
above each of them (which videos set the threshold: the training log names them).

How the videos are pooled (``train.calibration_pooling``, :data:`POOLINGS`): ``frames`` takes the
quantile of all their frames together, so one unusual clip (a crowd) that holds most of the top 1 %
sets the threshold alone; ``clips`` takes each clip's own quantile and the median over clips, the
threshold a typical normal clip meets (docs/localisation.md, "A threshold one clip cannot set").
Both tables are recorded; ``auto`` reads the chosen one.

With ``model.terms_fit`` "all" the fitted terms also see the held-out normal videos once the head has
trained (:func:`vadpipe.fitted_terms.terms_videos`): a camera whose only normal clip was held out is
otherwise new to the normal statistics (docs/localisation.md, "The held-out normal videos in the fitted terms"). Calibration then scores
each of them *cross-fitted* (:func:`crossfit_scores`), by a copy of the head whose terms were fitted without
it, so the threshold and the score levels still come from normal video the terms never saw.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import OPTIMISTIC_CALIBRATION, as_levels
from .config import POOLINGS
from .data import FeatureSet
from .fitted_terms import fit_terms, held_out_normals, member_terms_videos, state_copy, terms_videos
from .intervals import snippet_reach, snippets_to_frames
from .threshold import DEFAULT_QUANTILE, pooling_of


# calibration["source"]: a held-out share; a bagged ensemble's held-out videos
HELD_OUT_NORMAL = "held-out normal training videos"
OUT_OF_BAG = "held-out normal videos, each scored by the members that held it out (out of bag)"
CROSS_FITTED = "held-out normal training videos, each scored with terms fitted without it (cross-fitted)"
OUT_OF_BAG_CROSS_FITTED = ("held-out normal videos, each scored by the member that held it out, its terms fitted "
                           "without it (out of bag, cross-fitted)")
CROSSFIT_FOLDS = 5        # model.terms_fit all: folds of the held-out normal videos, by position

# (snippet scores by id, the videos, where they come from): what calibration_scores returns
CalibrationScores = Tuple[Dict[str, np.ndarray], List, str]


def crossfit_seed_of(model_config, train_config) -> Optional[int]:
    """The seed a run's calibration cross-fits its held-out normal videos with (its training seed) when its
    terms saw them (``model.terms_fit`` all), else None."""
    if model_config.terms_fit != "all":
        return None
    return train_config.seed if train_config is not None else 0


def crossfit_scores(model: torch.nn.Module, train_videos: Sequence, held: Sequence, seed: int,
                    device: torch.device, fit: Optional[Callable] = None) -> Dict[str, np.ndarray]:
    """Snippet scores of the held-out normal videos ``held`` as new normal video would get them from a head
    whose terms saw ``train_videos`` and ``held`` (``model.terms_fit`` all): ``held`` in
    ``min(CROSSFIT_FOLDS, n)`` folds by position, each scored by a copy of ``model`` whose terms are fitted
    again on ``train_videos`` and the other folds (``fit(model, videos, seed, device, log)``, default
    :func:`fit_terms`). The head's weights are the same in every copy (it never trained on ``held``);
    ``model`` itself is left as it was."""
    from .validation import score_videos

    fit = fit or fit_terms
    folds = min(CROSSFIT_FOLDS, len(held))
    scores: Dict[str, np.ndarray] = {}
    for fold in range(folds):
        other = copy.deepcopy(model)
        fit(other, list(train_videos) + [v for i, v in enumerate(held) if i % folds != fold], seed, device,
            lambda line: None)
        scores.update(score_videos(other, [v for i, v in enumerate(held) if i % folds == fold], device))
    return scores


def _fit_only_member(view: torch.nn.Module, videos: Sequence, seed: int, device: torch.device,
                     log: Callable[[str], None]) -> Optional[Dict[str, torch.Tensor]]:
    """:func:`fit_terms` on the one member a :func:`members_view` holds."""
    return fit_terms(view.members[0], videos, seed, device, log)


def crossfit_out_of_bag(model: torch.nn.Module, data: FeatureSet, split, seed: int,
                        device: torch.device) -> Dict[str, np.ndarray]:
    """A bagged ensemble on disjoint folds whose members' terms saw their own held-out normal videos
    (``model.terms_fit`` all): each of those videos scored by the one member that held it out, cross-fitted
    within that member's fold (:func:`crossfit_scores`, the member's terms fitted with its training videos'
    seed, ``member_seed``), as a view of that member alone scores it (:func:`out_of_bag_scores`)."""
    from .train_plan import member_seed

    own = member_terms_videos(data, split, with_held_out=False)
    scores: Dict[str, np.ndarray] = {}
    for m, held in enumerate(split.member_held):
        fold = held_out_normals(data, held)
        if fold:
            scores.update(crossfit_scores(members_view(model, (m,)), own[m], fold, member_seed(seed, m), device,
                                          _fit_only_member))
    return scores


@torch.no_grad()
def out_of_bag_scores(model: torch.nn.Module, videos: Sequence, holders: Sequence[Tuple[int, ...]],
                      device: torch.device) -> Dict[str, np.ndarray]:
    """Snippet scores of ``videos`` by id, each video scored only by the members of a bagged ensemble
    that held it out (``holders``, member indices): the scores of a head that never trained on it."""
    from .validation import score_videos

    groups: Dict[Tuple[int, ...], List] = {}
    for video, held_by in zip(videos, holders):
        groups.setdefault(tuple(held_by), []).append(video)
    scores: Dict[str, np.ndarray] = {}
    for held_by, group in groups.items():
        scores.update(score_videos(members_view(model, held_by), group, device))
    return scores


def members_view(model: torch.nn.Module, indices: Sequence[int]) -> torch.nn.Module:
    """Members ``indices`` of an ensemble as one head: their logits averaged, each fused with its own
    terms, snippets and frames made as the whole ensemble makes them (its scoring rule and score levels)."""
    from .checkpoint import scoring_rule
    from .models.ensemble import MeanOfLogits, members_of

    members = members_of(model)
    view = MeanOfLogits([members[m] for m in indices])
    view.scoring_rule = scoring_rule(model)
    if getattr(model, "levels", None) is not None:
        view.levels = model.levels
    return view


def calibration_videos(data: FeatureSet, train_idx: np.ndarray, held_idx: np.ndarray,
                       val_set: Optional[FeatureSet], val_gt: Optional[dict]) -> Tuple[List, str]:
    """(normal videos to calibrate on, where they come from): held-out normal training videos, else
    the validation set's normal videos, else the training normal videos (optimistic)."""
    if held_idx.size and (data.labels()[held_idx] == 0).any():
        return held_out_normals(data, held_idx), HELD_OUT_NORMAL
    videos: List = []
    if val_set is not None and val_gt is not None:
        from .groundtruth import match_ids

        mapping = match_ids([v.id for v in val_set.videos], list(val_gt))
        videos = [v for v in val_set.videos if v.id in mapping and not val_gt[mapping[v.id]].anomalous]
        if videos:
            return videos, "normal videos of the validation set"
    return [data.videos[i] for i in train_idx if data.videos[i].label == 0], OPTIMISTIC_CALIBRATION


def calibration_frames(snippets: np.ndarray, frames: Optional[int], snippet_len: int, stride: int,
                       frame_mode: str) -> np.ndarray:
    """One video's frame scores as calibration sees them (its frame count, else the snippets' reach)."""
    return snippets_to_frames(snippets, frames or snippet_reach(snippets.size, snippet_len, stride),
                              snippet_len, stride, frame_mode)


def calibrate(scores: Dict[str, np.ndarray], videos: Sequence, source: str, quantiles: Sequence[float],
              snippet_len: int, stride: int, frame_mode: str = "hold", pooling: str = "frames") -> dict:
    """Quantiles of the frame scores of ``videos`` (snippet scores by id, made frame scores as the head's
    ``frame_mode`` says, as ``vadpipe score`` will), pooled as ``pooling`` says, as the checkpoint stores them."""
    per_video = {v.id: calibration_frames(scores[v.id], v.frames, snippet_len, stride, frame_mode) for v in videos}
    return quantile_record(per_video, source, quantiles, pooling)


def pooled_quantiles(per_video: Dict[str, np.ndarray], quantiles: Sequence[float], pooling: str) -> Dict[str, float]:
    """The ``quantiles`` of normal videos' frame scores (id → (frames,)): of all frames together
    (``frames``) or the median over videos of each video's own (``clips``)."""
    if pooling == "frames":
        frames = np.concatenate(list(per_video.values()))
        return {str(q): float(np.quantile(frames, q)) for q in quantiles}
    if pooling == "clips":
        return {str(q): float(np.median([np.quantile(f, q) for f in per_video.values()])) for q in quantiles}
    raise ValueError(f"calibration pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")


def quantile_record(per_video: Dict[str, np.ndarray], source: str, quantiles: Sequence[float],
                    pooling: str = "frames") -> dict:
    """The checkpoint's calibration from normal videos' frame scores (id → (frames,)): the ``quantiles``
    pooled as ``pooling`` says (what ``auto`` reads), both poolings' tables, and per video its frame
    count and share of frames at or above each threshold ``auto`` reads."""
    tables = {p: pooled_quantiles(per_video, quantiles, p) for p in POOLINGS}
    table = tables[pooling]
    # which videos hold the frames above each threshold: one unusual normal video (a crowd) can set it
    above = {vid: {"frames": int(f.size), "above": {q: float(np.mean(f >= t)) for q, t in table.items()}}
             for vid, f in per_video.items()}
    return {"normal_frame_score_quantiles": table, "pooling": pooling, "pooled": tables, "source": source,
            "n_videos": len(per_video), "videos": above}


def calibration_summary(calibration: dict, quantile: str = "0.99", shown: int = 3) -> str:
    """One line: where the calibration comes from, its ``quantile`` threshold (what ``auto`` flags above),
    how it pooled the videos (with the other pooling's value) and the normal videos whose frames reach
    it, most first."""
    # a calibration made outside training may hold only the quantiles (checkpoint.py accepts that)
    videos = calibration.get("n_videos")
    line = f"calibration from {'?' if videos is None else videos} {calibration.get('source', 'normal videos')}"
    value = calibration["normal_frame_score_quantiles"].get(quantile)
    if value is None:
        return line
    pooling = pooling_of(calibration)
    how = ("the median over clips of each clip's {q} quantile" if pooling == "clips" else
           "the {q} quantile of all their frames").format(q=quantile)
    others = [f"{p} {t[quantile]:.4g}" for p, t in calibration.get("pooled", {}).items()
              if p != pooling and quantile in t]
    line += f": auto threshold {value:.4g} ({how}" + (f"; pooled by {', '.join(others)}" if others else "") + ")"
    shares = sorted(((v["above"].get(quantile, 0.0), vid) for vid, v in calibration.get("videos", {}).items()),
                    reverse=True)
    named = [f"{vid} {100 * share:.1f} %" for share, vid in shares[:shown] if share > 0]
    if not named:
        return line
    rest = sum(share > 0 for share, _ in shares) - len(named)
    return line + "; frames at or above it: " + ", ".join(named) + (f" and {rest} more videos" if rest else "")


def calibration_scores(model: torch.nn.Module, data: FeatureSet, split, val_set: Optional[FeatureSet],
                       val_gt: Optional[dict], device: torch.device,
                       crossfit_seed: Optional[int] = None) -> CalibrationScores:
    """(snippet scores by id, the videos, where they come from) of the normal videos a run calibrates on
    (its split: a ``vadpipe.run_split.RunSplit``): a bagged ensemble's held-out normal videos, each scored
    by the members that held it out (out of bag); else the videos :func:`calibration_videos` picks, scored
    as ``vadpipe score`` scores them (fused terms and score levels included). ``crossfit_seed`` (the run's
    seed, when its terms saw the held-out normal videos: ``model.terms_fit`` all): those are scored
    cross-fitted (:func:`crossfit_scores`)."""
    from .validation import score_videos

    if split.member_held:
        normal = [i for i in split.held_idx if data.videos[i].label == 0]
        videos = [data.videos[i] for i in normal]
        if crossfit_seed is not None:              # disjoint folds (train_plan.resolve_terms_fit): one holder each
            return crossfit_out_of_bag(model, data, split, crossfit_seed, device), videos, OUT_OF_BAG_CROSS_FITTED
        holders = [tuple(m for m, held in enumerate(split.member_held) if i in held) for i in normal]
        return out_of_bag_scores(model, videos, holders, device), videos, OUT_OF_BAG
    videos, source = calibration_videos(data, split.train_idx, split.held_idx, val_set, val_gt)
    if crossfit_seed is not None and source == HELD_OUT_NORMAL:
        train_videos = terms_videos(data, split, with_held_out=False)
        return crossfit_scores(model, train_videos, videos, crossfit_seed, device), videos, CROSS_FITTED
    return score_videos(model, videos, device), videos, source


@torch.no_grad()
def fit_score_levels(model: torch.nn.Module, data: FeatureSet, split, val_set: Optional[FeatureSet],
                     val_gt: Optional[dict], frame_mode: str, device: torch.device, pooling: str,
                     log: Callable[[str], None], crossfit_seed: Optional[int] = None
                     ) -> Tuple[Dict[str, torch.Tensor], CalibrationScores]:
    """Fit ``model.levels`` (models/levels.py) on the normal videos the run's threshold is calibrated on,
    scored raw (the map reset first): 0.5 at the raw ``auto`` threshold (their frames' 0.99 quantile,
    pooled as ``pooling`` says), 0.01 at their median frame. Returns the state dict that carries it and
    those raw scores (:func:`calibrate_split` maps them instead of scoring, and cross-fitting, again); the
    model is left in train mode."""
    model.levels.reset()
    raw = calibration_scores(model, data, split, val_set, val_gt, device, crossfit_seed)
    scores, videos, source = raw
    if videos:
        threshold, median, centre, spread = set_levels(model.levels, scores, videos, data.snippet_len, data.stride,
                                                       frame_mode, pooling)
        log(f"score levels: 0.5 at the raw auto threshold {threshold:.6g} (centre at logit {centre:.2f}), 0.01 at "
            f"the median frame {median:.6g} ({spread:.2f} below it) of {len(videos)} {source}")
    else:
        log("score levels: no normal video to set them on; scores stay raw")
    model.train()
    return state_copy(model), raw


def set_levels(levels, scores: Dict[str, np.ndarray], videos: Sequence, snippet_len: int, stride: int,
               frame_mode: str, pooling: str) -> Tuple[float, float, float, float]:
    """Fit ``levels`` (a reset models/levels.py ``ScoreLevels``) on the raw snippet ``scores`` of the normal
    ``videos`` that calibrate; returns (raw threshold, raw median frame, centre, spread)."""
    def frames(mapped) -> Dict[str, np.ndarray]:
        return {v.id: calibration_frames(mapped(scores[v.id]), v.frames, snippet_len, stride, frame_mode)
                for v in videos}
    table = pooled_quantiles(frames(lambda s: s), (0.5, float(DEFAULT_QUANTILE)), pooling)
    threshold, median = table[DEFAULT_QUANTILE], table["0.5"]
    _, spread = levels.fit(threshold, median)
    centre = levels.centre_at(
        lambda: pooled_quantiles(frames(levels.apply), (float(DEFAULT_QUANTILE),), pooling)[DEFAULT_QUANTILE])
    return threshold, median, centre, spread


def calibrate_split(model: torch.nn.Module, data: FeatureSet, split, val_set: Optional[FeatureSet],
                    val_gt: Optional[dict], quantiles: Sequence[float], frame_mode: str, device: torch.device,
                    pooling: str = "frames", crossfit_seed: Optional[int] = None,
                    raw: Optional[CalibrationScores] = None) -> dict:
    """A trained run's calibration from its split (``vadpipe.run_split.RunSplit``) on the videos
    :func:`calibration_scores` scores (``crossfit_seed``: as it says). ``raw``: those scores before the
    model's score levels, as :func:`fit_score_levels` returned them for the same weights and terms; they
    are mapped to levels, not scored (and cross-fitted) a second time."""
    if raw is None:
        scores, videos, source = calibration_scores(model, data, split, val_set, val_gt, device, crossfit_seed)
    else:
        raw_scores, videos, source = raw
        scores = {vid: as_levels(model, s) for vid, s in raw_scores.items()}
    return calibrate(scores, videos, source, quantiles, data.snippet_len, data.stride, frame_mode, pooling)
