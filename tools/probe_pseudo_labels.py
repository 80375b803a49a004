"""Would a second, self-trained stage on pseudo-labels help (MIST, CVPR 2021, in its simplest form)?

For each trained run of a config, the product's stage (``models/pseudo_stage.PseudoStage``, as
``model.pseudo_weight=1`` builds it) is fitted on the run's fused scores of the training videos and
scored on the test set alone and fused with the head. Prints frame AUC and AUC inside anomalous
videos for the head, the second stage and the fusion. Unlike training it fits on every training
video, held-out ones included, on crop-averaged features, and reads each run as trained.

A diagnostic (it reads test labels), not a training recipe.

    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --C 1
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from probe_ensemble import figures, logits, open_bench, run_set_parser, summary


def crop_mean(video) -> np.ndarray:
    """(T, D) features, crops averaged."""
    f = np.asarray(video.raw(), dtype=np.float32)
    return f.reshape(f.shape[0], -1, f.shape[-1]).mean(axis=1)


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--share", type=float, default=0.3,
                        help="share of an anomalous video's snippets labelled 1 (top) and 0 (bottom)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    args = parser.parse_args()

    import torch

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule
    from vadpipe.data import open_features
    from vadpipe.models.pseudo_stage import PseudoStage

    bench, test_set, gts = open_bench(args)
    train = [(v, crop_mean(v)) for v in open_features(bench.train).videos]
    test = [(v, torch.from_numpy(crop_mean(v))) for v in test_set.videos]
    rows: Dict[str, List[Tuple[float, float]]] = {"head": [], "second stage": [], "fused": []}
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        mode = scoring_rule(model).frame_scores
        stage = PseudoStage(train[0][1].shape[1], 1.0, args.share, args.C)
        stage.fit([f for _, f in train], [score_features(model, v.raw(), "cpu") for v, _ in train],
                  [bool(v.label) for v, _ in train], seed)
        head = {v.id: torch.from_numpy(score_features(model, v.raw(), "cpu")) for v, _ in test}
        with torch.no_grad():
            rows["head"].append(figures({k: logits(h.numpy()) for k, h in head.items()}, test_set, gts, mode))
            rows["second stage"].append(figures({v.id: stage.stage_logit(f).numpy() for v, f in test},
                                                test_set, gts, mode))
            rows["fused"].append(figures({v.id: logits(stage.fuse(head[v.id], f).numpy()) for v, f in test},
                                         test_set, gts, mode))
    print(f"{args.runs} on {args.bench}: share {args.share:g} pseudo-labels, C {args.C:g}")
    for name, figs in rows.items():
        print(f"  {name:<14}{summary(figs)}")


if __name__ == "__main__":
    main()
