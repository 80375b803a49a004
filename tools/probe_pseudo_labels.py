"""Would a second, self-trained stage on pseudo-labels help (MIST, CVPR 2021, in its simplest form)?

For each trained run of a config: its fused scores on the training videos give pseudo snippet labels
(``models/pseudo_stage.pseudo_labels``: every snippet of a normal video 0; in each anomalous video the
top ``--share`` of snippets 1 and the bottom ``--share`` 0, the rest left out); a logistic regression
on unit-length features learns them; on the test set it is scored alone and fused with the run's
head (standardised logits summed, both standardised on the normal training videos). Prints frame AUC
and AUC inside anomalous videos for the head, the second stage and the fusion. Unlike
``model.pseudo_weight`` (the same stage, built into training) it fits on every training video,
held-out ones included, and reads each run as trained.

A diagnostic (it reads test labels), not a training recipe.

    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --C 1
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from probe_ensemble import figures, logits, open_bench, run_set_parser, summary


def unit_features(video) -> np.ndarray:
    """(T, D) crops averaged, unit length."""
    f = np.asarray(video.raw(), dtype=np.float32)
    f = f.reshape(f.shape[0], -1, f.shape[-1]).mean(axis=1)
    return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-6)


def pseudo_labelled(train, head_logits: Dict[str, np.ndarray], share: float) -> Tuple[np.ndarray, np.ndarray]:
    from vadpipe.models.pseudo_stage import pseudo_labels

    xs, ys = [], []
    for v, f in train:
        keep, y = pseudo_labels(head_logits[v.id], bool(v.label), share)
        xs.append(f[keep])
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def standardise(scores: Dict[str, np.ndarray], normal: np.ndarray) -> Dict[str, np.ndarray]:
    return {k: (v - normal.mean()) / max(normal.std(), 1e-9) for k, v in scores.items()}


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--share", type=float, default=0.3,
                        help="share of an anomalous video's snippets labelled 1 (top) and 0 (bottom)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule
    from vadpipe.data import open_features

    bench, test_set, gts = open_bench(args)
    train = [(v, unit_features(v)) for v in open_features(bench.train).videos]
    test = [(v, unit_features(v)) for v in test_set.videos]
    rows: Dict[str, List[Tuple[float, float]]] = {"head": [], "second stage": [], "fused": []}
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        mode = scoring_rule(model).frame_scores
        head_train = {v.id: logits(score_features(model, v.raw(), "cpu")) for v, _ in train}
        head_test = {v.id: logits(score_features(model, v.raw(), "cpu")) for v, _ in test}
        x, y = pseudo_labelled(train, head_train, args.share)
        clf = LogisticRegression(C=args.C, max_iter=3000, class_weight="balanced").fit(x, y)
        stage_test = {v.id: clf.decision_function(f) for v, f in test}
        normal_head = np.concatenate([head_train[v.id] for v, _ in train if v.label == 0])
        normal_stage = np.concatenate([clf.decision_function(f) for v, f in train if v.label == 0])
        a, b = standardise(head_test, normal_head), standardise(stage_test, normal_stage)
        rows["head"].append(figures(head_test, test_set, gts, mode))
        rows["second stage"].append(figures(stage_test, test_set, gts, mode))
        rows["fused"].append(figures({k: a[k] + b[k] for k in a}, test_set, gts, mode))
    print(f"{args.runs} on {args.bench}: share {args.share:g} pseudo-labels, C {args.C:g}")
    for name, figs in rows.items():
        print(f"  {name:<14}{summary(figs)}")


if __name__ == "__main__":
    main()
