"""Which fitted terms should see the held-out normal videos? For each trained run of a config whose terms saw
the training split only (``model.terms_fit`` train, e.g. ``--config "train=default+model.terms_fit=train"``),
the terms are fitted again with the run's held-out normal videos added, and the score levels and the ``auto``
threshold set on those videos cross-fitted (``vadpipe.calibration.crossfit_scores``), as training does with
``model.terms_fit`` all. ``--terms both`` adds them to the normal statistics and the pseudo-label stage (what
``all`` does: the same figures as a run trained with it, the head's training being the same); ``--terms
statistics`` to the normal statistics only (the stage on the training split). The head is never changed.

Printed per run and as mean ± sd, in percent: the run as trained and with the terms refitted (frame AUC, AP,
AUC inside anomalous videos, false alarms and hits at ``auto``), and their paired differences. A diagnostic of
trained runs (it reads the test labels to measure, never to set anything).

    python tools/bench_accuracy.py --bench demo --config "train=default+model.terms_fit=train" --runs RUNS
    python tools/probe_terms_fit.py RUNS/train --bench demo --terms statistics
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from bench_accuracy import evaluate_model
from normal_weight_sweep import recorded_split
from probe_ensemble import open_bench, run_set_parser

TERMS = ("both", "statistics")
SHOWN = ("auc", "ap", "auc_anomalous_videos", "false_alarm_auto", "hit_auto")


def terms_fitter(terms: str, train_videos):
    """``fit(model, videos, seed, device, log)`` for ``crossfit_scores``: ``videos`` are the training split
    plus some held-out normal videos; ``statistics`` fits the stage on the training split alone."""
    from vadpipe.fitted_terms import fit_normal_stats, fit_pseudo_stage, fit_terms

    if terms == "both":
        return fit_terms

    def fit(model, videos, seed, device, log):
        fit_normal_stats(model, [v for v in videos if v.label == 0], seed, device, log)
        if getattr(model, "pseudo_stage", None) is not None:
            fit_pseudo_stage(model, list(train_videos), seed, device, log)
    return fit


def refit_with_held_out(model, ckpt, run: Path, bench, terms: str):
    """The run's head with ``terms`` fitted again on its training split and held-out normal videos, its levels
    and threshold set cross-fitted; returns the checkpoint record to evaluate it with."""
    import torch

    from vadpipe.calibration import CROSS_FITTED, calibrate, crossfit_scores, set_levels
    from vadpipe.checkpoint import as_levels
    from vadpipe.fitted_terms import held_out_normals, terms_videos

    if ckpt.model_config.terms_fit != "train":
        raise SystemExit(f"{run}: its terms already saw the held-out normal videos (model.terms_fit "
                         f"{ckpt.model_config.terms_fit})")
    data, split = recorded_split(run, bench, "cannot refit its terms")
    train = terms_videos(data, split, with_held_out=False)
    held = held_out_normals(data, split.held_idx)
    if not held:
        raise SystemExit(f"{run}: no held-out normal video to add")
    cpu, t = torch.device("cpu"), ckpt.train_config
    fit = terms_fitter(terms, train)
    levels = getattr(model, "levels", None)
    if levels is not None:
        levels.reset()
    raw = crossfit_scores(model, train, held, t.seed, cpu, fit)     # scored once, mapped to levels below
    fit(model, train + held, t.seed, cpu, lambda line: None)
    if levels is not None:
        set_levels(levels, raw, held, data.snippet_len, data.stride, ckpt.model_config.frame_scores,
                   t.calibration_pooling)
    out = copy.copy(ckpt)
    out.calibration = calibrate({vid: as_levels(model, s) for vid, s in raw.items()}, held, CROSS_FITTED,
                                t.calibration_quantiles, data.snippet_len, data.stride,
                                ckpt.model_config.frame_scores, t.calibration_pooling)
    model.eval()
    return out


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--terms", choices=TERMS, default="both", help="which terms see the held-out normal videos")
    args = parser.parse_args()
    from vadpipe.checkpoint import load_checkpoint

    bench, _, _ = open_bench(args)
    rows = {"as trained": [], f"terms {args.terms}": []}
    for seed in args.seeds:
        run = args.runs / f"{args.bench}-{seed}"
        model, ckpt = load_checkpoint(run, "cpu")
        rows["as trained"].append([evaluate_model(bench, model, ckpt)[k] for k in SHOWN])
        refitted = refit_with_held_out(model, ckpt, run, bench, args.terms)
        rows[f"terms {args.terms}"].append([evaluate_model(bench, model, refitted)[k] for k in SHOWN])
        print(f"{run.name}: " + " | ".join(f"{name} " + " / ".join(f"{100 * v:.1f}" for v in r[-1])
                                          for name, r in rows.items()), flush=True)
    print(f"{args.runs} on {args.bench} ({len(args.seeds)} runs; frame AUC / AP / inside / FA@auto / hit@auto, "
          "percent, mean ± sd):")
    for name, r in rows.items():
        a = 100 * np.array(r)
        print(f"  {name:18s} " + " / ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(a.mean(0), a.std(0, ddof=1))))
    d = 100 * (np.array(rows[f"terms {args.terms}"]) - np.array(rows["as trained"]))
    differences = " / ".join(f"{m:+.1f} ± {s:.1f}" for m, s in zip(d.mean(0), d.std(0, ddof=1)))
    print(f"  {'paired difference':18s} " + differences)


if __name__ == "__main__":
    main()
