"""Trained heads on disk: build, save, load, run; run folders and the ``runs/latest`` pointer.

Checkpoint (``best.pt``/``last.pt``, written atomically, loadable with
``torch.load(weights_only=True)``: only plain types and tensors)::

    {"format": "vadpipe-checkpoint/1",
     "model": state_dict,
     "model_config": dict (vadpipe.config.ModelConfig),
     "train_config": dict (vadpipe.config.TrainConfig),
     "recipe": dict (the features' recipe.json) or None (RTFM list files),
     "snippet_len": int (frames a snippet covers: recipe's, or 16 for lists),
     "metrics": dict (validation metrics of this checkpoint, "selection": how it was chosen),
     "calibration": {"normal_frame_score_quantiles": {"0.95": x, "0.99": y, "0.999": z},
                     "source": str, "n_videos": int} or None,
     "iteration": int,
     "last": None in best.pt; in last.pt the resume state {"optimizer", "torch_rng",
             "cuda_rng", "dynamic_labels", "best", "split", "elapsed"}}

A run folder ``runs/<name>/`` holds best.pt, last.pt, config.yaml,
metrics.jsonl (and eval/ results). ``runs/latest`` is a symlink to the newest
run, or a text file with its path where symlinks are not available.

Public API used by ``vadpipe score`` / ``vadpipe demo``::

    model, ckpt = load_checkpoint("runs/latest")        # a .pt file or a run folder
    scores = score_features(model, feats, device)       # feats (T, C, D) or (T, D) -> (T,)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import atomic
from .errors import CheckpointError, ConfigError
from .features import as_snippet_crops

FORMAT = "vadpipe-checkpoint/1"
# calibration["source"] when no normal video was held out: the head has fitted the videos it was
# calibrated on, so its quantiles are too low (``vadpipe score`` warns about it)
OPTIMISTIC_CALIBRATION = "training normal videos (none held out: optimistic)"
LATEST = "latest"


def build_model(model_config: Any) -> nn.Module:
    """The head described by a ModelConfig or its dict (``name``: ltgs | rtfm | mil)."""
    from .config import ModelConfig, config_to_dict
    from .models.baselines import MILHead, RTFMHead
    from .models.ltgs import LTGS

    cfg = config_to_dict(model_config) if isinstance(model_config, ModelConfig) else dict(model_config)
    known = set(config_to_dict(ModelConfig()))
    unknown = set(cfg) - known
    if unknown:
        raise ConfigError(f"model config has unknown key(s) {', '.join(sorted(unknown))}")
    m = ModelConfig(**{**config_to_dict(ModelConfig()), **cfg})
    hidden = tuple(m.hidden)
    if m.name == "ltgs":
        if m.use_lt and m.feature_dim % m.heads:
            raise ConfigError(f"model.heads = {m.heads} does not divide feature_dim = {m.feature_dim}")
        return LTGS(m.feature_dim, m.heads, m.ffn_dim, m.lt_dropout, m.h_reading, m.decay, m.use_lt, m.gs,
                    hidden, m.dropout)
    if m.name == "rtfm":
        return RTFMHead(m.feature_dim, hidden, m.dropout)
    if m.name == "mil":
        return MILHead(m.feature_dim, hidden, m.dropout)
    raise ConfigError(f"unknown model {m.name!r}")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    atomic.torch_save(path, {"format": FORMAT, **payload})


def checkpoint_path(path: str | Path, which: str = "best") -> Path:
    """A .pt file as given; a run folder (or ``runs/latest``) → its ``which``.pt."""
    path = Path(path)
    if path.name == LATEST or path.is_dir():
        path = resolve_run(path)
    if path.is_dir():
        path = path / f"{which}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def read_checkpoint(path: str | Path, which: str = "best") -> dict:
    """The checkpoint dict, read safely (weights_only=True) and checked for its format."""
    path = checkpoint_path(path, which)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a safe vadpipe checkpoint"
        raise CheckpointError(f"{path}: not a readable vadpipe checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vadpipe checkpoint (format {ckpt.get('format') if isinstance(ckpt, dict) else None!r})")
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    which: str = "best") -> Tuple[nn.Module, dict]:
    """(model in eval mode on ``device``, checkpoint dict). ``path``: a .pt, a run folder or runs/latest."""
    ckpt = read_checkpoint(path, which)
    model = build_model(ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), ckpt


@torch.no_grad()
def score_features(model: nn.Module, feats: np.ndarray, device: str | torch.device = "cpu",
                   max_attention_elements: int = 1 << 27) -> np.ndarray:
    """Snippet scores (T,) of one video: every crop scored as its own sample, then averaged over crops.

    ``feats``: (T, C, D) or (T, D). The model runs in eval mode on all T
    snippets (no resampling). Crops go through in groups small enough that the
    attention matrices stay under ``max_attention_elements`` entries.
    """
    x = as_snippet_crops(np.asarray(feats, dtype=np.float32))
    was_training = model.training
    model.eval()
    t, c, _ = x.shape
    heads = getattr(getattr(getattr(model, "lt", None), "attn", None), "heads", 1)
    group = max(1, min(c, max_attention_elements // max(1, heads * t * t)))
    x_t = torch.from_numpy(np.array(x.transpose(1, 0, 2), order="C"))    # (C, T, D), a writable copy
    total = torch.zeros(t, dtype=torch.float64)
    for start in range(0, c, group):
        chunk = x_t[start:start + group].to(device)
        total += model(chunk).scores.double().sum(0).cpu()
    model.train(was_training)
    return (total / c).numpy().astype(np.float32)


@torch.no_grad()
def score_batch(model: nn.Module, videos: Sequence[np.ndarray], device: str | torch.device = "cpu") -> list:
    """Snippet scores of several videos in one padded forward pass (crops averaged): list of (T_i,)."""
    xs = [np.asarray(v, dtype=np.float32) for v in videos]
    xs = [v[:, None, :] if v.ndim == 2 else v for v in xs]
    t_max = max(v.shape[0] for v in xs)
    rows, mask, owner = [], [], []
    for i, v in enumerate(xs):
        for c in range(v.shape[1]):
            pad = np.zeros((t_max, v.shape[2]), dtype=np.float32)
            pad[:v.shape[0]] = v[:, c]
            rows.append(pad)
            mask.append(np.arange(t_max) < v.shape[0])
            owner.append(i)
    was_training = model.training
    model.eval()
    scores = model(torch.from_numpy(np.stack(rows)).to(device), torch.from_numpy(np.stack(mask)).to(device)).scores
    model.train(was_training)
    scores = scores.double().cpu().numpy()
    owner = np.array(owner)
    return [scores[owner == i].mean(0)[:v.shape[0]].astype(np.float32) for i, v in enumerate(xs)]


# --- run folders ------------------------------------------------------------------------------
def resolve_run(path: str | Path) -> Path:
    """A run folder from a folder, a ``latest`` symlink, or a ``latest`` text file holding a path."""
    path = Path(path)
    if path.is_file() and path.suffix != ".pt":
        target = Path(path.read_text(encoding="utf-8").strip())
        path = target if target.is_absolute() else path.parent / target
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder")
    return path.resolve()


def update_latest(run_dir: str | Path) -> Path:
    """Point ``<runs>/latest`` at ``run_dir`` (relative symlink; a text file where links fail)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        if link.is_symlink():
            link.unlink()
        atomic.write_text(link, run_dir.name + "\n")
    return link


def latest_run(runs_root: str | Path = "runs") -> Optional[Path]:
    link = Path(runs_root) / LATEST
    if not (link.exists() or link.is_symlink()):
        return None
    return resolve_run(link)
