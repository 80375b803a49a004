"""How a config's trained runs score their benchmark's test clips when the light changes: each ``--test
NAME=FEATURES`` folder holds the same clips (the same names, so the benchmark's ground truth still holds)
made darker or noisier by tools/relight_clips.py and extracted with the runs' recipe. Per set, mean ± sd over
the runs: frame AUC, AP, AUC inside anomalous clips, false alarms on normal clips at ``auto``, the clips
``vadpipe score`` would note (flagged over 90 % of their frames) and the clips the scene check reads as new to
the head (vadpipe/scene_check.py), normal and anomalous. The benchmark's own test split comes first:

    python tools/relight_clips.py ../shared/data/ucsd-ped1/videos/test DUSK --gain 0.25 --noise 6
    vadpipe extract DUSK -o DUSK-FEATURES --backbone i3d-inception --preset frame --short-side 316
    python tools/bench_accuracy.py --bench ped1 --config default=default --runs RUNS
    python tools/probe_relit.py RUNS/default --bench ped1 --test dusk=DUSK-FEATURES

A diagnostic of trained runs on test clips, never a way to choose anything for them.
"""
from __future__ import annotations

import tempfile
from typing import Dict, List

import numpy as np

from probe_ensemble import open_bench, run_set_parser

COLUMNS = ("frame AUC", "AP", "AUC inside", "FA@auto", "normal noted", "anomalous noted", "normal new scene",
           "anomalous new scene")


def run_figures(run, features: str, gt: str) -> Dict[str, float]:
    """One run's figures on one feature folder (percent; counts as shares of the clips of their kind)."""
    from vadpipe.evaluate import evaluate_run

    with tempfile.TemporaryDirectory() as out:       # the scores it writes are not kept beside the run
        result, _ = evaluate_run(run, features, gt, out=out, device="cpu", progress=False)
    m = result.metrics
    n = {"normal": m["n_normal_videos"], "anomalous": m["n_anomalous_videos"]}
    out = {"frame AUC": 100 * m["auc"], "AP": 100 * m["ap"], "AUC inside": 100 * m["auc_anomalous_videos"],
           "FA@auto": 100 * m["false_alarm_rate"]}
    for kind in ("normal", "anomalous"):
        out[f"{kind} noted"] = 100 * m["whole_flagged"][kind] / max(n[kind], 1)
        beyond = m.get("scene_beyond")
        out[f"{kind} new scene"] = float("nan") if beyond is None else 100 * beyond[kind]["videos"] / max(n[kind], 1)
    return out


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--test", action="append", default=[], metavar="NAME=FEATURES",
                        help="the benchmark's test clips under other light, extracted with the runs' recipe")
    args = parser.parse_args()
    bench, _, _ = open_bench(args)
    sets = [("as recorded", bench.test)] + [tuple(item.split("=", 1)) for item in args.test]
    rows: Dict[str, List[Dict[str, float]]] = {name: [] for name, _ in sets}
    for seed in args.seeds:
        run = args.runs / f"{args.bench}-{seed}"
        for name, features in sets:
            rows[name].append(run_figures(run, features, bench.gt))
    print(f"{args.runs} on {args.bench}, {len(args.seeds)} runs (percent; noted / new scene: share of the clips)")
    print("| test clips | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, figures in rows.items():
        cells = []
        for col in COLUMNS:
            v = np.array([f[col] for f in figures])
            cells.append(f"{v.mean():.1f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
