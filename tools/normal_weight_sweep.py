"""How much does the normal-statistics term help a trained run? Re-scores one run's checkpoint on a
benchmark of tools/bench_accuracy.py with the term's weight changed (0 = the head alone), with
``--forms`` the term refitted on other feature forms (raw | l2: models/normal_stats.py), and with
``--frame-scores`` the snippet-to-frame mapping changed (hold | linear: intervals.snippets_to_frames), with
``--smooth-windows`` the test-time moving average of snippet scores changed (``model.smooth_window``);
``--pseudo-weight W`` adds the pseudo-label stage (models/pseudo_stage.py) with weight W, fitted on the
run's own training split as training would fit it (it is fitted after training: the head is the same).

A diagnostic of one trained head, not a way to choose the weight: it reads test labels. The
false-alarm column is left out because the run's threshold was calibrated for its own weight. A
refit uses the run's own normal training videos (the split recorded in its last.pt), as training does.

    python tools/normal_weight_sweep.py RUN --bench features --weights 0.5 0.25 0
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --forms raw l2
    python tools/normal_weight_sweep.py RUN --bench demo --weights 0.5 --frame-scores hold linear
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --smooth-windows 1 3 5
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
from pathlib import Path

import bench_accuracy
from bench_accuracy import BENCHES, evaluate_model


def training_split(run: Path, bench) -> list:
    """The run's training videos (the split its last.pt records), opened as training opened them."""
    from vadpipe.checkpoint import Checkpoint
    from vadpipe.data import open_features

    last = Checkpoint.load(run if run.is_dir() else run.parent, "last").last or {}
    train_ids = set((last.get("split") or {}).get("train") or [])
    if not train_ids:
        raise SystemExit(f"{run}: its last.pt records no training split; cannot refit")
    return [v for v in open_features(bench.train).videos if v.id in train_ids]   # list files: labels by name


def refit(model, ckpt, run: Path, bench, form: str) -> None:
    """Fit the run's normal statistics again on its normal training videos, on feature form ``form``."""
    import torch

    from vadpipe.calibration import fit_normal_stats

    normal = [v for v in training_split(run, bench) if v.label == 0]
    model.normal_stats.features = form
    fit_normal_stats(model, normal, ckpt.train_config.seed if ckpt.train_config else 0, torch.device("cpu"),
                     log=lambda msg: None)
    model.eval()


def add_pseudo_stage(model, ckpt, run: Path, bench, weight: float) -> None:
    """Give the run's head a pseudo-label stage of ``weight`` fitted on its training split."""
    import torch

    from vadpipe.calibration import fit_pseudo_stage
    from vadpipe.models.pseudo_stage import PseudoStage

    m = ckpt.model_config
    model.pseudo_stage = PseudoStage(m.feature_dim, weight, m.pseudo_share, m.pseudo_c)
    fit_pseudo_stage(model, training_split(run, bench), ckpt.train_config.seed if ckpt.train_config else 0,
                     torch.device("cpu"), log=print)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder or checkpoint trained on the benchmark's features")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.25, 0.0])
    parser.add_argument("--forms", nargs="+", choices=["raw", "l2"], default=None,
                        help="refit the statistics on these feature forms (default: the run's own, as fitted)")
    parser.add_argument("--frame-scores", nargs="+", choices=["hold", "linear"], default=None,
                        help="score frames with these snippet-to-frame mappings (default: the run's own)")
    parser.add_argument("--smooth-windows", nargs="+", type=int, default=None,
                        help="odd moving-average windows of snippet scores (default: the run's own)")
    parser.add_argument("--pseudo-weight", type=float, default=0.0,
                        help="> 0: add the pseudo-label stage with this weight, fitted on the run's training split")
    parser.add_argument("--cache", default=os.environ.get("VADPIPE_BENCH_CACHE",
                                                          str(Path.home() / ".cache" / "vadpipe" / "bench")))
    parser.add_argument("--ped1-short-side", type=int, default=bench_accuracy.PED1_SHORT_SIDE,
                        help="ped1: the features' short side, as tools/bench_accuracy.py --ped1-short-side")
    args = parser.parse_args()
    if any(w < 1 or w % 2 == 0 for w in args.smooth_windows or []):
        raise SystemExit("--smooth-windows: odd positive windows (a centred moving average)")
    bench_accuracy.PED1_SHORT_SIDE = args.ped1_short_side

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    model, ckpt = load_checkpoint(checkpoint_path(args.run), "cpu")
    stats = getattr(model, "normal_stats", None)
    if stats is None or not (stats.fitted or args.forms):
        raise SystemExit(f"{args.run}: this head has no fitted normal statistics (model.normal_weight 0; "
                         "--forms fits them)")
    fitted = stats.features if stats.fitted else None
    print(f"{args.run} on {args.bench}: trained with normal_weight {stats.weight:g}, statistics "
          f"{f'on {fitted} features' if fitted else 'not fitted'}; percent")
    for form in args.forms or [fitted]:
        if form != fitted:
            refit(model, ckpt, args.run, bench, form)
            fitted = form
        for weight in args.weights:
            model.normal_stats.weight = weight
            if args.pseudo_weight > 0:         # fitted on the fused scores of this weight, as training does
                add_pseudo_stage(model, ckpt, args.run, bench, args.pseudo_weight)
            for stage_on in ([False, True] if args.pseudo_weight > 0 else [False]):
                if args.pseudo_weight > 0:
                    model.pseudo_stage.scale[4] = float(stage_on)
                rule = model.scoring_rule
                for mode, window in itertools.product(args.frame_scores or [rule.frame_scores],
                                                      args.smooth_windows or [rule.smooth_window]):
                    model.scoring_rule = dataclasses.replace(rule, frame_scores=mode, smooth_window=window)
                    figures = evaluate_model(bench, model, ckpt)
                    shown = {k.replace("group_", ""): v for k, v in figures.items()
                             if k != "false_alarm_auto" and v is not None}
                    stage = f" pseudo {args.pseudo_weight:g}" if stage_on else ""
                    print(f"  {form:<4} weight {weight:<5g} frames {mode:<6} smooth {window}{stage} "
                          + ", ".join(f"{k} {100 * v:.1f}" for k, v in shown.items()), flush=True)
                model.scoring_rule = rule


if __name__ == "__main__":
    main()
