"""Training a pair (``model.partner``): two heads of different kinds, each with its own losses, then
one checkpoint that fuses them (models/pair.py).

A pair's run folder holds each head's own run, trained, checkpointed and resumable as any run::

    runs/<name>/config.yaml      the pair's config (model.partner set)
    runs/<name>/partner/         the partner head's run (vadpipe.presets.partner_config: its own head and
                                 losses; this run's data, held-out split and schedule)
    runs/<name>/primary/         the run's own head (the config without its partner)
    runs/<name>/best.pt, last.pt the pair, written once both have finished

The partner trains first. Pairing then loads both heads' checkpoints, fits each head's logit scale
on the videos both trained on (``fitted_terms.fit_pair_scale``), calibrates the pair's threshold on the
held-out normal videos (neither head trained on them: both draw the same split, and that is checked)
and writes ``best.pt`` (both heads' best) and ``last.pt`` (both heads' last, with the primary's resume
record, whose split tools read). Every step is a pure function of the two runs, so a resumed pair is
bit-identical to an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from .calibration import calibrate_split, calibration_summary, fit_score_levels
from .checkpoint import Checkpoint, build_model, update_latest
from .config import Config, config_to_dict, copy_config, exact_iterations, load_config, save_config
from .data import open_features
from .device import resolve_device
from .errors import ConfigError
from .fitted_terms import fit_pair_scale
from .presets import partner_config
from .run_split import RunSplit
from .scene_check import record_of_heads
from .train_plan import resolve_terms_fit
from .validation import open_validation

PRIMARY, PARTNER = "primary", "partner"
CONFIG = "config.yaml"


def is_pair_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a pair's run (its config names a partner)."""
    path = Path(run_dir) / CONFIG
    return path.is_file() and bool(load_config(path).model.partner)


def primary_config(cfg: Config) -> Config:
    """The pair's own head: ``cfg`` without its partner."""
    out = copy_config(cfg)
    out.model.partner = ""
    out.model.score_levels = "raw"      # the pair maps what it fuses to levels, not each head its own
    return out


def train_pair(cfg: Config, run_dir: Path, progress: bool, log: Callable[[str], None]):
    """Train both heads of a new pair in ``run_dir`` and pair them (see the module docstring)."""
    from .train import absolute_paths

    cfg = copy_config(cfg)
    absolute_paths(cfg.train)
    # the pair calibrates on the held-out normals: its heads' terms never see them
    resolve_terms_fit(cfg, log)
    open_features(cfg.train.features, cfg.train.list_anomalous)     # a missing set is refused before any folder
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG)
    update_latest(run_dir)
    return _finish_pair(cfg, run_dir, None, progress, log)


def resume_pair(run_dir: Path, iterations: Optional[int], progress: bool, log: Callable[[str], None],
                device: Optional[str] = None):
    """Continue each head of a pair from its last.pt (or start one that never wrote one) and pair them
    (``iterations``, ``device``: as ``train.resume`` takes them)."""
    cfg = load_config(run_dir / CONFIG)
    if iterations is not None:
        exact_iterations(cfg.train, iterations)
    if device is not None:
        cfg.train.device = device
    log(f"resuming the pair {run_dir}")
    return _finish_pair(cfg, run_dir, iterations, progress, log, device)


def _finish_pair(cfg: Config, run_dir: Path, iterations: Optional[int], progress: bool,
                 log: Callable[[str], None], device: Optional[str] = None):
    from .train import resume, train

    heads = ((PARTNER, partner_config(cfg)), (PRIMARY, primary_config(cfg)))
    log(f"pair: the {cfg.model.partner} partner head first ({run_dir / PARTNER}), then the {cfg.model.name} head "
        f"({run_dir / PRIMARY}); logits standardised and averaged")
    for name, head_cfg in heads:
        sub = run_dir / name
        if (sub / "last.pt").is_file():
            resume(sub, iterations, progress, log, link_latest=False, device=device)
        else:
            train(head_cfg, sub, progress, log, link_latest=False)
    return pair_runs(run_dir, cfg.model.partner, log)


def pair_runs(run_dir: Path, partner: str, log: Callable[[str], None]):
    """Write ``run_dir``'s best.pt and last.pt: the pair of its ``primary/`` and ``partner/`` runs."""
    from .train import TrainResult

    runs = {which: (Checkpoint.load(run_dir / PRIMARY, which), Checkpoint.load(run_dir / PARTNER, which))
            for which in ("best", "last")}
    head, other = runs["last"]
    split = head.last["split"]
    if other.last["split"] != split:
        raise ConfigError(f"{run_dir}: the partner head trained on other videos than the primary one, so no "
                          f"held-out video would be unseen by both; train the pair again")
    t = head.train_config
    device = resolve_device(t.device)
    data = open_features(t.features, t.list_anomalous)
    recorded = RunSplit.from_record(data, split, "cannot pair the heads")
    train_idx, held_idx = recorded.train_idx, recorded.held_idx
    val_set, val_gt = open_validation(t, data, held_idx, _quiet)
    trained_on = [data.videos[i] for i in train_idx]
    levels = load_config(run_dir / CONFIG).model.score_levels
    pair_cfg = replace(head.model_config, partner=partner, score_levels=levels)

    pairs, raw = {}, {}
    for which, (own, theirs) in runs.items():
        if which == "last" and all(b.iteration == a.iteration for b, a in zip(runs["best"], (own, theirs))):
            pairs[which] = pairs["best"]     # both heads kept their last step as best: the same pair
            raw[which] = raw["best"]
            continue
        model = build_model(pair_cfg, theirs.model_config).to(device)
        model.primary.load_state_dict(own.model)
        model.partner.load_state_dict(theirs.model)
        model.load_state_dict(fit_pair_scale(model, trained_on, device, log))
        raw[which] = None
        if getattr(model, "levels", None) is not None:
            state, raw[which] = fit_score_levels(model, data, recorded, val_set, val_gt, pair_cfg.frame_scores,
                                                 device, t.calibration_pooling, log)
            model.load_state_dict(state)
        pairs[which] = model
    calibration = calibrate_split(pairs["best"], data, recorded, val_set, val_gt, t.calibration_quantiles,
                                  pair_cfg.frame_scores, device, t.calibration_pooling, raw=raw["best"])
    for which, (own, theirs) in runs.items():
        record = {"model_config": config_to_dict(theirs.model_config),
                  "train_config": config_to_dict(theirs.train_config), "iteration": theirs.iteration}
        Checkpoint.of(pairs[which], pair_cfg, train_config=t, recipe=own.recipe, snippet_len=own.snippet_len,
                      metrics=own.metrics, calibration=calibration, iteration=own.iteration,
                      last=own.last if which == "last" else None, partner=record,
                      scene=record_of_heads([pairs[which].primary, pairs[which].partner], [own.scene, theirs.scene])
                      ).save(run_dir / f"{which}.pt")
    log(f"run {run_dir}: the pair of {PRIMARY}/ (iteration {head.iteration}) and {PARTNER}/ (iteration "
        f"{other.iteration}); {calibration_summary(calibration)}")
    return TrainResult(run_dir, head.iteration, runs["best"][0].metrics, calibration)


def _quiet(msg: str) -> None:
    """A log for what the pair's two runs have already said."""
