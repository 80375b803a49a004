"""Training loop: balanced 32-segment bags, dynamic labels, validation, checkpoints, resume, calibration.

``train(cfg)`` starts a run in ``runs/<timestamp>/`` (or ``out``) and points
``runs/latest`` at it; ``resume(run)`` continues from its ``last.pt`` and ends
with exactly the weights an uninterrupted run with the same seed would have
(sampling is a pure function of (seed, iteration); model, optimiser, dynamic
labels and the torch RNG are restored).

Iteration ``i`` (0-based count of completed steps): dynamic labels are updated
first when due (i ≥ β, i mod β = 0), then one optimiser step on a balanced
batch. After step i+1 the loss terms are logged every ``log_every`` steps;
every ``eval_every`` steps and at the end the held-out share is scored
(validation), ``best.pt`` is written when the validation metric improves and
``last.pt`` (with the resume state) is written.

Validation set and metric: ``vadpipe/validation.py``. After the last step
the normal statistics are fitted and the best head's threshold calibrated
(``vadpipe/calibration.py``) into both checkpoints.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from . import atomic
from .calibration import (CalibrationScores, calibrate_split, calibration_summary, calibration_videos,
                          crossfit_seed_of, fit_score_levels)
from .checkpoint import (OPTIMISTIC_CALIBRATION, Checkpoint, build_model, check_latest, resolve_run,
                         update_latest)
from .config import Config, TrainConfig, copy_config, exact_iterations, save_config, validate
from .data import BalancedSampler, build_bags, choose_crops, load_real_bags, open_features, pad_windows
from .device import autocast, resolve_device
from .errors import CheckpointError, ConfigError, FeatureStoreError, TrainingDiverged
from .features import MANIFEST_FILE, remove_leftovers
from .fitted_terms import (fit_member_terms, fit_scene_record, fit_terms, fitted_term_state, held_out_normals,
                           member_terms_videos, terms_videos)
from .models.dynamic_labels import DynamicLabels
from .models.ensemble import bagged_members, members_of
from .models.losses import needs_prior, ranking_values
from .progress import progress_bar
from .recipe import check_compatible
from .rtfm_lists import list_rule
from .run_split import RunSplit, draw_split
from .scene_check import record_of_heads
from .selection_prior import selection_priors
from .train_plan import (member_seed, planned_iterations, resolve_crop_rules, resolve_layer_spans,
                         resolve_stride_counts, resolve_terms_fit, schedule_text)
from .train_step import Batch, members_step
from .validation import open_validation, score_videos, selection_note, validation_metrics

METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainResult:
    run_dir: Path
    iterations: int
    best_metrics: dict
    calibration: Optional[dict]


def new_run_dir(root: str | Path = "runs") -> Path:
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


def train(cfg: Config, out: Optional[str | Path] = None, progress: bool = True,
          log: Optional[Callable[[str], None]] = None, link_latest: bool = True) -> TrainResult:
    """Train a new run; ``out`` defaults to ``runs/<timestamp>``. With ``model.partner`` two heads train,
    one after the other, and are paired (``vadpipe/pair_training.py``). ``link_latest``: point
    ``runs/latest`` at the run (not for a pair's own two runs)."""
    validate(cfg)
    run_dir = Path(out) if out is not None else new_run_dir()
    check_latest(run_dir)           # before any folder is made: a run named latest, a folder where the pointer goes
    if (run_dir / "last.pt").exists() or (run_dir / "config.yaml").exists() and cfg.model.partner:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or another --out")
    if cfg.model.partner:
        from .pair_training import train_pair

        return train_pair(cfg, run_dir, progress, log or _stderr)
    return _Trainer(cfg, run_dir, None, log, progress).run(progress, link_latest)


def resume(run: str | Path = "runs/latest", iterations: Optional[int] = None, progress: bool = True,
           log: Optional[Callable[[str], None]] = None, link_latest: bool = True,
           device: Optional[str] = None) -> TrainResult:
    """Continue a run from its last.pt (its own config). ``iterations``: exactly that many in all, as a new
    run's ``--iters`` (an epoch schedule replaced; fewer than the run already made is refused). ``device``:
    continue there instead of the run's own device (the result is then not bit-identical to an
    uninterrupted run). A pair's run continues whichever of its two heads had not finished, and pairs them
    again."""
    try:
        run_dir = resolve_run(run)
    except CheckpointError:
        raise CheckpointError(f"nothing to resume: no run at {run}; start one with `vadpipe train` "
                              f"(it writes last.pt every {TrainConfig.checkpoint_minutes:g} minutes)") from None
    from .pair_training import is_pair_run, resume_pair

    log = log or _stderr
    if is_pair_run(run_dir):
        return resume_pair(run_dir, iterations, progress, log, device)
    if not (run_dir / "last.pt").is_file():
        raise CheckpointError(f"nothing to resume: {run_dir} has no last.pt yet (stopped before its first "
                              f"checkpoint); start it again with "
                              f"`vadpipe train --config {run_dir}/config.yaml --out {run_dir}`")
    for name in ("best.pt", "last.pt", METRICS_FILE):   # temp files of a save the kill interrupted
        remove_leftovers(run_dir, name)
    ckpt = Checkpoint.load(run_dir, "last")
    if not ckpt.last or ckpt.train_config is None:
        raise ConfigError(f"{run_dir}/last.pt holds no resume state")
    cfg = copy_config(Config(ckpt.model_config, ckpt.train_config))
    if iterations is not None:
        if iterations < ckpt.iteration:
            raise ConfigError(f"--iters {iterations}: the run {run_dir} already made {ckpt.iteration} iterations; "
                              f"give at least that many (a shorter run is its own: train one with --out)")
        exact_iterations(cfg.train, iterations)
    if device is not None and device != cfg.train.device:
        log(f"continuing on {device} (the run trained on {cfg.train.device}): the result is not bit-identical "
            "to an uninterrupted run")
        cfg.train.device = device
    return _Trainer(cfg, run_dir, ckpt, log, progress).run(progress, link_latest)


def absolute_paths(t: TrainConfig) -> None:
    """Make ``t``'s data paths absolute, in place: a run resumes from any directory."""
    for key in ("features", "val_features", "val_gt"):
        if getattr(t, key):
            setattr(t, key, str(Path(getattr(t, key)).resolve()))


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def same_state(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same tensors, bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class _Trainer:
    def __init__(self, cfg: Config, run_dir: Path, resume_ckpt: Optional[Checkpoint],
                 log: Optional[Callable[[str], None]], progress: bool = False):
        self.cfg, self.run_dir = copy_config(cfg), run_dir
        cfg = self.cfg
        if resume_ckpt is None:   # record absolute paths so the run resumes from any directory
            absolute_paths(cfg.train)
        self.log = log or _stderr
        t = cfg.train
        self.device = resolve_device(t.device)
        self.use_amp = t.amp and self.device.type == "cuda"
        self.data = open_features(t.features, t.list_anomalous)
        if resume_ckpt is None and self.data.kind == "store" and list_rule(t.list_anomalous)[0] != "auto":
            self.log(f"note: train.list_anomalous {t.list_anomalous} applies to RTFM list files; {t.features} takes "
                     f"its labels from its {MANIFEST_FILE} (the rule is not used)")
        if resume_ckpt is not None:
            check_compatible(resume_ckpt.recipe, self.data.recipe, f"the run {run_dir}", f"features {t.features}")
        crops, dim = self.data.shape()
        if cfg.model.feature_dim != dim:
            if resume_ckpt is not None:
                raise FeatureStoreError(f"{t.features}: D = {dim}, the run was trained with {cfg.model.feature_dim}")
            if cfg.model.feature_dim != 2048:
                self.log(f"model.feature_dim {cfg.model.feature_dim} replaced by the features' D = {dim}")
            cfg.model.feature_dim = dim
        resolve_crop_rules(cfg, self.data.recipe)
        resolve_stride_counts(cfg, self.data.stride, self.log)
        resolve_layer_spans(cfg, self.data.recipe, self.log)
        resolve_terms_fit(cfg, self.log)
        validate(cfg)
        self.crops, self.dim = crops, dim
        self._split(resume_ckpt)     # after the layer spans: typical held-out videos are read on the head's layer
        train_videos = [self.data.videos[i] for i in self.train_idx]
        self.labels = np.array([v.label for v in train_videos], dtype=np.int64)
        if t.bags == "real":
            self.log(f"loading {len(train_videos)} training videos ({crops} crop(s), D {dim}, real lengths, "
                     f"windows of at most {t.max_segments} segments)")
            self.bags = load_real_bags(train_videos, progress=progress, shape=(crops, dim))
        else:
            self.log(f"building {len(train_videos)} training bags ({crops} crop(s), D {dim}, {t.segments} segments)")
            self.bags = build_bags(train_videos, t.segments, progress=progress, shape=(crops, dim))
        anomalous, normal = np.flatnonzero(self.labels == 1), np.flatnonzero(self.labels == 0)
        self.anomalous = anomalous
        self.priors = None
        self._told_val_skipped = False    # validation videos whose frames disagree: logged once
        if needs_prior(t.loss):
            self.log(f"segments chosen by distance (train.loss.topk_by {t.loss.topk_by}, bottom_by "
                     f"{t.loss.bottom_by}): distances to the {normal.size} normal training videos' snippets")
            self.priors = selection_priors(cfg.model, self.bags, normal, t.seed)
            if t.bags != "real":                                     # resampled bags: one (N, C, S) array
                self.priors = np.stack(self.priors)
        self.total = planned_iterations(t, len(anomalous))
        self.seeds = [member_seed(t.seed, m) for m in range(cfg.model.members)]
        self.samplers = [BalancedSampler(anomalous[self.split.trains(m, anomalous)],
                                         normal[self.split.trains(m, normal)], t.batch_anomalous, t.batch_normal, s)
                         for m, s in enumerate(self.seeds)]

        torch.manual_seed(t.seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(t.seed)
        self.model = build_model(cfg.model).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.dyn = DynamicLabels(self.labels, t.segments, t.dynamic, t.alpha, t.beta, t.loss.k)
        self.start, self.elapsed = 0, 0.0
        self.best = {"metric": None, "iteration": None, "metrics": {}}
        self.records: List[dict] = []
        self._raw_calibration: Optional[CalibrationScores] = None    # set by _fit_after_training
        if resume_ckpt is not None:
            self._restore(resume_ckpt)

    # --- data split (vadpipe/run_split.py) ------------------------------------------------------
    train_idx = property(lambda self: self.split.train_idx)       # the one record of the split: RunSplit
    held_idx = property(lambda self: self.split.held_idx)
    member_held = property(lambda self: self.split.member_held)

    def _split(self, resume_ckpt: Optional[Checkpoint]) -> None:
        t = self.cfg.train
        self.split = (RunSplit.from_record(self.data, resume_ckpt.last["split"], "cannot resume")
                      if resume_ckpt is not None
                      else draw_split(t, self.cfg.model, self.data, self.log))
        held = self.held_idx
        if self.member_held:   # every held-out video trains other members: no honest validation score
            self.log(f"bagging: {len(self.member_held)} members, each holding out "
                     f"{', '.join(str(h.size) for h in self.member_held)} videos; no validation metric, "
                     f"the threshold is calibrated out of bag on the held-out normal videos")
            held = np.array([], dtype=np.int64)
        self.val_set, self.val_gt = open_validation(t, self.data, held, self.log, self.dim)

    # --- state --------------------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        last = ckpt.last
        # a finished run's last.pt carries the terms fitted after its last step: the loop (its validation
        # above all) goes on with them unfitted, as it ran, and the finish fits them again
        self.model.load_state_dict({**ckpt.model, **fitted_term_state(self.model)})
        self.opt.load_state_dict(last["optimizer"])
        self.dyn.load_state_dict(last["dynamic_labels"])
        torch.set_rng_state(last["torch_rng"])
        if self.device.type == "cuda" and last.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(last["cuda_rng"], self.device)
        self.start = ckpt.iteration
        self.elapsed = float(last["elapsed"])
        self.best = last["best"]
        path = self.run_dir / METRICS_FILE
        if path.exists():
            lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
            self.records = [r for r in lines if r.get("iteration", 0) <= self.start]
        self.log(f"resuming {self.run_dir} at iteration {self.start}")

    def _checkpoint(self, iteration: int, with_state: bool, metrics: dict) -> Checkpoint:
        state = None
        if with_state:
            state = {
                "optimizer": self.opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "dynamic_labels": self.dyn.state_dict(),
                "best": self.best,
                "split": self.split.record(self.data),
                "elapsed": self.elapsed,
            }
        return Checkpoint.of(self.model, self.cfg.model, train_config=self.cfg.train, recipe=self.data.recipe,
                             snippet_len=self.data.snippet_len, metrics=metrics, iteration=iteration, last=state)

    def _write_records(self) -> None:
        atomic.write_text(self.run_dir / METRICS_FILE,
                          "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))

    # --- one step ----------------------------------------------------------------------------
    def _batch(self, iteration: int, member: int = 0) -> Batch:
        """A member's batch of ``iteration`` (a pure function of its seed and the iteration)."""
        t, seed = self.cfg.train, self.seeds[member]
        a, n = self.samplers[member].batch(iteration)
        if t.bags == "real":
            return self._real_batch(iteration, a, n, seed)
        videos = np.concatenate([a, n])
        ta = self.dyn.rows(a)                                        # (na, S)
        pick = choose_crops(seed, iteration, len(videos), self.crops) if t.crops == "random" else None
        if pick is None:
            ta = ta.repeat_interleave(self.crops, dim=0)

        def rows(per_video: np.ndarray) -> torch.Tensor:            # (N, C, S, ...) -> the batch's (rows, S, ...)
            if pick is not None:                                     # one crop a video, gathered directly
                return torch.from_numpy(per_video[videos, pick]).to(self.device)
            return torch.from_numpy(per_video[videos].reshape(-1, *per_video.shape[2:])).to(self.device)

        x = rows(self.bags)                                          # bags (N, C, S, D)
        targets = torch.cat([ta, torch.zeros(x.shape[0] - ta.shape[0], ta.shape[1])]).to(self.device)
        return Batch(x, targets, ta.shape[0], None, None if self.priors is None else rows(self.priors))

    def _real_batch(self, iteration: int, a: np.ndarray, n: np.ndarray, seed: int) -> Batch:
        """Padded (rows, L, D) batch of whole videos (``bags: real``): crops as in ``_batch``."""
        t = self.cfg.train
        videos = np.concatenate([a, n])
        if t.crops == "random":
            crops = list(zip(videos, choose_crops(seed, iteration, len(videos), self.crops)))
            n_anom, group = len(a), 1
        else:
            crops = [(v, c) for v in videos for c in range(self.crops)]
            n_anom, group = len(a) * self.crops, self.crops
        x, mask = pad_windows([self.bags[v][c] for v, c in crops], t.max_segments, seed, iteration, group)
        prior = None
        if self.priors is not None:     # the windows are drawn from (seed, iteration) and the lengths: the same
            prior, _ = pad_windows([self.priors[v][c][:, None] for v, c in crops], t.max_segments, seed, iteration,
                                   group)
            prior = torch.from_numpy(prior[..., 0]).to(self.device)
        targets = torch.zeros(x.shape[:2])
        targets[:n_anom] = 1.0                                       # video labels (dynamic labels are off)
        return Batch(torch.from_numpy(x).to(self.device), targets.to(self.device), n_anom,
                     torch.from_numpy(mask).to(self.device), prior)

    def _crop_group(self) -> int:
        return self.crops if self.cfg.train.crops == "max" else 1

    def _step(self, iteration: int) -> Dict[str, float]:
        if self.dyn.due(iteration):
            self._update_labels()
        batches = [self._batch(iteration, m) for m in range(len(self.seeds))]
        try:
            return members_step(members_of(self.model), self.opt, batches, self._loss_at(iteration), self.use_amp,
                                self._crop_group())
        except TrainingDiverged as exc:
            saved = self.run_dir / "last.pt"
            kept = f"{saved} keeps the last saved state" if saved.exists() else "nothing was saved"
            raise TrainingDiverged(f"training diverged at iteration {iteration + 1}: {exc} (lower train.lr, now "
                                   f"{self.cfg.train.lr:g}, or a loss weight); {kept}") from None

    def _loss_at(self, iteration: int):
        """The loss terms of this iteration: the bottom term waits for ``bottom_after`` of the planned
        iterations, until the head's lowest scores are likelier to sit on normal segments."""
        loss = self.cfg.train.loss
        if loss.w_bottom > 0 and iteration < loss.bottom_after * self.total:
            return replace(loss, w_bottom=0.0)
        return loss

    @torch.no_grad()
    def _update_labels(self) -> None:
        """Algorithm 1: score every anomalous training bag in eval mode, update its label row at the
        segments the losses' top-k would choose (``train.loss.topk_by``; crops averaged)."""
        self.model.eval()
        loss = self.cfg.train.loss
        chunk = max(1, 256 // self.crops)
        for s in range(0, len(self.anomalous), chunk):
            vids = self.anomalous[s:s + chunk]
            x = torch.from_numpy(self.bags[vids].reshape(-1, *self.bags.shape[2:])).to(self.device)
            with autocast(self.device, "bfloat16" if self.use_amp else "float32"):
                out = self.model(x)
            scores = out.scores.float().view(len(vids), self.crops, -1).mean(1)
            mags = None
            if loss.topk_by == "magnitude" and out.features is not None:
                mags = out.features.float().norm(dim=-1).view(len(vids), self.crops, -1).mean(1)
            prior = None if self.priors is None else torch.from_numpy(self.priors[vids]).to(self.device).mean(1)
            self.dyn.update(vids, scores, ranking_values(loss, scores, mags, prior))
        self.model.train()

    # --- validation and what follows the last step ---------------------------------------------
    def _validate(self) -> dict:
        if self.val_set is None:
            return {}
        metrics = validation_metrics(score_videos(self.model, self.val_set.videos, self.device), self.val_set,
                                     self.val_gt, self.cfg.model.frame_scores)
        if metrics.get("val_skipped") and not self._told_val_skipped:
            self._told_val_skipped = True
            self.log(f"validation: {metrics['val_skipped']} of {len(self.val_set.videos)} video(s) skipped, their "
                     f"frame count disagrees with {self.cfg.train.val_gt} (val_skipped in metrics.jsonl)")
        return metrics

    def _calibrate(self) -> dict:
        t = self.cfg.train
        return calibrate_split(self.model, self.data, self.split, self.val_set, self.val_gt, t.calibration_quantiles,
                               self.cfg.model.frame_scores, self.device, t.calibration_pooling, self._crossfit_seed,
                               self._raw_calibration)

    @property
    def _crossfit_seed(self) -> Optional[int]:
        return crossfit_seed_of(self.cfg.model, self.cfg.train)

    def _fit_after_training(self) -> Optional[Dict[str, torch.Tensor]]:
        """What is fitted on the trained head (normal statistics, then the pseudo-label stage, which reads
        the fused scores, then the score levels, which read all of it): the state dict that carries it. The
        calibration videos' raw scores the levels were fitted on are kept for :meth:`_calibrate` (the weights
        and terms it calibrates are the last ones fitted here)."""
        self._raw_calibration = None
        state = self._fit_terms()
        if getattr(self.model, "levels", None) is None:
            return state
        t = self.cfg.train
        state, self._raw_calibration = fit_score_levels(self.model, self.data, self.split, self.val_set, self.val_gt,
                                                        self.cfg.model.frame_scores, self.device,
                                                        t.calibration_pooling, self.log, self._crossfit_seed)
        return state

    def _scene_record(self) -> Optional[dict]:
        """The scene check's bound (vadpipe/scene_check.py) for each head with its own normal statistics: a
        bagged ensemble's members on the videos each fitted them on, else the head (heads side by side share
        one set)."""
        with_held = self.cfg.model.terms_fit == "all"
        members = bagged_members(self.model)
        if not members:
            videos = terms_videos(self.data, self.split, with_held_out=with_held)
            return fit_scene_record(self.model, videos, self.cfg.train.seed, self.device, self.log)
        own = member_terms_videos(self.data, self.split, with_held_out=with_held)
        return record_of_heads(members, [fit_scene_record(member, videos, seed, self.device,
                                                          lambda msg, m=m: self.log(f"member {m}: {msg}"))
                                         for m, (member, videos, seed) in enumerate(zip(members, own, self.seeds))])

    def _fit_terms(self) -> Optional[Dict[str, torch.Tensor]]:
        if bagged_members(self.model):   # each member on the videos it trained on (and held out, with all)
            with_held = self.cfg.model.terms_fit == "all"
            own = member_terms_videos(self.data, self.split, with_held_out=with_held)
            added = [len(held_out_normals(self.data, held)) for held in self.member_held] if with_held else []
            if any(added):
                self.log(f"fitted terms: each member's training videos and its {'/'.join(map(str, added))} held-out "
                         f"normal videos (model.terms_fit all); calibration scores these cross-fitted")
            return fit_member_terms(self.model, own, self.seeds, self.device, self.log)
        unit_videos: Sequence = ()
        if self.cfg.model.pseudo_unit == "held-out":   # the stage's unit from the videos calibration uses
            held_normal, source = calibration_videos(self.data, self.train_idx, self.held_idx, self.val_set,
                                                     self.val_gt)
            unit_videos = held_normal if source != OPTIMISTIC_CALIBRATION else ()
        train_videos = terms_videos(self.data, self.split, with_held_out=self.cfg.model.terms_fit == "all")
        added = len(train_videos) - len(self.train_idx)
        if added:
            self.log(f"fitted terms: the training split and {added} held-out normal videos (model.terms_fit "
                     f"all); calibration scores these cross-fitted")
        return fit_terms(self.model, train_videos, self.cfg.train.seed, self.device, self.log, unit_videos)

    def _selection(self) -> str:
        return selection_note(self.cfg.train, self.best["metric"])

    # --- the loop ------------------------------------------------------------------------------
    def run(self, progress: bool = True, link_latest: bool = True) -> TrainResult:
        t = self.cfg.train
        if link_latest:
            check_latest(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.yaml")
        if link_latest:
            update_latest(self.run_dir)
        writer = self._tensorboard()
        total = self.total
        heads = f" of {len(self.seeds)} heads side by side" if len(self.seeds) > 1 else ""
        self.log(f"training {total} iterations{heads} ({schedule_text(t, len(self.anomalous))}) on {self.device}")
        bar = progress_bar(total=total, initial=min(self.start, total), enabled=progress, desc="train", unit="it")
        clock = started = time.perf_counter()
        saved_at = time.monotonic()   # last.pt on a clock too: a kill between evaluations loses minutes at most
        last_metrics = self.best.get("metrics", {})
        for it in range(self.start, total):
            terms = self._step(it)
            done = it + 1
            now = time.perf_counter()
            self.elapsed += now - clock
            clock = now
            bar.update(1)
            if done == self.start + 10 and done < total:
                eta = (time.perf_counter() - started) / 10 * (total - done)
                self.log(f"ETA {eta / 60:.1f} min for the remaining {total - done} iterations (validation not counted)")
            if done % t.log_every == 0 or done == total:
                rec = {"iteration": done, "lr": self.opt.param_groups[0]["lr"], "seconds": round(self.elapsed, 3),
                       **{f"loss_{k}" if k != "total" else "loss": v for k, v in terms.items()}}
                self.records.append(rec)
                bar.set_postfix(loss=f"{terms['total']:.4f}", refresh=False)   # the bar redraws on its own clock
                if writer:
                    for k, v in terms.items():
                        writer.add_scalar(f"loss/{k}", v, done)
            if done % t.eval_every == 0 or done == total:
                last_metrics = self._validate()
                metric = last_metrics.get("val_auc")
                improved = metric is not None and (self.best["metric"] is None or metric > self.best["metric"])
                no_metric = self.best["metric"] is None and metric is None
                if t.select == "last":
                    improved, no_metric = True, False
                if improved or no_metric:
                    self.best = {"metric": metric, "iteration": done, "metrics": last_metrics}
                self.records.append({"iteration": done, "seconds": round(self.elapsed, 3), **last_metrics})
                if writer and metric is not None:
                    writer.add_scalar("val/auc", metric, done)
                if improved or no_metric:
                    self._checkpoint(done, False, {**last_metrics, "selection": self._selection()}).save(
                        self.run_dir / "best.pt")
                self._write_records()          # before last.pt: a resume keeps the records up to its iteration
                self._checkpoint(done, True, last_metrics).save(self.run_dir / "last.pt")
                saved_at = time.monotonic()
                if metric is not None:
                    bar.set_postfix(loss=f"{terms['total']:.4f}", val=f"{metric:.4f}", refresh=False)
                clock = time.perf_counter()   # validation and saving are not training time
            elif time.monotonic() - saved_at >= t.checkpoint_minutes * 60:
                self._write_records()          # the metrics up to here, as resume reads them back
                self._checkpoint(done, True, last_metrics).save(self.run_dir / "last.pt")
                saved_at = time.monotonic()
                clock = time.perf_counter()
            if done % t.log_every == 0 or done % t.eval_every == 0 or done == total:
                self._write_records()
        bar.close()
        if writer:
            writer.close()
        return self._finish(total, last_metrics)

    def _finish(self, total: int, last_metrics: dict) -> TrainResult:
        best_path, last_path = self.run_dir / "best.pt", self.run_dir / "last.pt"
        if not last_path.exists():   # zero iterations asked for: the untrained head is kept, as iteration 0
            if self.best["iteration"] is None:
                self.best = {**self.best, "iteration": total}
            self._checkpoint(total, True, last_metrics).save(last_path)
            self._checkpoint(total, False, {"selection": self._selection()}).save(best_path)
        best = Checkpoint.load(best_path)
        last = Checkpoint.load(last_path)
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        last.model = self._fit_after_training() or last.model   # on the current (last) weights
        if same_state(best.model, current):                # select last: the same weights, fitted once
            best.model = last.model
        else:
            self.model.load_state_dict(best.model)
            best.model = self._fit_after_training() or best.model
        calibration = self._calibrate()                    # fused scores: the thresholds fit what score uses
        scene = self._scene_record()                       # the Gaussian is the same for best and last
        self.model.load_state_dict(current)
        best.calibration = last.calibration = calibration
        best.scene = last.scene = scene
        best.metrics = {**best.metrics, "selection": self._selection(), "best_iteration": self.best["iteration"]}
        best.save(best_path)
        last.save(last_path)
        metric = "" if self.best["metric"] is None else f" (validation {self.best['metric']:.4f})"
        self.log(f"run {self.run_dir}: kept iteration {self.best['iteration']}{metric}, {self._selection()}; "
                 f"{calibration_summary(calibration)}")
        return TrainResult(self.run_dir, total, best.metrics, calibration)

    def _tensorboard(self):
        if not self.cfg.train.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.log("tensorboard not installed: logging to metrics.jsonl only")
            return None
        return SummaryWriter(str(self.run_dir / "tb"))
