"""`vadpipe demo`: the whole pipeline on a generated world, offline.

synth → extract (i3d-inception, real Kinetics weights) → train the default head
(what ``vadpipe train`` uses), the article's LTGS and the RTFM-style and MIL
baselines → evaluate on the held-out clips (with the
untrained feature-norm baseline beside them) → score one test clip with a plot.
Every stage reuses the library function behind its own command; this module
only chains them and prints the comparison.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from . import atomic

# Demo sizes: world preset, feature preset and short side (None: the preset's), training iterations.
# Features are whole frames ("frame": no crop) because the events are small and anywhere in the view:
# a 112 centre crop of the 320x180 world left a linear probe at 0.55 frame AUC, the native-size whole
# frame at 0.76 (README, "What the demo shows"). "tiny" exists for the test suite.
SIZES: Dict[str, dict] = {
    "tiny": {"world": "tiny", "features": "frame", "short_side": 90, "iterations": 30, "batch": 3},
    "small": {"world": "small", "features": "frame", "short_side": 180, "iterations": 200, "batch": 8},
    "full": {"world": "full", "features": "frame", "short_side": None, "iterations": 3000, "batch": 16},
}
@dataclass
class DemoResult:
    out: Path
    metrics: Dict[str, dict] = field(default_factory=dict)     # model → eval metrics
    seconds: Dict[str, float] = field(default_factory=dict)    # stage → wall seconds
    outputs: Dict[str, str] = field(default_factory=dict)      # what → path
    failed: List[str] = field(default_factory=list)


def norm_scores(feature_set) -> Dict[str, np.ndarray]:
    """The no-training baseline: per-snippet L2 norm of the backbone feature (crops averaged)."""
    scores = {}
    for video in feature_set.videos:
        feats = np.asarray(video.raw(), dtype=np.float32)            # (T, C, D) or (T, D)
        scores[video.id] = np.linalg.norm(feats, axis=-1).reshape(feats.shape[0], -1).mean(axis=1)
    return scores


def _stage(name: str, echo: Callable[[str], None], result: DemoResult):
    class _Timer:
        def __enter__(self):
            echo(f"\n== {name} ==")
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            result.seconds[name] = round(time.perf_counter() - self.t0, 1)
            echo(f"   ({result.seconds[name]:.0f} s)")
            return False

    return _Timer()


def format_comparison(metrics: Dict[str, dict]) -> str:
    """Table: one row per model, frame AUC / AP, per-type AUC and the AUC inside anomalous clips
    (does the model find *when*, not only *which* clip?), in percent."""
    classes = sorted({c for m in metrics.values() for c in m.get("auc_per_class", {})})
    head = ["model", "AUC", "AP"] + classes + ["in-anomalous"]
    rows = [head]
    for name, m in metrics.items():
        per = m.get("auc_per_class", {})
        cells = [m.get("auc"), m.get("ap")] + [per.get(c) for c in classes] + [m.get("auc_anomalous_videos")]
        rows.append([name] + ["n/a" if v is None else f"{100 * v:.1f}" for v in cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


# Float sums split differently across CPU threads: the backbone's features differ in the 6th digit
# between 1 and 2 threads, and the heads trained on them differ in the table's first (README, "What
# the demo shows"). The whole demo (extraction, training, evaluation) runs on this many torch threads,
# so its table does not depend on the machine's core count (a CPU with another instruction set, or a GPU,
# can still move it).
DEMO_THREADS = 2


def run_demo(out: str | Path = "demo", size: str = "small", seed: int = 0, device: str = "auto",
             iterations: Optional[int] = None, workers: Optional[int] = None, progress: bool = True,
             echo: Callable[[str], None] = print) -> DemoResult:
    from .device import torch_threads

    with torch_threads(DEMO_THREADS):
        return _run_stages(Path(out), size, seed, device, iterations, workers, progress, echo)


def _run_stages(out: Path, size: str, seed: int, device: str, iterations: Optional[int],
                workers: Optional[int], progress: bool, echo: Callable[[str], None]) -> DemoResult:
    from .checkpoint import checkpoint_path
    from .config import head_names
    from .presets import preset, use_model
    from .data import open_features
    from .evaluate import evaluate_feature_scores, evaluate_run
    from .groundtruth import load_ground_truth
    from .extract import extract_folder
    from .score import ScoreOptions, run_score
    from .synth import generate_world, synth_config
    from .train import train

    if size not in SIZES:
        from .errors import ConfigError

        raise ConfigError(f"unknown demo size {size!r}; choose one of {', '.join(SIZES)}")
    spec = SIZES[size]
    result = DemoResult(out=out)
    world_dir, feat_dir, runs_dir = out / "world", out / "features", out / "runs"

    with _stage(f"1/5 synthetic world ({spec['world']})", echo, result):
        world = generate_world(world_dir, synth_config(spec["world"], seed=seed), workers=workers or 1,
                               progress=progress)
        echo("   " + world.line())

    with _stage("2/5 features (i3d-inception, Kinetics-400)", echo, result):
        for split in ("train", "test"):
            summary, _ = extract_folder(world_dir / split, feat_dir / split, backbone="i3d-inception",
                                        preset=spec["features"], short_side=spec["short_side"],
                                        device=device, workers=workers,
                                        progress=progress, log=lambda m: echo("   " + m))
            echo("   " + summary.format().replace("\n", "\n   "))
            if summary.failed:
                result.failed.append(f"extract {split}: {summary.failed} video(s) failed")

    test_gt = world.paths["test_gt"]
    runs: Dict[str, Path] = {}
    # "default" is what `vadpipe train` trains with no options (its own epoch schedule); ltgs (the
    # article's head, demo preset), rtfm and mil are every registered head at the demo's fixed size.
    for name in ("default",) + tuple(head_names()):
        with _stage(f"3/5 train {name}", echo, result):
            if name == "default":
                cfg = preset("default")
                if iterations:
                    cfg.train.epochs, cfg.train.iterations = 0.0, iterations
            else:
                cfg = use_model(preset("demo"), name)
                cfg.train.iterations = iterations or spec["iterations"]
                cfg.train.batch_anomalous = cfg.train.batch_normal = spec["batch"]
                cfg.train.eval_every = max(10, cfg.train.iterations // 4)
            cfg.train.features = str(feat_dir / "train")
            cfg.train.seed = seed
            cfg.train.device = device
            if (runs_dir / name).exists():   # the demo owns its runs: a re-run trains afresh
                shutil.rmtree(runs_dir / name)
            trained = train(cfg, out=runs_dir / name, progress=progress)
            runs[name] = trained.run_dir
            echo(f"   run: {trained.run_dir}  best: {json.dumps(trained.best_metrics, sort_keys=True)}")

    with _stage("4/5 evaluate on held-out clips", echo, result):
        for name, run in runs.items():
            evaluated, eval_dir = evaluate_run(run, feat_dir / "test", test_gt, device=device, progress=False)
            result.metrics[name] = evaluated.metrics
            result.outputs[f"eval {name}"] = str(eval_dir)
        test_set = open_features(feat_dir / "test", list_anomalous="none")
        baseline = norm_scores(test_set)
        gts = load_ground_truth(test_gt)
        result.metrics["feature-norm (untrained)"] = evaluate_feature_scores(baseline, test_set, gts).metrics
        echo(format_comparison(result.metrics))

    with _stage("5/5 score one test clip with a plot", echo, result):
        clip = _pick_clip(world_dir / "test")
        scores_dir = out / "scores"
        code = run_score([str(clip)], checkpoint=str(checkpoint_path(runs["default"])),
                         options=ScoreOptions(out_dir=scores_dir, plot=True, device=device, gt=Path(test_gt),
                                              progress=progress), echo=echo)
        if code:
            result.failed.append(f"score {clip}")
        result.outputs["scored clip"] = str(clip)
        result.outputs["plot"] = str(scores_dir / f"{clip.stem}.png")

    result.outputs.update({"world": str(world_dir), "features": str(feat_dir), "runs": str(runs_dir),
                           "scores": str(out / "scores"), "report": str(out / "demo.json")})
    atomic.write_json(out / "demo.json", {"size": size, "seed": seed, "threads": DEMO_THREADS,
                                          "metrics": result.metrics,
                                          "seconds": result.seconds, "outputs": result.outputs,
                                          "failed": result.failed})
    echo("\nOutputs:")
    for what, path in result.outputs.items():
        echo(f"  {what:<16} {path}")
    return result


def _pick_clip(test_dir: Path) -> Path:
    """The first test clip with a fight (the event type Kinetics features see best, see the README),
    else the first with any event, else any clip."""
    from .video import find_videos

    clips = find_videos(test_dir)
    for wanted in (lambda c: c.parent.name == "Fighting", lambda c: c.parent.name.lower() != "normal"):
        chosen = [c for c in clips if wanted(c)]
        if chosen:
            return chosen[0]
    return clips[0]
