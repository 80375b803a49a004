"""Trained heads on disk: the typed checkpoint, build, save, load, run; run folders and ``runs/latest``.

A checkpoint (``best.pt``/``last.pt``) is a :class:`Checkpoint`: built and read
only through that class, written atomically as a dict of plain types and
tensors so that it loads with ``torch.load(weights_only=True)``::

    {"format": "vadpipe-checkpoint/1",
     "model": state_dict,
     "model_config": dict (vadpipe.config.ModelConfig),
     "train_config": dict (vadpipe.config.TrainConfig) or None (a head made outside training),
     "recipe": dict (the features' recipe.json) or None (RTFM list files),
     "snippet_len": int (frames a snippet covers: recipe's, or 16 for lists),
     "metrics": dict (validation metrics of this checkpoint, "selection": how it was chosen),
     "calibration": {"normal_frame_score_quantiles": {"0.95": x, "0.99": y, "0.999": z} (what auto reads),
                     "pooling": "frames" | "clips" (how that table pooled the videos; absent: frames),
                     "pooled": {"frames": {...}, "clips": {...}} (both tables; absent in older ones),
                     "source": str, "n_videos": int,
                     "videos": {id: {"frames": int, "above": {"0.99": share of its frames at or above, ...}}}} or None,
     "scene": {"quiet_share": 0.1, "bound": float, "median": float, "videos": int} (vadpipe/scene_check.py: how far
              normal training videos lie from the others' Gaussian; absent before 2026-12-07), for a bagged
              ensemble or a pair {"members": [one such record per head with statistics]} (absent in older ones),
              or None,
     "iteration": int,
     "partner": None, or with model.partner the partner head's {"model_config": dict, "train_config": dict,
                "iteration": int} as it trained (its weights are in "model", under partner.),
     "last": None in best.pt; in last.pt the resume state {"optimizer", "torch_rng",
             "cuda_rng", "dynamic_labels", "best", "split", "elapsed"}}

The number after the slash is the format version: this vadpipe reads versions
up to :data:`FORMAT_VERSION`; a newer one, or a dict without a format (made
before versions existed), is refused with a one-line message.

A run folder ``runs/<name>/`` holds best.pt, last.pt, config.yaml,
metrics.jsonl (and eval/ results). ``runs/latest`` is a symlink to the newest
run, or a text file with its path where symlinks are not available.

Public API used by ``vadpipe score`` / ``vadpipe demo``::

    model, ckpt = load_checkpoint("runs/latest")        # a .pt file or a run folder
    scores = score_features(model, feats, device)       # feats (T, C, D) or (T, D) -> (T,)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import atomic
from .config import (ModelConfig, TrainConfig, check_head_width, config_to_dict, model_config_from_dict,
                     train_config_from_dict)
from .config_values import field_value
from .errors import CheckpointError, ConfigError, RecipeMismatchError
from .features import as_snippet_crops
from .readers import read_text
from .recipe import Recipe

FORMAT_NAME = "vadpipe-checkpoint"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
RTFM_SNIPPET_LEN = 16          # list files carry no recipe: RTFM's 16-frame snippets
# calibration["source"] when no normal video was held out: the head has fitted the videos it was
# calibrated on, so its quantiles are too low (``vadpipe score`` warns about it)
OPTIMISTIC_CALIBRATION = "training normal videos (none held out: optimistic)"
LATEST = "latest"


@dataclass(frozen=True)
class ScoringRule:
    """How a head's per-crop snippet scores become a video's snippet scores (ModelConfig fields):
    crops combined by ``mean`` (the article, RTFM) or ``max`` (an event seen by any crop counts),
    then a centred moving average of :meth:`window` snippets (1 = none; shorter at the ends):
    ``smooth_window``, or with ``smooth_share`` > 0 at least that share of the video's T snippets;
    ``frame_scores`` is how those snippet scores become frame scores (``intervals.FRAME_MODES``)."""

    crop_reduce: str = "mean"
    smooth_window: int = 1
    frame_scores: str = "hold"
    smooth_share: float = 0.0

    def window(self, t: int) -> int:
        """The (odd) moving-average width for a video of ``t`` snippets, at most ``t`` (np.convolve's
        "same" output takes the longer input's length)."""
        width = max(self.smooth_window, 1 + 2 * int(self.smooth_share * t / 2 + 0.5))
        return max(1, min(width, t - 1 + t % 2))

    def combine(self, per_crop: np.ndarray) -> np.ndarray:
        """(C, T) float64 → (T,) float64."""
        s = per_crop.max(0) if self.crop_reduce == "max" else per_crop.mean(0)
        width = self.window(s.size)
        if width > 1 and s.size > 1:
            kernel = np.ones(width)
            s = np.convolve(s, kernel, "same") / np.convolve(np.ones_like(s), kernel, "same")
        return s


def scoring_rule(model: nn.Module) -> ScoringRule:
    return getattr(model, "scoring_rule", ScoringRule())


def video_scores(model: nn.Module, per_crop: np.ndarray) -> np.ndarray:
    """A video's (T,) snippet scores, float32, from its (C, T) per-crop fused scores: the model's
    :class:`ScoringRule`, then its score levels once fitted (``model.score_levels``, models/levels.py)."""
    return as_levels(model, scoring_rule(model).combine(per_crop))


def as_levels(model: nn.Module, scores: np.ndarray) -> np.ndarray:
    """A video's snippet scores as the model reports them, float32: mapped by its score levels once fitted
    (``model.score_levels``, models/levels.py), else as they are."""
    levels = getattr(model, "levels", None)
    return (scores if levels is None else levels.apply(scores)).astype(np.float32)


def build_model(model_config: Any, partner_config: Optional[ModelConfig] = None) -> nn.Module:
    """The head a ModelConfig (or its dict) describes, from the head registry (``vadpipe.models``).
    With ``model.partner``: that head and its partner (``partner_config``, as trained; by default the one
    ``vadpipe.presets.partner_config`` gives) as a :class:`~vadpipe.models.pair.StandardisedPair`. With
    ``model.score_levels`` calibrated: the (unfitted) map of its scores to levels, ``model.levels``."""
    m = model_config if isinstance(model_config, ModelConfig) else model_config_from_dict(model_config)
    model = _pair(m, partner_config) if m.partner else _heads(m)
    if m.score_levels == "calibrated":     # buffers only, fitted after training on the calibration videos
        from .models.levels import ScoreLevels

        model.levels = ScoreLevels()
    return model


def _heads(m: ModelConfig) -> nn.Module:
    """One head, or ``m.members`` averaged, with their fitted terms (unfitted) and scoring rule."""
    from .models import create_head

    check_head_width(m)
    try:
        heads = [create_head(m.name, **{**config_to_dict(m), "feature_dim": m.head_dim}) for _ in range(m.members)]
    except KeyError as exc:
        raise ConfigError(f"model.name: {exc.args[0]}") from None
    if m.head_span != (0, 0):
        for head in heads:      # each head cuts its own layer out of the stored features, wherever it is called
            head.register_forward_pre_hook(_input_span(tuple(m.head_span)))
    if len(heads) > 1:
        from .models.ensemble import MeanOfLogits

        model = MeanOfLogits(heads)
    else:
        model = heads[0]
    model.scoring_rule = ScoringRule(m.crop_reduce, m.smooth_window, m.frame_scores, m.smooth_share)   # read by score_features
    if m.normal_weight > 0:     # buffers only (fitted after training), saved with the head's state
        for owner in heads if m.bagging else [model]:   # bagged: each member's own, from its own normals
            owner.normal_stats = normal_stats_of(m)
    if m.pseudo_weight > 0:     # buffers only, fitted after training as well; bagged: each member's own
        for owner in heads if m.bagging else [model]:
            owner.pseudo_stage = pseudo_stage_of(m)
    return model


def _pair(m: ModelConfig, partner_config: Optional[ModelConfig]) -> nn.Module:
    from dataclasses import replace

    from .config import Config
    from .models.pair import StandardisedPair
    from .presets import partner_config as partner_of

    if partner_config is None:
        partner_config = partner_of(Config(m)).model
    # each head scores raw; the pair's levels, if any, map what the pair fuses
    pair = StandardisedPair(build_model(replace(m, partner="", score_levels="raw")),
                            build_model(replace(partner_config, score_levels="raw")))
    pair.scoring_rule = pair.primary.scoring_rule        # the pair scores frames as its primary head does
    return pair


def normal_stats_of(m: ModelConfig) -> nn.Module:
    """The (unfitted) normal statistics ``m`` describes, on the layer its ``normal_span`` holds."""
    from .models.normal_stats import NormalStats

    return NormalStats(m.normal_dim, m.normal_weight, m.normal_shrinkage, m.normal_features, m.normal_context,
                       m.normal_rank, m.normal_span, m.normal_standardise)


def pseudo_stage_of(m: ModelConfig) -> nn.Module:
    """The (unfitted) pseudo-label stage ``m`` describes, on the head's own layer."""
    from .models.pseudo_stage import PseudoStage

    return PseudoStage(m.head_dim, m.pseudo_weight, m.pseudo_share, m.pseudo_c, m.head_span, m.pseudo_unit)


def _input_span(span: Tuple[int, int]):
    """A forward pre-hook that hands a head only ``span`` of its input's last axis."""
    from .models.normal_stats import take_span

    def cut(module: nn.Module, args: tuple) -> tuple:
        return (take_span(args[0], span),) + tuple(args[1:])
    return cut


def head_scores(model: nn.Module, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N, T) scores of rows (N, T, D) (``mask``: real segments of padded rows): the head's, fused with
    its normal statistics and then its pseudo-label stage, each once fitted. A bagged ensemble's members
    are fused each with its own statistics, then averaged (``models/ensemble.py``)."""
    from .models.ensemble import bagged_members, mean_of_logits
    from .models.ltgs import full_mask
    from .models.pair import StandardisedPair

    if isinstance(model, StandardisedPair):     # each head with its own fitted terms, then the pair's scale
        return model.fuse(head_scores(model.primary, x, mask), head_scores(model.partner, x, mask),
                          full_mask(x, mask))
    members = bagged_members(model)
    if members:
        return mean_of_logits([head_scores(h, x, mask) for h in members], full_mask(x, mask))
    scores = model(x).scores if mask is None else model(x, mask).scores
    stats, stage = getattr(model, "normal_stats", None), getattr(model, "pseudo_stage", None)
    if stats is not None:
        scores = stats.fuse(scores, x, mask)        # a context must not reach into padding
    if stage is not None:
        scores = stage.fuse(scores, x)
    return scores


@dataclass
class Checkpoint:
    """A trained head with everything needed to use it again (see the module docstring)."""

    model: Dict[str, torch.Tensor]                 # the head's state dict
    model_config: ModelConfig
    train_config: Optional[TrainConfig] = None     # None: a head made outside training (tests, benchmarks)
    recipe: Optional[Recipe] = None                # None: trained on list files without a recipe
    snippet_len: int = RTFM_SNIPPET_LEN
    metrics: dict = field(default_factory=dict)
    calibration: Optional[dict] = None
    iteration: int = 0
    last: Optional[dict] = None                    # resume state (last.pt only)
    partner: Optional[dict] = None                 # model.partner: the partner head's configs and iteration
    scene: Optional[dict] = None                   # the scene check's bound (vadpipe/scene_check.py), or None
    version: int = FORMAT_VERSION

    @property
    def partner_model_config(self) -> Optional[ModelConfig]:
        """The partner head's ModelConfig as it trained (None without a partner)."""
        if not self.partner:
            return None
        return model_config_from_dict(self.partner["model_config"], "partner.model_config")

    def require_feature_dim(self, dim: int, what: str) -> None:
        """Features of ``dim`` dimensions must be the size the head was built for."""
        if dim != self.model_config.feature_dim:
            raise RecipeMismatchError(f"{what} have D = {dim}, the checkpoint expects {self.model_config.feature_dim}")

    @property
    def stride(self) -> int:
        """Frames between snippet starts (the recipe's; list files: non-overlapping)."""
        return self.recipe.stride if self.recipe is not None else self.snippet_len

    @classmethod
    def of(cls, model: nn.Module, model_config: ModelConfig, **fields: Any) -> "Checkpoint":
        """A checkpoint of ``model`` (its weights copied to the CPU); ``snippet_len`` follows the recipe."""
        recipe = fields.get("recipe")
        fields.setdefault("snippet_len", recipe.snippet_len if recipe is not None else RTFM_SNIPPET_LEN)
        return cls({k: v.detach().cpu() for k, v in model.state_dict().items()}, model_config, **fields)

    def to_dict(self) -> dict:
        return {"format": f"{FORMAT_NAME}/{self.version}", "model": self.model,
                "model_config": config_to_dict(self.model_config),
                "train_config": None if self.train_config is None else config_to_dict(self.train_config),
                "recipe": None if self.recipe is None else self.recipe.to_dict(),
                "snippet_len": self.snippet_len, "metrics": self.metrics, "calibration": self.calibration,
                "iteration": self.iteration, "partner": self.partner, "last": self.last, "scene": self.scene}

    @classmethod
    def from_dict(cls, data: Any, where: str = "checkpoint") -> "Checkpoint":
        """The checkpoint a stored dict describes; CheckpointError (one line, naming ``where``) otherwise:
        each field is checked for the shape its readers take (a state dict of tensors, configs typed as
        YAML files are, a recipe this vadpipe reads, mappings where mappings are read)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: not a vadpipe checkpoint (a {type(data).__name__}, not a dict)")
        version = _format_version(data.get("format"), data, where)
        for key in ("model", "model_config"):
            if key not in data:
                raise CheckpointError(f"{where}: checkpoint without {key!r}")
        recipe = data.get("recipe")
        fields = dict(   # field -> (its reader, the stored value)
            model=(_state_dict, data["model"]),
            model_config=(model_config_from_dict, data["model_config"]),
            train_config=(_optional(train_config_from_dict), data.get("train_config")),
            recipe=(_optional(Recipe.from_dict), recipe),
            snippet_len=(_integer, data.get("snippet_len")
                         or (recipe.get("snippet_len") if isinstance(recipe, dict) else None) or RTFM_SNIPPET_LEN),
            metrics=(_mapping, data.get("metrics") or {}),
            calibration=(_optional(_calibration), data.get("calibration")),
            iteration=(_integer, data.get("iteration") or 0),
            last=(_optional(_mapping), data.get("last")),
            partner=(_optional(_partner), data.get("partner")),
            scene=(_optional(_scene), data.get("scene")))
        kwargs = {}
        for name, (read, value) in fields.items():
            try:
                kwargs[name] = read(value)
            except (ConfigError, TypeError, ValueError, AttributeError, KeyError) as exc:
                text = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
                raise CheckpointError(f"{where}: unusable checkpoint "
                                      f"({text if text.startswith(name) else f'{name}: {text}'})") from None
        return cls(**kwargs, version=version)

    def save(self, path: str | Path) -> None:
        atomic.torch_save(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, which: str = "best") -> "Checkpoint":
        """Read a .pt, a run folder or runs/latest safely (weights_only=True)."""
        path = checkpoint_path(path, which)
        return cls.from_dict(_torch_load(path), str(path))


# --- the shapes a stored checkpoint's fields must have (Checkpoint.from_dict) -------------------------
def _optional(read):
    return lambda value: None if value is None else read(value)


def _mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {_got(value)}")
    return value


def _got(value: Any) -> str:
    return "nothing (None)" if value is None else f"a {type(value).__name__}"


def _integer(value: Any) -> int:
    return field_value(int, value)


def _state_dict(value: Any) -> Dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in value.items()):
        raise ValueError(f"expected a state dict of named tensors, got {_got(value)}")
    return value


def _numbers(value: Any, what: str) -> None:
    """``value`` a mapping of numbers (a quantile table)."""
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value.values()):
        raise ValueError(f"{what}: expected a mapping of numbers, got {value!r:.60}")


def _calibration(value: Any) -> dict:
    """The threshold's calibration: the quantile table ``auto`` reads, the tables by pooling, the per-video
    shares above them, and a replaced calibration kept as ``previous`` (vadpipe calibrate)."""
    _mapping(value)
    if "normal_frame_score_quantiles" in value:
        _numbers(value["normal_frame_score_quantiles"], "normal_frame_score_quantiles")
    for name in ("pooled", "videos"):
        entries = value.get(name) or {}
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ValueError(f"{name}: expected a mapping of mappings")
        for key, entry in entries.items():
            _numbers(entry if name == "pooled" else entry.get("above", {}), f"{name}.{key}")
    if value.get("previous") is not None:
        _calibration(value["previous"])
    return value


def _partner(value: Any) -> dict:
    """The partner head's record: its model config must be one this vadpipe builds."""
    _mapping(value)
    model_config_from_dict(value["model_config"], "model_config")
    return value


def _scene(value: Any) -> dict:
    """The scene check's record, or a pair's or ensemble's ``{"members": [record, ...]}``."""
    _mapping(value)
    records = value.get("members", [value])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("members: expected a list of mappings")
    for record in records:
        _numbers({k: v for k, v in record.items() if k in ("bound", "median", "quiet_share")}, "record")
    return value


def _format_version(fmt: Any, data: dict, where: str) -> int:
    name, _, number = str(fmt).partition("/")
    if fmt is None and "model_config" in data:
        raise CheckpointError(f"{where}: a checkpoint without a format version (made before "
                              f"{FORMAT_NAME}/1); retrain it with this vadpipe")
    if name != FORMAT_NAME or not number.isdigit():
        raise CheckpointError(f"{where}: not a vadpipe checkpoint (format {fmt!r})")
    if int(number) > FORMAT_VERSION:
        raise CheckpointError(f"{where}: checkpoint format {fmt} is newer than this vadpipe reads "
                              f"({FORMAT}); update vadpipe")
    return int(number)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a safe vadpipe checkpoint"
        raise CheckpointError(f"{path}: {_load_failure(exc)}") from None


_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)")


def _load_failure(exc: BaseException) -> str:
    """Why torch.load refused a file, in one line. Torch's weights-only message opens with advice to
    load the file unsafely; a user is never told that: a checkpoint that needs it is not one of ours."""
    text = str(exc)
    found = _GLOBAL.search(text)
    if found:
        return (f"refused: the file would run or build {found.group(1)}, which no vadpipe checkpoint holds "
                f"(checkpoints load as plain tensors only)")
    if "weights only load failed" in text.lower():
        return "refused: the file holds objects beyond plain tensors, which no vadpipe checkpoint holds"
    first = next((line for line in text.splitlines() if line.strip() and "weights_only" not in line), "")
    return f"not a readable vadpipe checkpoint ({type(exc).__name__}: {first.split('. ')[0].strip()})"


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
    """The checkpoint as stored (a dict), checked through :class:`Checkpoint`: for inspection."""
    return Checkpoint.load(path, which).to_dict()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    which: str = "best") -> Tuple[nn.Module, Checkpoint]:
    """(model in eval mode on ``device``, its Checkpoint). ``path``: a .pt, a run folder or runs/latest."""
    path = checkpoint_path(path, which)
    ckpt = Checkpoint.load(path)
    try:
        model = build_model(ckpt.model_config, ckpt.partner_model_config)
    except (ConfigError, TypeError, ValueError, AttributeError, KeyError) as exc:
        # a model_config of the right types that no head is built from (heads that do not divide D, ...)
        raise CheckpointError(f"{path}: unusable checkpoint (model_config: {exc})") from None
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), ckpt


@torch.no_grad()
def score_features(model: nn.Module, feats: np.ndarray, device: str | torch.device = "cpu",
                   max_attention_elements: int = 1 << 27) -> np.ndarray:
    """Snippet scores (T,) of one video: every crop scored as its own sample, then combined by the
    model's :class:`ScoringRule` (crops averaged unless ``crop_reduce: max``; optional smoothing).

    ``feats``: (T, C, D) or (T, D). The model runs in eval mode on all T
    snippets (no resampling). Crops go through in groups small enough that the
    attention matrices stay under ``max_attention_elements`` entries.
    """
    x = as_snippet_crops(np.asarray(feats, dtype=np.float32))
    was_training = model.training
    model.eval()
    t, c, _ = x.shape
    primary = getattr(model, "primary", model)          # a pair: its LTGS head holds the attention
    heads = getattr(getattr(getattr(primary, "lt", None), "attn", None), "heads", 1)
    group = max(1, min(c, max_attention_elements // max(1, heads * t * t)))
    x_t = torch.from_numpy(np.array(x.transpose(1, 0, 2), order="C"))    # (C, T, D), a writable copy
    per_crop = [head_scores(model, x_t[start:start + group].to(device)).double().cpu()
                for start in range(0, c, group)]
    model.train(was_training)
    return video_scores(model, torch.cat(per_crop).numpy())


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
    scores = head_scores(model, torch.from_numpy(np.stack(rows)).to(device), torch.from_numpy(np.stack(mask)).to(device))
    model.train(was_training)
    scores = scores.double().cpu().numpy()
    owner = np.array(owner)
    return [video_scores(model, scores[owner == i][:, :v.shape[0]]) for i, v in enumerate(xs)]


# --- run folders ------------------------------------------------------------------------------
def resolve_run(path: str | Path) -> Path:
    """A run folder from a folder, a ``latest`` symlink, or a ``latest`` text file holding a path."""
    path = Path(path)
    if path.is_file() and path.suffix != ".pt":
        target = Path(read_text(path, error=CheckpointError, what="run pointer").strip())
        path = target if target.is_absolute() else path.parent / target
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder")
    return path.resolve()


def check_latest(run_dir: str | Path) -> Path:
    """``<runs>/latest`` for a run in ``run_dir``, refused (a CheckpointError) where it cannot point at the run:
    ``run_dir`` itself is named latest, or a real folder stands at that name (a run written there would
    be overwritten by the next pointer, or block it). Called before a run's folder is made."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    if link.is_dir() and not link.is_symlink():
        raise CheckpointError(f"{link} is a folder, not the pointer to the newest run that vadpipe keeps there; "
                              f"rename it (e.g. to {run_dir.parent / 'latest-run'}) and train again")
    if run_dir.name == LATEST:
        raise CheckpointError(f"--out {run_dir}: '{LATEST}' is the pointer to the newest run; choose another name")
    return link


def update_latest(run_dir: str | Path) -> Path:
    """Point ``<runs>/latest`` at ``run_dir`` (relative symlink; a text file where links fail); refused as
    :func:`check_latest` says."""
    run_dir = Path(run_dir)
    link = check_latest(run_dir)
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
