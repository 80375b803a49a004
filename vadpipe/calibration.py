"""After a run's last step: the head's normal statistics, its score levels and the score-threshold calibration.

Normal statistics are fitted on the normal *training* videos; the held-out ones
calibrate the threshold afterwards. Calibration: the head scores the held-out
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
trained (:func:`terms_videos`): a camera whose only normal clip was held out is otherwise new to the normal
statistics (docs/localisation.md, "The held-out normal videos in the fitted terms"). Calibration then scores
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


def _state_copy(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _crop_rows(video, device: torch.device) -> torch.Tensor:
    """A video's features as (C, T, D) rows, one per crop, on ``device``."""
    return torch.from_numpy(np.array(video.raw().transpose(1, 0, 2), dtype=np.float32)).to(device)


def snippet_subset(seed: int, cap: int) -> Callable[[int], Optional[torch.Tensor]]:
    """``keep(n)`` for ``NormalStats.fit``: a seeded subset of ``cap`` of n snippets when n > cap (the
    covariance stays cheap on big sets), else None (all of them)."""
    def keep(n: int) -> Optional[torch.Tensor]:
        return torch.from_numpy(np.random.default_rng([seed, 7]).choice(n, cap, replace=False)) if n > cap else None
    return keep


@torch.no_grad()
def fit_normal_stats(model: torch.nn.Module, normal_videos: Sequence, seed: int, device: torch.device,
                     log: Callable[[str], None], cap: int = 20000) -> Dict[str, torch.Tensor]:
    """Fit the head's normal statistics on ``normal_videos`` (the normal training videos) and return
    the state dict that carries them; the model is left in train mode."""
    model.eval()
    feats, scores = [], []
    for video in normal_videos:
        x = _crop_rows(video, device)
        feats.append(x)
        scores.append(model(x).scores)
    if not feats:
        log("no normal training video: the normal statistics stay off (head scores only)")
        model.train()
        return _state_copy(model)

    model.normal_stats.fit(feats, scores, snippet_subset(seed, cap))
    model.train()
    return _state_copy(model)


@torch.no_grad()
def fit_pseudo_stage(model: torch.nn.Module, train_videos: Sequence, seed: int, device: torch.device,
                     log: Callable[[str], None]) -> Dict[str, torch.Tensor]:
    """Fit the head's pseudo-label stage (models/pseudo_stage.py) on ``train_videos`` (the training
    split only: held-out videos calibrate the threshold) from the head's own fused scores, every crop a
    row; returns the state dict that carries it; the model is left in train mode."""
    from .checkpoint import head_scores

    stage = model.pseudo_stage
    stage.scale[4] = 0.0                         # a refit (best after last) starts from the head alone
    model.eval()
    feats, scores, anomalous = [], [], []
    for video in train_videos:
        x = _crop_rows(video, device)
        s = head_scores(model, x).double().cpu().numpy()
        for crop in range(x.shape[0]):
            feats.append(x[crop].cpu().numpy())
            scores.append(s[crop])
            anomalous.append(bool(video.label))
    used = stage.fit(feats, scores, anomalous, seed) if feats else 0
    log(f"pseudo-label stage: fitted on {used} snippets of {len(train_videos)} training videos" if used else
        "pseudo-label stage: needs normal and anomalous training videos; it stays off")
    model.train()
    return _state_copy(model)


@torch.no_grad()
def fit_pair_scale(model: torch.nn.Module, train_videos: Sequence, device: torch.device,
                   log: Callable[[str], None]) -> Dict[str, torch.Tensor]:
    """A pair's scale (models/pair.py): each head's fused logits, over every snippet and crop of
    ``train_videos`` (the videos both heads trained on; no label read), give its mean and sd. Returns
    the state dict that carries them; the model is left in train mode."""
    from .checkpoint import head_scores
    from .models.normal_stats import logit

    model.eval()
    seen: List[List[torch.Tensor]] = [[], []]
    for video in train_videos:
        x = _crop_rows(video, device)
        for h, head in enumerate((model.primary, model.partner)):
            seen[h].append(logit(head_scores(head, x).float()).flatten().cpu())
    model.fit(torch.cat(seen[0]), torch.cat(seen[1]))
    mu, sd = model.location.tolist(), model.scale.tolist()
    log(f"pair: logits standardised over {sum(x.numel() for x in seen[0])} training snippets "
        f"(head mean {mu[0]:.2f} sd {sd[0]:.2f}, partner mean {mu[1]:.2f} sd {sd[1]:.2f})")
    model.train()
    return _state_copy(model)


@torch.no_grad()
def set_pseudo_stage_unit(model: torch.nn.Module, normal_videos: Sequence, device: torch.device,
                          log: Callable[[str], None]) -> Dict[str, torch.Tensor]:
    """Put the head's fitted pseudo-label stage in the units of ``normal_videos`` (held-out normal videos,
    every crop): σ₁ becomes ℓ's spread on them (models/pseudo_stage.py, ``unit`` "held-out"); returns the
    state dict that carries it; the model is left in train mode."""
    from .checkpoint import head_scores
    from .models.normal_stats import logit

    stage = model.pseudo_stage
    trained = float(stage.scale[1])
    model.eval()
    with stage.left_out():                       # ℓ: the head and its normal statistics
        held = torch.cat([logit(head_scores(model, _crop_rows(v, device))).flatten() for v in normal_videos])
    stage.set_unit(held)
    log(f"pseudo-label stage: its unit {float(stage.scale[1]):.3f}, the fused logits' sd on {len(normal_videos)} "
        f"held-out normal videos ({trained:.3f} on the training normals)")
    model.train()
    return _state_copy(model)


@torch.no_grad()
def fit_terms(model: torch.nn.Module, videos: Sequence, seed: int, device: torch.device,
              log: Callable[[str], None], unit_videos: Sequence = ()) -> Optional[Dict[str, torch.Tensor]]:
    """A head's fitted terms on ``videos`` (the training videos it trained on): its normal statistics on
    their normal videos, then its pseudo-label stage (which reads the fused scores) on all of them, in the
    units of ``unit_videos`` (held-out normal videos) where its ``unit`` is "held-out"; the state dict
    that carries them, None when the head has neither."""
    state = None                     # each fit returns the whole state dict; the last one carries both
    if getattr(model, "normal_stats", None) is not None:
        state = fit_normal_stats(model, [v for v in videos if v.label == 0], seed, device, log)
    stage = getattr(model, "pseudo_stage", None)
    if stage is not None:
        state = fit_pseudo_stage(model, videos, seed, device, log)
        if stage.unit == "held-out" and stage.fitted:
            if unit_videos:
                state = set_pseudo_stage_unit(model, unit_videos, device, log)
            else:
                log("pseudo-label stage: no held-out normal video to take its unit from (model.pseudo_unit "
                    "held-out); it keeps the training normals' unit")
    return state


def terms_videos(data: FeatureSet, split, with_held_out: bool) -> List:
    """The videos a head's fitted terms see (``split``: a ``vadpipe.run_split.RunSplit``): its training
    split, and with ``with_held_out`` (``model.terms_fit`` all) the held-out normal training videos after
    them; the head itself trains on the training split only."""
    videos = [data.videos[i] for i in split.train_idx]
    return videos + (held_out_normals(data, split.held_idx) if with_held_out else [])


def member_terms_videos(data: FeatureSet, split, with_held_out: bool) -> List[List]:
    """:func:`terms_videos` for each member of a bagged ensemble (``split.member_held``): the training videos
    it trained on (never the ones it holds out), and with ``with_held_out`` its own held-out normal videos
    after them."""
    def member(held: np.ndarray) -> List:
        out = set(np.asarray(held).tolist())
        return ([data.videos[i] for i in split.train_idx if i not in out] +
                (held_out_normals(data, held) if with_held_out else []))
    return [member(held) for held in split.member_held]


def held_out_normals(data: FeatureSet, held_idx: np.ndarray) -> List:
    """The normal videos among the held-out positions ``held_idx``."""
    return [data.videos[i] for i in held_idx if data.videos[i].label == 0]


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
def fit_member_terms(model: torch.nn.Module, video_sets: Sequence[Sequence], seeds: Sequence[int],
                     device: torch.device, log: Callable[[str], None]) -> Dict[str, torch.Tensor]:
    """A bagged ensemble's fitted terms (:func:`fit_terms`), each member's on ``video_sets[m]`` (the
    training videos it trained on, never the ones it holds out); returns the whole model's state dict."""
    from .models.ensemble import members_of

    for member, videos, seed in zip(members_of(model), video_sets, seeds):
        fit_terms(member, videos, seed, device, log)
    return _state_copy(model)


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
    line = f"calibration from {calibration['n_videos']} {calibration['source']}"
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
        train_videos = [data.videos[i] for i in split.train_idx]
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
    return _state_copy(model), raw


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
