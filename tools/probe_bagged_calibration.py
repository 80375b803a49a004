"""Why is a bagged ensemble's `auto` threshold cautious? Its training calibration scores each held-out
normal video with the members that held it out (vadpipe.calibration.out_of_bag_scores), while `vadpipe
score` reports the average of all members. Two causes are measured apart, per trained run of a bagged
config (bench_accuracy's layout, RUNS/CONFIG/BENCH-SEED), in logits of the fused score:

- averaging: the 0.99 quantile of the normal test frames scored by one member (mean over members) against
  the quantile of the same frames scored by the average; the gap is what averaging narrows the tail by;
- the calibration videos: the training `auto` threshold against one member's quantile on the normal test
  frames; the gap is how much higher the training normals' tail lies than the test normals'.

A head that is not a bagged ensemble (the default) is its own one member: its averaging gap is 0 and
its videos gap is the same comparison for its held-out share of the normal training videos.
Beside them: the average of all members on the calibration videos (most members trained on each of them),
and false alarms / hits (percent of normal test frames / event frames at or above) at the training `auto`
and at `auto` lowered by the averaging gap (what an exact correction for averaging would give).

A diagnostic of trained runs, not a way to choose anything: it reads which test videos are normal and
their events.

    python tools/bench_accuracy.py --bench demo --config "f5=default+model.members=5+model.bagging=true
        +model.bag_folds=true" --runs RUNS
    python tools/probe_bagged_calibration.py RUNS/f5 --bench demo
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from bench_accuracy import events_and_normals, mean_sd, test_frame_level
from probe_ensemble import open_bench, run_set_parser
from vadpipe.plot import logit

QUANTILE = 0.99


def member_views(model) -> List:
    """Each member of a bagged ensemble as a head of its own, scoring as the ensemble does; any other
    head is its own one member."""
    from vadpipe.calibration import members_view
    from vadpipe.models.ensemble import bagged_members

    return [members_view(model, [m]) for m in range(len(bagged_members(model)))] or [model]


def normal_test_logits(model, test, gts) -> np.ndarray:
    frames = test_frame_level(model, test, gts)
    return logit(np.concatenate(events_and_normals(frames)[1]))


def in_bag_quantile(model, ckpt, train) -> Optional[float]:
    """The 0.99 quantile of the whole ensemble's frame scores on the run's calibration videos (None for a
    head that is not a bagged ensemble: none of its calibration videos trained it)."""
    from vadpipe.calibration import calibrate
    from vadpipe.models.ensemble import bagged_members

    if not bagged_members(model):
        return None
    from vadpipe.validation import score_videos

    videos = [v for v in train.videos if v.id in ckpt.calibration["videos"]]
    record = calibrate(score_videos(model, videos, "cpu"), videos, "in bag", [QUANTILE], train.snippet_len,
                       train.stride, model.scoring_rule.frame_scores)
    return float(logit(record["normal_frame_score_quantiles"][str(QUANTILE)]))


def at(threshold: float, normal: np.ndarray, events: np.ndarray) -> str:
    return f"FA {100 * np.mean(normal >= threshold):4.1f} hit {100 * np.mean(events >= threshold):4.1f}"


def main() -> None:
    parser = run_set_parser(__doc__)
    args = parser.parse_args()
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.data import open_features

    bench, test, gts = open_bench(args)
    train = open_features(bench.train)
    print(f"{args.runs} on {args.bench}: logits of the fused score, the {QUANTILE} quantile")
    rows: Dict[str, List[Optional[float]]] = {}
    for seed in args.seeds:
        model, ckpt = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        auto = float(logit(ckpt.calibration["normal_frame_score_quantiles"][str(QUANTILE)]))
        events, normals = events_and_normals(test_frame_level(model, test, gts))
        events, average = logit(np.concatenate(events)), logit(np.concatenate(normals))
        one = float(np.mean([np.quantile(normal_test_logits(view, test, gts), QUANTILE)
                             for view in member_views(model)]))
        avg_q = float(np.quantile(average, QUANTILE))
        row = {"auto": auto, "test one member": one, "test average": avg_q, "averaging gap": one - avg_q,
               "videos gap": auto - one, "in bag": in_bag_quantile(model, ckpt, train)}
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
        print(f"seed {seed}: auto {auto:.2f} ({at(auto, average, events)}) | test normals: one member {one:.2f}, "
              f"average {avg_q:.2f} | averaging gap {one - avg_q:.2f} ({at(auto - (one - avg_q), average, events)} "
              f"at auto minus it), videos gap {auto - one:.2f}"
              + ("" if row["in bag"] is None else f" | whole ensemble in bag {row['in bag']:.2f}"))
    print("mean ± sd: " + ", ".join(f"{key} {mean_sd(values, scale=1.0, digits=2)}" for key, values in rows.items()))


if __name__ == "__main__":
    main()
