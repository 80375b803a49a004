"""How much does the normal-statistics term help a trained run? Re-scores one run's checkpoint on a
benchmark of tools/bench_accuracy.py with the term's weight changed (0 = the head alone), with
``--forms`` the term refitted on other feature forms (raw | l2: models/normal_stats.py), with
``--normal-contexts`` refitted on each segment with its neighbours (``model.normal_context``), with
``--shrinkages`` refitted with another covariance shrinkage (``model.normal_shrinkage``), with
``--standardise`` refitted with the distance standardised another way (``model.normal_standardise``), with
``--frame-scores`` the snippet-to-frame mapping changed (hold | linear: intervals.snippets_to_frames), with
``--smooth-windows`` the test-time moving average of snippet scores changed (``model.smooth_window``;
``--smooth-shares`` its width as a share of each video's length, ``model.smooth_share``);
``--pseudo-weight W`` adds the pseudo-label stage (models/pseudo_stage.py) with weight W, fitted on the
run's own training split as training would fit it (it is fitted after training: the head is the same);
``--stage-weights W ...`` re-weights the stage a run already carries (today's default fits one), unchanged
otherwise: no refit, so no split is needed. ``--stage-unit held-out`` puts a stage fitted by
``--pseudo-weight`` in the units of the fused logits' spread on the run's held-out normal videos (new video)
instead of on its training normals, which the head and the normal statistics have seen, as training does
with ``model.pseudo_unit held-out``; the spread is printed beside its training one.
A run that reports score levels (``model.score_levels`` calibrated, the default since 2026-12-06) has
them set again for every setting on its held-out normal videos, as training sets them (they map the
fused score, and frames are interpolated between levels).

Each fit's line says where the test split's normal snippets fall on the distance's standardised
scale (z = (d − μ_d) / σ_d; a z near 0 is what the standardisation promises for new normal video).

A diagnostic of one trained head, not a way to choose the weight: it reads test labels. The
false-alarm column is left out because the run's threshold was calibrated for its own weight, unless
``--recalibrate`` calibrates it again for each setting on the run's held-out normal videos. A
refit uses the run's own normal training videos (the split recorded in its last.pt), as training does.

    python tools/normal_weight_sweep.py RUN --bench features --weights 0.5 0.25 0
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --forms raw l2
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --normal-contexts 1 5 9
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --shrinkages 0.25 0.5 0.75 --recalibrate
    python tools/normal_weight_sweep.py RUN --bench demo --weights 0.5 --frame-scores hold linear
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --smooth-windows 1 3 5
    python tools/normal_weight_sweep.py RUN --bench features --weights 0.5 --smooth-shares 0 0.02 0.04
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --stage-weights 0 0.5 1 2
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 2 --standardise fit held-out --pseudo-weight 1
    python tools/normal_weight_sweep.py RUN --bench ped1 --weights 0.5 --standardise held-out --pseudo-weight 1 \
        --stage-unit held-out --recalibrate
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import bench_accuracy
from bench_accuracy import BENCHES, evaluate_model


def split_record(run: Path) -> dict:
    """The split the run's last.pt records (ids by part: train, val, members_val), {} when none."""
    from vadpipe.checkpoint import Checkpoint

    last = Checkpoint.load(run if run.is_dir() else run.parent, "last").last or {}
    return last.get("split") or {}


def training_split(run: Path, bench, part: str = "train") -> list:
    """The run's training videos, or with ``part="val"`` its held-out ones (the split its last.pt
    records), opened as training opened them."""
    from vadpipe.data import open_features

    ids = set(split_record(run).get(part) or [])
    if not ids:
        raise SystemExit(f"{run}: its last.pt records no {part} split")
    return [v for v in open_features(bench.train).videos if v.id in ids]   # list files: labels by name


def terms_split(run: Path, bench, ckpt) -> list:
    """The videos the run's fitted terms saw, in training's order (vadpipe.fitted_terms.terms_videos): its
    training split, and its held-out normal videos when its ``model.terms_fit`` is all."""
    from vadpipe.fitted_terms import terms_videos

    data, split = recorded_split(run, bench, "cannot tell the videos its terms saw")
    return terms_videos(data, split, ckpt.model_config.terms_fit == "all")


def recorded_split(run: Path, bench, why: str):
    """(training features, the run's split as positions in them: vadpipe.run_split.RunSplit)."""
    from vadpipe.data import open_features
    from vadpipe.run_split import RunSplit

    data = open_features(bench.train)
    record = split_record(run)
    if not record:
        raise SystemExit(f"{run}: its last.pt records no split; {why}")
    return data, RunSplit.from_record(data, record, f"{run}: {why}")


def recalibrated(model, ckpt, run: Path, bench):
    """A copy of ``ckpt`` whose threshold is calibrated again with the head's current scoring rule on
    the run's held-out normal videos, as training calibrates (cross-fitted when its terms saw them), so
    the false-alarm figure is the one a run trained with this rule would report: the rule is test-time
    only, the head is the same."""
    import copy

    import torch

    from vadpipe.calibration import HELD_OUT_NORMAL, calibrate_split, crossfit_seed_of
    from vadpipe.checkpoint import scoring_rule

    data, split = recorded_split(run, bench, "cannot calibrate again")
    t = ckpt.train_config
    out = copy.copy(ckpt)
    out.calibration = calibrate_split(model, data, split, None, None, t.calibration_quantiles,
                                      scoring_rule(model).frame_scores, torch.device("cpu"), t.calibration_pooling,
                                      crossfit_seed_of(ckpt.model_config, t))
    if not out.calibration["source"].startswith(HELD_OUT_NORMAL):
        raise SystemExit(f"{run}: no held-out normal video to calibrate on")
    model.eval()
    return out


def refit_levels(model, ckpt, run: Path, bench) -> None:
    """Set the run's score levels (``model.score_levels``) again for the head as it now scores, on the
    normal videos its threshold is calibrated on, as training does: levels map the fused score, so a
    changed term or scoring rule moves them (and frames are interpolated between levels)."""
    import torch

    from vadpipe.calibration import crossfit_seed_of, fit_score_levels
    from vadpipe.checkpoint import scoring_rule

    data, split = recorded_split(run, bench, "cannot set score levels")
    fit_score_levels(model, data, split, None, None, scoring_rule(model).frame_scores, torch.device("cpu"),
                     ckpt.train_config.calibration_pooling, lambda line: None,
                     crossfit_seed_of(ckpt.model_config, ckpt.train_config))
    model.eval()


def refit(model, ckpt, run: Path, bench, form: str, context: int, rank: int, shrinkage: float,
          standardise: str) -> None:
    """Fit the run's normal statistics again on the normal videos its terms saw (:func:`terms_split`), on
    feature form ``form`` with a context of ``context`` segments (each projected on ``rank`` principal
    directions), the covariance shrunk by ``shrinkage`` towards a scaled identity and the distance
    standardised as ``standardise`` says."""
    import torch

    from vadpipe.checkpoint import normal_stats_of
    from vadpipe.fitted_terms import fit_normal_stats

    normal = [v for v in terms_split(run, bench, ckpt) if v.label == 0]
    old = model.normal_stats
    model.normal_stats = normal_stats_of(dataclasses.replace(ckpt.model_config, normal_weight=old.weight,
                                                             normal_shrinkage=shrinkage, normal_features=form,
                                                             normal_context=context, normal_rank=rank,
                                                             normal_standardise=standardise))
    fit_normal_stats(model, normal, ckpt.train_config.seed if ckpt.train_config else 0, torch.device("cpu"),
                     log=lambda msg: None)
    model.eval()


def normal_z(stats, bench) -> str:
    """Mean and sd of the standardised distance z of the benchmark's normal test snippets (every crop)."""
    import torch

    from vadpipe.data import open_features
    from vadpipe.fitted_terms import crop_rows

    z = []
    for video in open_features(bench.test).videos:
        if video.label == 0:
            with torch.no_grad():
                d = stats.distance(crop_rows(video, torch.device("cpu")))
            z.append(((d - stats.scale[0]) / stats.scale[1]).flatten())
    z = torch.cat(z) if z else torch.zeros(1)
    return f"z of the normal test snippets {float(z.mean()):.2f} ± {float(z.std()):.2f}"


def stage_unit_on_held_out(model, run: Path, bench) -> str:
    """Put the model's fitted pseudo-label stage in the units of the run's held-out normal videos, as
    training does with ``model.pseudo_unit held-out``; says the unit on both."""
    import torch

    from vadpipe.fitted_terms import set_pseudo_stage_unit

    normal = [v for v in training_split(run, bench, "val") if v.label == 0]
    if not normal:
        raise SystemExit(f"{run}: no held-out normal video to take the stage's unit from")
    said = []
    set_pseudo_stage_unit(model, normal, torch.device("cpu"), log=said.append)
    model.eval()
    return said[0].replace("pseudo-label stage: ", "stage ")


def add_pseudo_stage(model, ckpt, run: Path, bench, weight: float) -> None:
    """Give the run's head a pseudo-label stage of ``weight`` fitted on the videos its terms saw."""
    import torch

    from vadpipe.checkpoint import pseudo_stage_of
    from vadpipe.fitted_terms import fit_pseudo_stage

    model.pseudo_stage = pseudo_stage_of(dataclasses.replace(ckpt.model_config, pseudo_weight=weight))
    fit_pseudo_stage(model, terms_split(run, bench, ckpt), ckpt.train_config.seed if ckpt.train_config else 0,
                     torch.device("cpu"), log=print)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder or checkpoint trained on the benchmark's features")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.25, 0.0])
    parser.add_argument("--forms", nargs="+", choices=["raw", "l2"], default=None,
                        help="refit the statistics on these feature forms (default: the run's own, as fitted)")
    parser.add_argument("--normal-contexts", nargs="+", type=int, default=None,
                        help="refit the statistics with these odd contexts in segments (default: the run's own)")
    parser.add_argument("--shrinkages", nargs="+", type=float, default=None,
                        help="refit the statistics with these covariance shrinkages in (0, 1] (default: the run's own)")
    parser.add_argument("--standardise", nargs="+", choices=["fit", "held-out"], default=None,
                        help="refit the statistics with the distance standardised these ways (default: the run's own)")
    parser.add_argument("--normal-rank", type=int, default=256,
                        help="principal directions per segment for a refit with a context > 1")
    parser.add_argument("--frame-scores", nargs="+", choices=["hold", "linear"], default=None,
                        help="score frames with these snippet-to-frame mappings (default: the run's own)")
    parser.add_argument("--smooth-windows", nargs="+", type=int, default=None,
                        help="odd moving-average windows of snippet scores (default: the run's own)")
    parser.add_argument("--smooth-shares", nargs="+", type=float, default=None,
                        help="moving-average widths as shares of each video's snippets (default: the run's own)")
    parser.add_argument("--recalibrate", action="store_true",
                        help="calibrate the threshold again for each setting on the run's held-out normal videos "
                             "and report false alarms at it (FA@auto)")
    parser.add_argument("--pseudo-weight", type=float, default=0.0,
                        help="> 0: add the pseudo-label stage with this weight, fitted on the run's training split")
    parser.add_argument("--stage-unit", choices=["train", "held-out"], default="train",
                        help="with --pseudo-weight: the stage's unit, the fused logits' spread on the training "
                             "normals or on the held-out normal videos (model.pseudo_unit)")
    parser.add_argument("--stage-weights", type=float, nargs="+", default=None,
                        help="re-weight the run's own fitted pseudo-label stage (no refit); 0 = the head alone")
    parser.add_argument("--cache", default=bench_accuracy.default_cache())
    parser.add_argument("--ped1-short-side", type=int, default=bench_accuracy.PED1_SHORT_SIDE,
                        help="ped1: the features' short side, as tools/bench_accuracy.py --ped1-short-side")
    parser.add_argument("--layers", default="", metavar="A,B",
                        help="the features' stored layers, as tools/bench_accuracy.py --layers")
    args = parser.parse_args()
    if any(w < 1 or w % 2 == 0 for w in args.smooth_windows or []):
        raise SystemExit("--smooth-windows: odd positive windows (a centred moving average)")
    if any(not 0.0 <= share < 1.0 for share in args.smooth_shares or []):
        raise SystemExit("--smooth-shares: shares in [0, 1)")
    if any(k < 1 or k % 2 == 0 for k in args.normal_contexts or []):
        raise SystemExit("--normal-contexts: odd positive contexts (centred windows of segments)")
    if any(not 0.0 < a <= 1.0 for a in args.shrinkages or []):
        raise SystemExit("--shrinkages: values in (0, 1]")
    if args.stage_unit == "held-out" and args.pseudo_weight <= 0:
        raise SystemExit("--stage-unit held-out rescales a stage fitted by --pseudo-weight: give one")
    if args.stage_weights and args.pseudo_weight > 0:
        raise SystemExit("--stage-weights re-weights the run's own stage; --pseudo-weight fits a new one: one of them")
    bench_accuracy.PED1_SHORT_SIDE, bench_accuracy.LAYERS = args.ped1_short_side, args.layers

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    model, ckpt = load_checkpoint(checkpoint_path(args.run), "cpu")
    stats = getattr(model, "normal_stats", None)
    if ckpt.model_config.bagging:
        raise SystemExit(f"{args.run}: a bagged ensemble (model.bagging) carries one set of normal statistics "
                         "per member; this sweep re-scores heads with one set")
    if stats is None or not (stats.fitted or args.forms):
        raise SystemExit(f"{args.run}: this head has no fitted normal statistics (model.normal_weight 0; "
                         "--forms fits them)")
    own_stage = getattr(model, "pseudo_stage", None)
    if args.stage_weights and not (own_stage is not None and own_stage.fitted):
        raise SystemExit(f"{args.run}: this head carries no fitted pseudo-label stage to re-weight "
                         "(model.pseudo_weight 0; --pseudo-weight fits one)")
    own = stats.standardise
    fitted = (stats.features, stats.context, stats.shrinkage, own) if stats.fitted else None
    described = (f"on {stats.features} features, context {stats.context}, shrinkage {stats.shrinkage:g}, "
                 f"standardised {own}" if fitted else "not fitted")
    print(f"{args.run} on {args.bench}: trained with normal_weight {stats.weight:g}, statistics {described}; percent")
    for form, context, shrinkage, standardise in itertools.product(
            args.forms or [stats.features], args.normal_contexts or [stats.context],
            args.shrinkages or [stats.shrinkage], args.standardise or [own]):
        if (form, context, shrinkage, standardise) != fitted:
            refit(model, ckpt, args.run, bench, form, context, args.normal_rank, shrinkage, standardise)
            fitted = (form, context, shrinkage, standardise)
        print(f"  {form} context {context} shrinkage {shrinkage:g} standardised {standardise}: "
              f"{normal_z(model.normal_stats, bench)}", flush=True)
        for weight in args.weights:
            model.normal_stats.weight = weight
            if args.pseudo_weight > 0:         # fitted on the fused scores of this weight, as training does
                add_pseudo_stage(model, ckpt, args.run, bench, args.pseudo_weight)
                if args.stage_unit == "held-out":
                    print(f"  weight {weight:g} {stage_unit_on_held_out(model, args.run, bench)}", flush=True)
            fusion = float(model.pseudo_stage.scale[4]) if args.pseudo_weight > 0 else 0.0
            for stage_on in ([False, True] if args.pseudo_weight > 0 else [False]):
                if args.pseudo_weight > 0:                  # off, or the fusion it was fitted for
                    model.pseudo_stage.scale[4] = fusion if stage_on else 0.0
                rule = model.scoring_rule
                for stage_weight, mode, window, share in itertools.product(
                        args.stage_weights or [None], args.frame_scores or [rule.frame_scores],
                        args.smooth_windows or [rule.smooth_window], args.smooth_shares or [rule.smooth_share]):
                    if stage_weight is not None:
                        model.pseudo_stage.weight = stage_weight
                    model.scoring_rule = dataclasses.replace(rule, frame_scores=mode, smooth_window=window,
                                                             smooth_share=share)
                    if getattr(model, "levels", None) is not None:
                        refit_levels(model, ckpt, args.run, bench)
                    scored = recalibrated(model, ckpt, args.run, bench) if args.recalibrate else ckpt
                    figures = evaluate_model(bench, model, scored)
                    shown = {k.replace("group_", ""): v for k, v in figures.items()   # shares, not counts or lists
                             if (k != "false_alarm_auto" or args.recalibrate) and isinstance(v, float)}
                    stage = (f" pseudo {args.pseudo_weight:g}" if stage_on else
                             f" stage weight {stage_weight:g}" if stage_weight is not None else "")
                    print(f"  {form:<4} context {context} shrinkage {shrinkage:g} {standardise:<8} weight {weight:<5g} "
                          f"frames {mode:<6} "
                          f"smooth {window} share {share:g}{stage} "
                          + ", ".join(f"{k} {100 * v:.1f}" for k, v in shown.items()), flush=True)
                model.scoring_rule = rule


if __name__ == "__main__":
    from vadpipe.errors import VadpipeError

    try:
        main()
    except VadpipeError as exc:         # a missing run or a damaged file: one line, not a traceback
        raise SystemExit(f"error: {exc}") from None
