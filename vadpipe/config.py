"""Typed configuration for the anomaly head and its training, with YAML load/save and validation.

A run's configuration is a :class:`Config` holding a :class:`ModelConfig` (the
network) and a :class:`TrainConfig` (data, optimisation, losses, dynamic
labels, validation). YAML files mirror it::

    preset: ucf-crime          # optional: start from a preset, then override
    model: {name: ltgs, heads: 16}
    train: {iterations: 5000, loss: {k: 3}}

Every reading that ../shared/docs/LTGS.md fixes is a field here, checked by
:func:`validate`. Each value takes its field's type through :mod:`vadpipe.config_values`, the one
typing that YAML files, checkpoints' stored configs and ``--set`` text share. The named presets, the
article's ablations, another head's own losses and ``--set`` overrides build on these fields in
:mod:`vadpipe.presets`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple

import yaml

from . import atomic
from .errors import ConfigError
from .config_values import field_value, seed_problem, shown
from .intervals import FRAME_MODES
from .readers import read_text

# how a calibration pools its normal videos' frame scores into a quantile (vadpipe/calibration.py)
POOLINGS = ("frames", "clips")
TERMS_FITS = ("train", "all")        # model.terms_fit


def head_names() -> Tuple[str, ...]:
    """The registered heads (``vadpipe.models``): the one list of names."""
    from .models import list_heads

    return list_heads()


@dataclass
class ModelConfig:
    """The head. LTGS fields are ignored by the baselines unless stated."""

    name: str = "ltgs"                 # ltgs | rtfm (RTFM-style baseline) | mil (Sultani MLP)
    feature_dim: int = 2048            # D; training sets it from the features
    # Local Temporal module
    use_lt: bool = True                # False = ablation "w/o LT" (identity instead of the encoder layer)
    heads: int = 16                    # 1 = ablation "LT-1Head"; must divide feature_dim
    ffn_dim: int = 2048
    lt_dropout: float = 0.1
    attn_dropout: Optional[float] = None   # dropout on the attention weights; None = lt_dropout (article: one
                                           # rate). 0 lets CPU attention use the fused kernel (tools/bench_train.py)
    h_reading: str = "reweight"        # reweight: softmax(QK^T/sqrt(dk) + log H); literal: softmax((QK^T*H)/sqrt(dk))
    decay: bool = True                 # False = ablation "No-Decay" (H = 1)
    # Global Spatial module
    gs: str = "full"                   # full | avg (ablation "GS->avg": g = mean_T F) | none (ablation "w/o GS")
    # Localisation switches (issue 12; the article's values are the defaults here, see preset "localise")
    gs_gate: bool = False              # scale g by a learned tanh gate that starts at 0 (video identity cannot
                                       # drown the segment term unless training asks for it)
    horizon: int = 0                   # 0: H spans the video (article); N > 0: H = cos(pi|i-j|/2N), 0 beyond N
    horizon_cap: int = 0               # C > 0: the window only in videos longer than C (of C if horizon is 0)
    horizon_floor: float = 0.0         # f in (0, 1): beyond the window H = f (attenuated), not 0 (cut)
    horizon_share: float = 0.0         # s in (0, 1): the window for that share of the heads, whole-video H for the rest
    context: int = 0                   # K > 0 (odd): each segment gets a learned mix of its K-1 neighbours first
                                       # (temporal convolution, zero at the start)
    stride_base: int = 0               # B > 0: the segment counts here (horizon, horizon_cap, context,
                                       # smooth_window, normal_context) are written for snippets every B frames;
                                       # training on another --stride S rescales them by B/S, so each spans the
                                       # same time, and records the result with B = S (0: as written)
    crop_reduce: str = "mean"          # how crops' snippet scores combine at test time: mean | max | auto
                                       # (auto, resolved at training: max for region features, else mean)
    smooth_window: int = 1             # test-time moving average of snippet scores (odd; 1 = none)
    smooth_share: float = 0.0          # > 0: that window is at least this share of the video's snippets
                                       # (odd, 1 + 2 round(share T / 2)), as k_share sizes top-k
    frame_scores: str = "hold"         # snippet scores to frame scores: hold (article) | linear (between snippet
                                       # centres; intervals.snippets_to_frames)
    score_levels: str = "raw"          # raw: the fused score (article) | calibrated: mapped after training so that
                                       # the auto threshold reads 0.5 and a typical held-out normal frame 0.01
                                       # (models/levels.py; strictly monotone)
    pseudo_weight: float = 0.0         # > 0: a second stage fitted after training on the head's own pseudo-labels
    pseudo_share: float = 0.3          # (models/pseudo_stage.py): top/bottom share of each anomalous video's
    pseudo_c: float = 1.0              # snippets labelled 1/0; inverse L2 strength of its logistic regression
    pseudo_unit: str = "train"         # the stage's unit: the fused logits' sd on the normal training snippets
                                       # (train) | on the held-out normal videos calibration uses (held-out)
    terms_fit: str = "train"           # the videos those fitted terms (normal statistics, pseudo-label stage)
                                       # see: the head's training split (train) | all: the held-out normal
                                       # training videos too, the threshold and score levels then set on them
                                       # cross-fitted (vadpipe/calibration.py, crossfit_scores; members on
                                       # disjoint folds: each its own fold, crossfit_out_of_bag)
    normal_weight: float = 0.0         # > 0: fuse the head's score with the distance to the normal training
                                       # features (models/normal_stats.py), fitted after training
    normal_shrinkage: float = 0.5      # covariance shrinkage toward a scaled identity for that distance
    normal_features: str = "raw"       # what that distance sees: raw | l2 (direction only: unit-length
                                       # features, blind to a change of the whole vector's magnitude)
    normal_standardise: str = "fit"    # the distance's mean and sd for its z: of the snippets the Gaussian was
                                       # fitted on (fit) | of each normal video fitted without it (held-out:
                                       # 5 folds by video), the distances new normal video gives
    normal_context: int = 1            # K > 1 (odd): that distance sees each segment with its K-1 neighbours,
    normal_rank: int = 256             # each projected on this many principal directions of the normals
    normal_layer: str = ""             # features stored with layers (vadpipe extract --layers): the layer that
                                       # distance sees ("" or a layer not stored: the head's, the last stored)
    head_span: Tuple[int, int] = (0, 0)     # set by training from the features' layers: where the head's and
    normal_span: Tuple[int, int] = (0, 0)   # the normal statistics' inputs lie in D ((0, 0): all of D)
    members: int = 1                   # N > 1: N heads trained side by side (own init, own batches), their
                                       # logits averaged (models/ensemble.py)
    bagging: bool = False              # with members: each member holds out its own normal videos (a share
                                       # train.val_fraction, drawn with its own seed) and fits its own normal
                                       # statistics; the threshold is calibrated out of bag
    bag_folds: bool = False            # with bagging: the members' held-out shares are disjoint folds that
                                       # cover the held-out classes (every normal video held out by exactly
                                       # one member, 1/members of them each), so all of them calibrate out
                                       # of bag; train.val_fraction is not read
    partner: str = ""                  # a second head of another kind trained beside this one with its own
                                       # losses (vadpipe.presets.PARTNERS: rtfm, rtfm-real), their logits standardised
                                       # and averaged (models/pair.py, vadpipe/pair_training.py); "": none
    # Classifier (all heads): D -> hidden... -> 1, ReLU + dropout after each hidden layer, sigmoid
    hidden: Tuple[int, ...] = (512, 128)
    dropout: float = 0.7

    @property
    def head_dim(self) -> int:
        """The D the head itself sees: its span's width, or all of ``feature_dim``."""
        return span_width(self.head_span) or self.feature_dim

    @property
    def normal_dim(self) -> int:
        return span_width(self.normal_span) or self.feature_dim


def check_head_width(m: ModelConfig) -> None:
    """LTGS's attention heads split the D its head sees: refused in one line when they cannot."""
    if m.name == "ltgs" and m.use_lt and m.head_dim % m.heads:
        raise ConfigError(f"model.heads = {m.heads} does not divide the head's D = {m.head_dim}")


def span_width(span: Tuple[int, int]) -> int:
    """Width of a (start, stop) slice of the features; 0 for (0, 0), "all of them"."""
    return span[1] - span[0]


@dataclass
class LossConfig:
    """Loss terms, each with its own weight (0 disables a term)."""

    k: int = 3                         # top-k (LTGS.md: §4.2 k = 3; §3.4 says 8)
    topk_by: str = "magnitude"         # segments chosen by representation L2 norm (RTFM) or by score; distance:
                                       # by the feature's distance to the normal training snippets; fused: by
    prior_weight: float = 1.0          # logit(score) + prior_weight * that (standardised) distance
    margin: float = 100.0              # feature-magnitude margin epsilon
    w_mag: float = 1e-4                # feature-magnitude loss (|eps - G(F_a)| + G(F_n))^2
    w_cls: float = 1.0                 # classifier BCE
    cls_target: str = "dynamic"        # dynamic: BCE(yhat[top-k], ytilde[top-k]); video-mean: BCE(mean yhat[top-k], Y) (RTFM)
    w_rank: float = 1.0                # ranking hinge max(0, 1 - (max yhat_a - max yhat_n))
    w_sparse: float = 8e-4             # lambda1, mean yhat on anomalous videos
    w_smooth: float = 2e-5             # lambda2, mean |yhat_t - yhat_t+1|
    smooth_on: str = "anomalous"       # anomalous | all (which videos the smoothness term covers)
    reg_form: str = "mean"             # sparsity/smoothness forms: mean (LTGS.md) | rtfm (L2 norm of the scores,
                                       # sum of squared differences over the batch) | sultani (each video's sums)
    topk_keep: float = 1.0             # < 1: the top-k drawn each step from a random share of the segments (RTFM: 0.3)
    topk_keep_k: str = "video"         # with topk_keep < 1 and k_share: k a share of the video's real length
                                       # (video) or of the segments the draw keeps (kept: k_share * topk_keep * T)
    k_share: float = 0.0               # > 0: k = max(1, ceil(k_share * T)) from each video's real length T
    k_upto: float = 0.0                # > 0: a row's k grows from there to its top candidates scoring >= k_level,
    k_level: float = 0.5               # at most ceil(k_upto * T): k follows the event's length as the head reads it
    w_normal: float = 0.0              # BCE pulling EVERY segment of normal videos to 0 (not only the top-k)
    w_bottom: float = 0.0              # BCE pulling the lowest-scoring bottom_share of each anomalous video's
    bottom_share: float = 0.2          # segments to 0 (max(1, floor(share T)) of its real length), from
    bottom_after: float = 0.0          # this share of the planned iterations on (0: from the start)
    bottom_by: str = "score"           # score | distance: those segments lowest by the head's score or by their
                                       # distance to the normal training snippets (as topk_by distance)
    label_smoothing: float = 0.0       # BCE targets eps/2 and 1 - eps/2: bounded logits, no ties at 0 or 1


@dataclass
class TrainConfig:
    features: str = "features"         # feature folder (manifest.jsonl + recipe.json) or an RTFM list file
    list_anomalous: str = "auto"       # RTFM lists: auto | name | first:N | last:N (see vadpipe.data)
    segments: int = 32                 # training bag length ("embedding length 32")
    bags: str = "resample"             # resample: every video as `segments` averaged chunks (article);
                                       # real: each video's own snippets, padded and masked per batch
    max_segments: int = 256            # bags "real": a longer video trains on a random window this long
    batch_anomalous: int = 32          # videos a batch; clamped to what the training split holds
    batch_normal: int = 32
    crops: str = "all"                 # all: every crop its own sample (RTFM); random: one random crop per video;
                                       # max: all crops of a video, its segment score = the max over crops
                                       # (region features: the event is in some region; needs bags real);
                                       # auto: max for region features, random otherwise
    iterations: int = 30000            # with epochs > 0: the cap
    epochs: float = 0.0                # > 0: iterations = epochs passes over the anomalous training videos
                                       # (at least min_iterations, at most iterations): the data sets the length
    min_iterations: int = 100
    lr: float = 1e-3                   # LTGS.md: §4.2 1e-3, §5.1 1e-4
    weight_decay: float = 5e-3
    # dynamic labels (Algorithm 1)
    dynamic: str = "soft"              # soft | hard (ablation "Hard-Update") | off (ablation "w/o Dyn")
    alpha: float = 0.9
    beta: int = 500                    # warm-up length and update period, in iterations
    loss: LossConfig = field(default_factory=LossConfig)
    # validation, model selection, calibration
    eval_every: int = 500
    log_every: int = 10
    checkpoint_minutes: float = 5.0    # last.pt also this often (and every eval_every), so a kill loses little
    val_fraction: float = 0.1          # stratified share of the training videos held out
    val_max: int = 0                   # at most this many videos of a class held out (0: no cap), so that a
                                       # large set gives its videos back to training
    holdout: str = "both"              # both: normal and anomalous videos held out (validation + calibration);
                                       # normal: normal ones only (calibration; every anomalous video trains)
    holdout_pick: str = "random"       # random: the held-out normal videos drawn with the seed; typical: the
                                       # least novel ones (vadpipe/novelty.py), so unusual normal videos train;
                                       # one head only (bagged members draw a share each: random, logged)
    val_features: Optional[str] = None  # an external validation set (needs val_gt)
    val_gt: Optional[str] = None       # frame-level gt for the held-out share or for val_features
    val_is_test: bool = False          # val_features/val_gt is the test set (recorded in the checkpoint)
    select: str = "best"               # best: checkpoint with the best validation metric; last: the last one
                                       # (a validation share of a few videos is noise; it still calibrates)
    calibration_quantiles: Tuple[float, ...] = (0.95, 0.99, 0.999)
    calibration_pooling: str = "frames"   # frames: quantiles of all normal frames together; clips: the median
                                          # over clips of each clip's quantile (vadpipe/calibration.py)
    # execution
    seed: int = 0
    device: str = "auto"
    amp: bool = True                   # bf16 autocast on CUDA only
    tensorboard: bool = False          # also log to <run>/tb when tensorboard is installed
    ablations: Tuple[str, ...] = ()    # names applied (a record; the fields above carry the effect)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --- segment counts at another stride ------------------------------------------------
def at_stride(m: ModelConfig, stride: int) -> ModelConfig:
    """``m`` with its segment counts rescaled from ``m.stride_base`` to features with a snippet every
    ``stride`` frames, so that each spans the same time (a window of 5 segments at stride 16 is 10 at
    stride 8), and ``stride_base`` set to ``stride``: applying it again changes nothing. Shares
    (``smooth_share``, ``k_share``) already follow the video's length; ``train.max_segments`` is a
    compute bound and stays. ``stride_base`` 0 leaves ``m`` as written."""
    if not m.stride_base or m.stride_base == stride:
        return m
    scale = m.stride_base / stride

    def count(n: int) -> int:              # 0 stays off; a count never falls to 0
        return max(1, int(n * scale + 0.5)) if n else 0

    def odd(k: int) -> int:                # a centred window keeps its centre: its reach is rescaled
        return 1 + 2 * int((k - 1) / 2 * scale + 0.5) if k > 1 else k

    return dataclasses.replace(m, horizon=count(m.horizon), horizon_cap=count(m.horizon_cap),
                               context=odd(m.context), smooth_window=odd(m.smooth_window),
                               normal_context=odd(m.normal_context), stride_base=stride)


def exact_iterations(t: TrainConfig, iterations: int) -> None:
    """``--iters N``, for a new run or a resumed one alike: exactly N iterations, replacing an epoch schedule
    (not a cap on it)."""
    t.iterations, t.epochs = iterations, 0.0


# --- dict / YAML ------------------------------------------------------------------
def copy_config(cfg: Config) -> Config:
    return config_from_dict(config_to_dict(cfg))


def config_to_dict(cfg: Any) -> dict:
    """Plain dict (lists for tuples) of a dataclass config."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(cfg)


def _from_dict(cls, data: Any, where: str):
    """``cls`` from a complete dict, every field typed by :func:`vadpipe.config_values.field_value`; ``where`` (e.g.
    ``config.yaml: train``) opens each one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value, f"{where}.{key}")
            continue
        try:
            kwargs[key] = field_value(hint, value)
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
    return cls(**kwargs)


def model_config_from_dict(data: dict, where: str = "model_config") -> ModelConfig:
    """A ModelConfig from a (possibly partial) dict: missing fields take their defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {shown(data)}")
    return _from_dict(ModelConfig, {**config_to_dict(ModelConfig()), **data}, where)


def train_config_from_dict(data: dict, where: str = "train_config") -> TrainConfig:
    """A TrainConfig from a (possibly partial) dict: missing fields take their defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {shown(data)}")
    loss = data.get("loss")
    if loss is not None and not isinstance(loss, dict):
        raise ConfigError(f"{where}.loss: expected a mapping, got {shown(loss)}")
    merged = {**config_to_dict(TrainConfig()), **data}
    merged["loss"] = {**config_to_dict(LossConfig()), **(loss or {})}
    return _from_dict(TrainConfig, merged, where)


def config_from_dict(data: dict, where: str = "config") -> Config:
    """Build a Config from a dict; a ``preset`` key starts from that preset."""
    cfg = _config_of(data, where)
    validate(cfg)
    return cfg


def _config_of(data: Any, where: str) -> Config:
    """The Config ``data`` describes, typed but not yet validated; errors open with ``where``."""
    from .presets import preset   # presets build on this module's Config: imported here, not at the top

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping (preset, model, train), got {shown(data)}")
    data = dict(data)
    try:
        base = preset(data.pop("preset")) if "preset" in data else Config()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    merged = config_to_dict(base)
    for section in ("model", "train"):
        over = data.pop(section, None)
        over = dict(over) if isinstance(over, dict) else {} if over is None else over
        if not isinstance(over, dict):
            raise ConfigError(f"{where}: {section}: expected a mapping, got {shown(over)}")
        if section == "train" and "loss" in over:
            loss = over.pop("loss")
            if loss is not None and not isinstance(loss, dict):
                raise ConfigError(f"{where}: train.loss: expected a mapping, got {shown(loss)}")
            merged["train"]["loss"].update(loss or {})
        merged[section].update(over)
    if data:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, data)))} "
                          "(expected preset, model, train)")
    return Config(model=_from_dict(ModelConfig, merged["model"], f"{where}: model"),
                  train=_from_dict(TrainConfig, merged["train"], f"{where}: train"))


def load_config(path: str | Path) -> Config:
    """The Config a YAML file describes; every failure one ConfigError naming the file and the field."""
    path = Path(path)
    text = read_text(path, error=ConfigError, what="config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    cfg = _config_of(data, str(path))
    try:
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    atomic.write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def validate(cfg: Config) -> None:
    """Reject values that cannot work, naming the field."""
    from .models.losses import REG_FORMS

    m, t, loss = cfg.model, cfg.train, cfg.train.loss
    choices = [
        ("model.name", m.name, head_names()),
        ("model.h_reading", m.h_reading, ("reweight", "literal")),
        ("model.gs", m.gs, ("full", "avg", "none")),
        ("train.crops", t.crops, ("all", "random", "max", "auto")),
        ("train.dynamic", t.dynamic, ("soft", "hard", "off")),
        ("train.loss.topk_by", loss.topk_by, ("magnitude", "score", "distance", "fused")),
        ("train.loss.cls_target", loss.cls_target, ("dynamic", "video-mean")),
        ("train.loss.bottom_by", loss.bottom_by, ("score", "distance")),
        ("train.loss.smooth_on", loss.smooth_on, ("anomalous", "all")),
        ("train.loss.reg_form", loss.reg_form, REG_FORMS),
        ("train.bags", t.bags, ("resample", "real")),
        ("model.crop_reduce", m.crop_reduce, ("mean", "max", "auto")),
    ]
    for name, value, allowed in choices:
        if value not in allowed:
            raise ConfigError(f"{name} = {value!r}; choose one of {', '.join(allowed)}")
    positive = [("model.feature_dim", m.feature_dim), ("model.heads", m.heads), ("model.ffn_dim", m.ffn_dim),
                ("train.segments", t.segments), ("train.batch_anomalous", t.batch_anomalous),
                ("train.batch_normal", t.batch_normal), ("train.eval_every", t.eval_every),
                ("train.log_every", t.log_every), ("train.beta", t.beta), ("train.loss.k", loss.k),
                ("train.max_segments", t.max_segments), ("model.smooth_window", m.smooth_window),
                ("model.members", m.members)]
    for name, value in positive:
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    check_head_width(m)
    for name, (start, stop) in (("model.head_span", m.head_span), ("model.normal_span", m.normal_span)):
        if (start, stop) != (0, 0) and not 0 <= start < stop <= m.feature_dim:
            raise ConfigError(f"{name} = ({start}, {stop}) does not lie within the features' D = {m.feature_dim}")
    if t.holdout not in ("both", "normal"):
        raise ConfigError(f"train.holdout must be 'both' or 'normal', got {t.holdout!r}")
    if t.holdout_pick not in ("random", "typical"):
        raise ConfigError(f"train.holdout_pick must be 'random' or 'typical', got {t.holdout_pick!r}")
    if t.select not in ("best", "last"):
        raise ConfigError(f"train.select must be 'best' or 'last', got {t.select!r}")
    if not 0.0 <= t.val_fraction < 1.0:
        raise ConfigError(f"train.val_fraction must be in [0, 1), got {t.val_fraction}")
    if not isinstance(t.val_max, int) or t.val_max < 0:
        raise ConfigError(f"train.val_max must be an integer >= 0 (0: no cap), got {t.val_max!r}")
    if not 0.0 <= t.alpha <= 1.0:
        raise ConfigError(f"train.alpha must be in [0, 1], got {t.alpha}")
    if m.name == "mil" and (loss.w_mag > 0 or loss.topk_by == "magnitude" and loss.w_cls > 0):
        raise ConfigError("model mil has no segment representation: set train.loss.w_mag = 0 and "
                          "train.loss.topk_by = score")
    if t.val_features and not t.val_gt:
        raise ConfigError("train.val_features needs train.val_gt (frame-level ground truth)")
    if t.iterations < 0:
        raise ConfigError(f"train.iterations must be >= 0, got {t.iterations}")
    if (why := seed_problem(t.seed)) is not None:
        raise ConfigError(f"train.seed {why}")
    from .rtfm_lists import list_rule

    list_rule(t.list_anomalous)
    if t.bags == "real" and t.dynamic != "off":
        raise ConfigError("train.bags = real trains on variable-length videos, which the dynamic label table "
                          "(one row of `segments` per video) does not cover: set train.dynamic = off")
    if m.normal_weight < 0 or not 0.0 < m.normal_shrinkage <= 1.0:
        raise ConfigError("model.normal_weight must be >= 0 and model.normal_shrinkage in (0, 1]")
    from .models.normal_stats import FEATURE_FORMS, STANDARDISE

    if m.normal_features not in FEATURE_FORMS:
        raise ConfigError(f"model.normal_features must be one of {', '.join(FEATURE_FORMS)}, "
                          f"got {m.normal_features!r}")
    if m.normal_standardise not in STANDARDISE:
        raise ConfigError(f"model.normal_standardise must be one of {', '.join(STANDARDISE)}, "
                          f"got {m.normal_standardise!r}")
    if m.normal_context < 1 or m.normal_context % 2 == 0 or m.normal_rank < 1:
        raise ConfigError(f"model.normal_context must be odd and >= 1 (a centred window) and model.normal_rank "
                          f">= 1, got {m.normal_context} and {m.normal_rank}")
    if t.crops == "max" and t.bags != "real":
        raise ConfigError("train.crops = max needs train.bags = real")
    if m.attn_dropout is not None and not 0.0 <= m.attn_dropout < 1.0:
        raise ConfigError(f"model.attn_dropout must be in [0, 1) or none, got {m.attn_dropout}")
    if m.pseudo_weight < 0 or not 0.0 < m.pseudo_share <= 0.5 or m.pseudo_c <= 0:
        raise ConfigError("model.pseudo_weight must be >= 0, model.pseudo_share in (0, 0.5] and model.pseudo_c > 0")
    from .models.pseudo_stage import UNITS

    if m.pseudo_unit not in UNITS:
        raise ConfigError(f"model.pseudo_unit must be one of {', '.join(UNITS)}, got {m.pseudo_unit!r}")
    if m.pseudo_unit == "held-out" and m.bagging:
        raise ConfigError("model.pseudo_unit = held-out with model.bagging: each member holds out its own normal "
                          "videos, and a stage's unit from them is not built; use pseudo_unit = train")
    if m.terms_fit not in TERMS_FITS:
        raise ConfigError(f"model.terms_fit must be one of {', '.join(TERMS_FITS)}, got {m.terms_fit!r}")
    from .models.levels import SCORE_LEVELS

    if m.score_levels not in SCORE_LEVELS:
        raise ConfigError(f"model.score_levels must be one of {', '.join(SCORE_LEVELS)}, got {m.score_levels!r}")
    if m.frame_scores not in FRAME_MODES:
        raise ConfigError(f"model.frame_scores must be one of {', '.join(FRAME_MODES)}, got {m.frame_scores!r}")
    if m.smooth_window % 2 == 0:
        raise ConfigError(f"model.smooth_window must be odd (a centred window), got {m.smooth_window}")
    if not 0.0 <= m.smooth_share < 1.0:
        raise ConfigError(f"model.smooth_share must lie in [0, 1), got {m.smooth_share}")
    if m.bagging and (m.members < 2 or (t.val_fraction <= 0 and not m.bag_folds) or t.val_features):
        raise ConfigError("model.bagging needs model.members >= 2 and a held-out share (train.val_fraction > 0 "
                          "or model.bag_folds, no train.val_features)")
    from .models.losses import needs_prior

    if m.bagging and needs_prior(loss):
        raise ConfigError(f"model.bagging with train.loss.topk_by = {loss.topk_by} / bottom_by = {loss.bottom_by}: "
                          "the distance prior is fitted on every normal training video, those a member holds "
                          "out to calibrate on included; not built per member (use topk_by score)")
    if m.bag_folds and not m.bagging:
        raise ConfigError("model.bag_folds divides the held-out videos among bagged members: it needs "
                          "model.bagging = true (and model.members >= 2)")
    from .presets import PARTNERS

    if m.partner and m.partner not in PARTNERS:
        raise ConfigError(f"model.partner = {m.partner!r}; choose one of {', '.join(PARTNERS)} (or '' for none)")
    if m.partner and m.bagging:
        raise ConfigError("model.partner needs one held-out share for both heads: not with model.bagging")
    if m.context < 0 or m.context % 2 == 0 and m.context:
        raise ConfigError(f"model.context must be 0 (off) or an odd kernel size, got {m.context}")
    if min(m.horizon, m.horizon_cap, m.stride_base, t.epochs, t.min_iterations) < 0:
        raise ConfigError("model.horizon, model.horizon_cap, model.stride_base, train.epochs and "
                          "train.min_iterations must be >= 0")
    if not 0.0 <= m.horizon_floor < 1.0:
        raise ConfigError(f"model.horizon_floor must lie in [0, 1), got {m.horizon_floor}")
    if not 0.0 <= m.horizon_share < 1.0:
        raise ConfigError(f"model.horizon_share must lie in [0, 1), got {m.horizon_share}")
    if m.horizon_share and not (m.horizon or m.horizon_cap):
        raise ConfigError(f"model.horizon_share={m.horizon_share} needs a window (model.horizon or "
                          "model.horizon_cap > 0): it shares the heads between a window and the whole video")
    if m.horizon_floor and not (m.horizon or m.horizon_cap):
        raise ConfigError(f"model.horizon_floor={m.horizon_floor} needs a window (model.horizon or model.horizon_cap "
                          "> 0): without one H already spans the whole video and the floor would do nothing")
    if not 0.0 <= loss.k_share <= 1.0 or not 0.0 <= loss.label_smoothing < 1.0 or loss.w_normal < 0:
        raise ConfigError("train.loss.k_share must lie in [0, 1], label_smoothing in [0, 1), w_normal >= 0")
    if not 0.0 <= loss.k_upto <= 1.0 or not 0.0 < loss.k_level < 1.0:
        raise ConfigError(f"train.loss.k_upto must lie in [0, 1] and k_level in (0, 1), got {loss.k_upto} "
                          f"and {loss.k_level}")
    if not 0.0 < loss.topk_keep <= 1.0:
        raise ConfigError(f"train.loss.topk_keep must lie in (0, 1], got {loss.topk_keep}")
    if loss.topk_keep_k not in ("video", "kept"):
        raise ConfigError(f"train.loss.topk_keep_k must be video or kept, got {loss.topk_keep_k!r}")
    if loss.prior_weight < 0:
        raise ConfigError(f"train.loss.prior_weight must be >= 0, got {loss.prior_weight}")
    if loss.w_bottom < 0 or not 0.0 < loss.bottom_share < 1.0 or not 0.0 <= loss.bottom_after < 1.0:
        raise ConfigError("train.loss.w_bottom must be >= 0, train.loss.bottom_share in (0, 1) and "
                          "train.loss.bottom_after in [0, 1)")
    if any(not 0.0 < q < 1.0 for q in t.calibration_quantiles):
        raise ConfigError(f"train.calibration_quantiles must lie in (0, 1): {t.calibration_quantiles}")
    if t.calibration_pooling not in POOLINGS:
        raise ConfigError(f"train.calibration_pooling={t.calibration_pooling!r}: choose one of {', '.join(POOLINGS)}")
    validate_ranges(cfg)


def non_finite(obj, prefix: str) -> Optional[str]:
    """The first field under a config dataclass that holds NaN or an infinity (tuples' items too), or None."""
    for f in dataclasses.fields(obj):
        value, name = getattr(obj, f.name), f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            found = non_finite(value, name)
            if found:
                return found
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                return f"{name} = {value!r}"
    return None


def validate_ranges(cfg: Config) -> None:
    """Numbers a run cannot use: NaN or infinite anywhere, and the optimiser's, dropouts' and losses'
    ranges (each would otherwise surface mid-run as torch's traceback, or train nothing without a word)."""
    m, t, loss = cfg.model, cfg.train, cfg.train.loss
    for part, prefix in ((m, "model"), (t, "train")):
        if (found := non_finite(part, prefix)) is not None:
            raise ConfigError(f"{found}: every number must be finite")
    if not t.lr > 0 or t.weight_decay < 0:
        raise ConfigError(f"train.lr must be > 0 and train.weight_decay >= 0, got {t.lr} and {t.weight_decay}")
    for name, value in (("model.dropout", m.dropout), ("model.lt_dropout", m.lt_dropout)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must lie in [0, 1), got {value}")
    weights = {f"train.loss.{k}": getattr(loss, k) for k in ("w_mag", "w_cls", "w_rank", "w_sparse", "w_smooth",
                                                             "margin")}
    for name, value in weights.items():
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    if t.checkpoint_minutes < 0:
        raise ConfigError(f"train.checkpoint_minutes must be >= 0 (0: after every iteration), got "
                          f"{t.checkpoint_minutes}")
    if not m.hidden or any(not isinstance(h, int) or h < 1 for h in m.hidden):
        raise ConfigError(f"model.hidden must be one or more positive integers (the scorer's layer widths), "
                          f"got {m.hidden!r}")
    from .threshold import DEFAULT_QUANTILE, same_quantile

    if not any(same_quantile(q, DEFAULT_QUANTILE) for q in t.calibration_quantiles):
        raise ConfigError(f"train.calibration_quantiles = {t.calibration_quantiles!r} must include "
                          f"{DEFAULT_QUANTILE}: the auto threshold of score, watch and eval, which the score levels "
                          f"are set on")
