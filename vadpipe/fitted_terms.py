"""What is fitted on a trained head, never by its optimiser: its normal statistics, its pseudo-label stage
(and that stage's unit), a pair's logit scale (and, in vadpipe.calibration, its score levels); and which
videos each fit sees.

Normal statistics are fitted on the normal *training* videos and the pseudo-label stage on all of them; with
``model.terms_fit`` "all" the held-out normal videos join them once the head has trained (:func:`terms_videos`,
:func:`member_terms_videos` for members on disjoint folds), and :mod:`vadpipe.calibration` then scores those
videos cross-fitted. Each fit returns the whole state dict that carries it, so a checkpoint stores it.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .data import FeatureSet


def state_copy(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def fitted_term_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The entries of ``model``'s state dict that are fitted once it has trained (normal statistics,
    pseudo-label stage, score levels, a pair's logit scale), copied: taken from a head as built, they are
    the unfitted terms a resumed run's validation must see, as the uninterrupted run's did."""
    from .models.levels import ScoreLevels
    from .models.normal_stats import NormalStats
    from .models.pair import StandardisedPair
    from .models.pseudo_stage import PseudoStage

    state: Dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (NormalStats, PseudoStage, ScoreLevels)):
            state.update({prefix + k: v.detach().clone() for k, v in module.state_dict().items()})
        elif isinstance(module, StandardisedPair):
            state.update({prefix + k: getattr(module, k).detach().clone() for k in ("location", "scale")})
    return state


def crop_rows(video, device: torch.device) -> torch.Tensor:
    """A video's features as (C, T, D) rows, one per crop, on ``device``."""
    return torch.from_numpy(np.array(video.raw().transpose(1, 0, 2), dtype=np.float32)).to(device)


def snippet_subset(seed: int, cap: int) -> Callable[[int], Optional[torch.Tensor]]:
    """``keep(n)`` for ``NormalStats.fit``: a seeded subset of ``cap`` of n snippets when n > cap (the
    covariance stays cheap on big sets), else None (all of them)."""
    def keep(n: int) -> Optional[torch.Tensor]:
        return torch.from_numpy(np.random.default_rng([seed, 7]).choice(n, cap, replace=False)) if n > cap else None
    return keep


NORMAL_FIT_CAP = 20000      # the normal statistics' Gaussian is fitted on at most this many snippets (seeded)


@torch.no_grad()
def fit_normal_stats(model: torch.nn.Module, normal_videos: Sequence, seed: int, device: torch.device,
                     log: Callable[[str], None], cap: int = NORMAL_FIT_CAP) -> Dict[str, torch.Tensor]:
    """Fit the head's normal statistics on ``normal_videos`` (the normal training videos) and return
    the state dict that carries them; the model is left in train mode."""
    model.eval()
    feats, scores = [], []
    for video in normal_videos:
        x = crop_rows(video, device)
        feats.append(x)
        scores.append(model(x).scores)
    if not feats:
        log("no normal training video: the normal statistics stay off (head scores only)")
        model.train()
        return state_copy(model)

    model.normal_stats.fit(feats, scores, snippet_subset(seed, cap))
    model.train()
    return state_copy(model)


@torch.no_grad()
def fit_scene_record(model: torch.nn.Module, videos: Sequence, seed: int, device: torch.device,
                     log: Callable[[str], None]) -> Optional[dict]:
    """The scene check's bound (vadpipe/scene_check.py) for a head whose normal statistics were fitted on
    the normal ones of ``videos`` (as :func:`fit_terms` fits them); None for a head without fitted statistics."""
    from .scene_check import reads_scene, scene_record

    if not reads_scene(model):
        return None
    record = scene_record(model.normal_stats, [crop_rows(v, device) for v in videos if v.label == 0],
                          snippet_subset(seed, NORMAL_FIT_CAP))
    if record is not None:
        log(f"scene check: the quietest {record['quiet_share']:.0%} of each of {record['videos']} normal training "
            f"videos, held out, lies at normal-statistics z {record['median']:.1f} (median) to {record['bound']:.1f} "
            "(a clip whose own lies beyond that bound reads as a scene new to the head)")
    return record


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
        x = crop_rows(video, device)
        s = head_scores(model, x).double().cpu().numpy()
        for crop in range(x.shape[0]):
            feats.append(x[crop].cpu().numpy())
            scores.append(s[crop])
            anomalous.append(bool(video.label))
    used = stage.fit(feats, scores, anomalous, seed) if feats else 0
    log(f"pseudo-label stage: fitted on {used} snippets of {len(train_videos)} training videos" if used else
        "pseudo-label stage: needs normal and anomalous training videos; it stays off")
    model.train()
    return state_copy(model)


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
        x = crop_rows(video, device)
        for h, head in enumerate((model.primary, model.partner)):
            seen[h].append(logit(head_scores(head, x).float()).flatten().cpu())
    model.fit(torch.cat(seen[0]), torch.cat(seen[1]))
    mu, sd = model.location.tolist(), model.scale.tolist()
    log(f"pair: logits standardised over {sum(x.numel() for x in seen[0])} training snippets "
        f"(head mean {mu[0]:.2f} sd {sd[0]:.2f}, partner mean {mu[1]:.2f} sd {sd[1]:.2f})")
    model.train()
    return state_copy(model)


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
        held = torch.cat([logit(head_scores(model, crop_rows(v, device))).flatten() for v in normal_videos])
    stage.set_unit(held)
    log(f"pseudo-label stage: its unit {float(stage.scale[1]):.3f}, the fused logits' sd on {len(normal_videos)} "
        f"held-out normal videos ({trained:.3f} on the training normals)")
    model.train()
    return state_copy(model)


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


@torch.no_grad()
def fit_member_terms(model: torch.nn.Module, video_sets: Sequence[Sequence], seeds: Sequence[int],
                     device: torch.device, log: Callable[[str], None]) -> Dict[str, torch.Tensor]:
    """A bagged ensemble's fitted terms (:func:`fit_terms`), each member's on ``video_sets[m]`` (the
    training videos it trained on, never the ones it holds out); returns the whole model's state dict."""
    from .models.ensemble import members_of

    for member, videos, seed in zip(members_of(model), video_sets, seeds):
        fit_terms(member, videos, seed, device, log)
    return state_copy(model)
