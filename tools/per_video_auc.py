"""Where does a config find *when*, and where not? AUC inside each anomalous test video (its event frames
against its other frames), for every trained run of a config, mean ± sd over runs, lowest first; then per
event class (the class's videos pooled) and all anomalous videos pooled: bench_accuracy's "AUC in anom.",
which also ranks one video's frames against another's; beside it the mean of the per-video AUCs, which
does not (their gap is what differing score levels between videos cost the pooled figure).

A diagnostic of trained runs (bench_accuracy's layout: RUNS/CONFIG/BENCH-SEED): it reads test labels, so
it explains a figure, it does not choose anything. Videos whose event covers every frame have no such AUC
and are left out.

    python tools/per_video_auc.py RUNS/default --bench ped1
    python tools/per_video_auc.py RUNS/default --bench demo --seeds 0 1 2
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np

from bench_accuracy import auc, test_frame_level
from probe_ensemble import open_bench, run_set_parser


def inside_aucs(model, test, gts) -> Tuple[Dict[str, float], dict]:
    """({gt id: AUC inside that anomalous video}, {gt id: (frame scores, frame labels)}) of one head,
    frames as the head maps them."""
    frames = test_frame_level(model, test, gts)
    return {key: auc(y, f) for key, (f, y) in frames.items() if 0 < y.sum() < y.size}, frames


def pooled(frames, keys: List[str]) -> float:
    return auc(np.concatenate([frames[k][1] for k in keys]), np.concatenate([frames[k][0] for k in keys]))


def row(name: str, values: List[float], note: str = "") -> str:
    v = 100 * np.asarray(values)
    sd = v.std(ddof=1) if v.size > 1 else 0.0
    return f"  {name:<30}{v.mean():6.1f} ± {sd:4.1f}  {note:<14}" + " ".join(f"{x:5.1f}" for x in v)


def main() -> None:
    args = run_set_parser(__doc__).parse_args()
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    _, test, gts = open_bench(args)
    per_video: Dict[str, List[float]] = defaultdict(list)
    per_class: Dict[str, List[float]] = defaultdict(list)
    overall: List[float] = []
    video_means: List[float] = []
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        aucs, frames = inside_aucs(model, test, gts)
        for key, value in aucs.items():
            per_video[key].append(value)
        anomalous = [k for k, (_, y) in frames.items() if y.any()]
        for cls in sorted({gts[k].cls or "anomalous" for k in anomalous}):
            per_class[cls].append(pooled(frames, [k for k in anomalous if (gts[k].cls or "anomalous") == cls]))
        overall.append(pooled(frames, anomalous))
        video_means.append(float(np.mean(list(aucs.values()))))
    print(f"{args.runs} on {args.bench}: AUC inside anomalous videos, percent, mean ± sd over seeds "
          f"{' '.join(map(str, args.seeds))} (then each seed)")
    for key in sorted(per_video, key=lambda k: np.mean(per_video[k])):
        labels, _ = gts[key].labels(gts[key].frames)
        print(row(key, per_video[key], f"event {100 * np.mean(labels):.0f} %"))
    print("per class (its videos pooled)")
    for cls, values in sorted(per_class.items()):
        print(row(cls, values))
    print(row("all anomalous videos pooled", overall))
    print(row("mean of the per-video AUCs", video_means))


if __name__ == "__main__":
    main()
