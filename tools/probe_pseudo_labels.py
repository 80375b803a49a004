"""Would a second, self-trained stage on pseudo-labels help (MIST, CVPR 2021, in its simplest form)?

For each trained run of a config: its fused scores on the training videos give pseudo snippet labels
(every snippet of a normal video 0; in each anomalous video the top ``--top`` share of snippets 1 and
the bottom ``--bottom`` share 0, the rest left out); a logistic regression on unit-length features
learns them; on the test set it is scored alone and fused with the run's head (standardised logits
summed, both standardised on the normal training videos). Prints frame AUC and AUC inside anomalous
videos for the head, the second stage and the fusion.

A diagnostic (it reads test labels), not a training recipe: a snippet classifier sees one snippet at a
time, the head its whole video.

    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --C 1
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

import bench_accuracy
from bench_accuracy import BENCHES
from probe_ensemble import figures, logits, summary


def unit_features(video) -> np.ndarray:
    """(T, D) crops averaged, unit length."""
    f = np.asarray(video.raw(), dtype=np.float32)
    f = f.reshape(f.shape[0], -1, f.shape[-1]).mean(axis=1)
    return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-6)


def pseudo_labelled(train, head_logits: Dict[str, np.ndarray], top: float, bottom: float
                    ) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for v, f in train:
        if v.label == 0:
            xs.append(f)
            ys.append(np.zeros(len(f)))
            continue
        rank = np.argsort(np.argsort(head_logits[v.id])) / max(len(f) - 1, 1)   # 0 lowest .. 1 highest
        hi, lo = rank >= 1 - top, rank <= bottom
        xs += [f[hi], f[lo]]
        ys += [np.ones(hi.sum()), np.zeros(lo.sum())]
    return np.concatenate(xs), np.concatenate(ys)


def standardise(scores: Dict[str, np.ndarray], normal: np.ndarray) -> Dict[str, np.ndarray]:
    return {k: (v - normal.mean()) / max(normal.std(), 1e-9) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a config's folder of runs, RUNS/CONFIG (holding BENCH-SEED runs)")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--top", type=float, default=0.3, help="share of an anomalous video's snippets labelled 1")
    parser.add_argument("--bottom", type=float, default=0.3, help="share labelled 0")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--cache", default=os.environ.get("VADPIPE_BENCH_CACHE",
                                                          str(Path.home() / ".cache" / "vadpipe" / "bench")))
    parser.add_argument("--ped1-short-side", type=int, default=bench_accuracy.PED1_SHORT_SIDE)
    args = parser.parse_args()
    bench_accuracy.PED1_SHORT_SIDE = args.ped1_short_side

    from sklearn.linear_model import LogisticRegression

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule
    from vadpipe.data import open_features
    from vadpipe.groundtruth import load_ground_truth

    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    train = [(v, unit_features(v)) for v in open_features(bench.train).videos]
    test_set = open_features(bench.test, list_anomalous="none")
    test = [(v, unit_features(v)) for v in test_set.videos]
    gts = load_ground_truth(bench.gt)
    rows: Dict[str, List[Tuple[float, float]]] = {"head": [], "second stage": [], "fused": []}
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        mode = scoring_rule(model).frame_scores
        head_train = {v.id: logits(score_features(model, v.raw(), "cpu")) for v, _ in train}
        head_test = {v.id: logits(score_features(model, v.raw(), "cpu")) for v, _ in test}
        x, y = pseudo_labelled(train, head_train, args.top, args.bottom)
        clf = LogisticRegression(C=args.C, max_iter=3000, class_weight="balanced").fit(x, y)
        stage_test = {v.id: clf.decision_function(f) for v, f in test}
        normal_head = np.concatenate([head_train[v.id] for v, _ in train if v.label == 0])
        normal_stage = np.concatenate([clf.decision_function(f) for v, f in train if v.label == 0])
        a, b = standardise(head_test, normal_head), standardise(stage_test, normal_stage)
        rows["head"].append(figures(head_test, test_set, gts, mode))
        rows["second stage"].append(figures(stage_test, test_set, gts, mode))
        rows["fused"].append(figures({k: a[k] + b[k] for k in a}, test_set, gts, mode))
    print(f"{args.runs} on {args.bench}: top {args.top:g} / bottom {args.bottom:g} pseudo-labels, C {args.C:g}")
    for name, figs in rows.items():
        print(f"  {name:<14}{summary(figs)}")


if __name__ == "__main__":
    main()
