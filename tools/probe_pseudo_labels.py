"""Would a second, self-trained stage on pseudo-labels help (MIST, CVPR 2021, in its simplest form)?

For each trained run of a config, the product's stage (``models/pseudo_stage.PseudoStage``, as
``model.pseudo_weight=1`` builds it) is fitted on the run's fused scores of the training videos and
scored on the test set alone and fused with the head. Prints frame AUC and AUC inside anomalous
videos for the head, the second stage and the fusion. Unlike training it fits on every training
video, held-out ones included, on crop-averaged features, and reads each run as trained.

With ``--rounds N`` the labelling is repeated as MIST iterates it: round r's stage is fitted on the
pseudo-labels that round r − 1's fused scores give (round 1: the head's) and fused with the head in
place of the earlier stage; each round is reported.

A diagnostic (it reads test labels), not a training recipe.

    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --C 1
    python tools/probe_pseudo_labels.py RUNS/default --bench demo --share 0.1 --rounds 3
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
    parser.add_argument("--rounds", type=int, default=1,
                        help="label and fit again on the previous round's fused scores, this many times in all")
    args = parser.parse_args()

    import torch

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule
    from vadpipe.data import open_features
    from vadpipe.models.pseudo_stage import PseudoStage

    bench, test_set, gts = open_bench(args)
    train = [(v, crop_mean(v)) for v in open_features(bench.train).videos]
    test = [(v, torch.from_numpy(crop_mean(v))) for v in test_set.videos]
    names = ["head"] + [f"{part}{'' if args.rounds == 1 else f' {r}'}" for r in range(1, args.rounds + 1)
                        for part in ("second stage", "fused")]
    rows: Dict[str, List[Tuple[float, float]]] = {name: [] for name in names}
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        mode = scoring_rule(model).frame_scores
        train_head = [torch.from_numpy(score_features(model, v.raw(), "cpu")) for v, _ in train]
        head = {v.id: torch.from_numpy(score_features(model, v.raw(), "cpu")) for v, _ in test}
        rows["head"].append(figures({k: logits(h.numpy()) for k, h in head.items()}, test_set, gts, mode))
        labelling = train_head                   # the scores that choose the next round's pseudo-labels
        for r in range(1, args.rounds + 1):
            stage = PseudoStage(train[0][1].shape[1], 1.0, args.share, args.C)
            stage.fit([f for _, f in train], [s.numpy() for s in labelling],
                      [bool(v.label) for v, _ in train], seed)
            suffix = "" if args.rounds == 1 else f" {r}"
            with torch.no_grad():
                rows[f"second stage{suffix}"].append(figures({v.id: stage.stage_logit(f).numpy() for v, f in test},
                                                             test_set, gts, mode))
                rows[f"fused{suffix}"].append(figures({v.id: logits(stage.fuse(head[v.id], f).numpy())
                                                       for v, f in test}, test_set, gts, mode))
                labelling = [stage.fuse(h, torch.from_numpy(f)) for h, (_, f) in zip(train_head, train)]
    print(f"{args.runs} on {args.bench}: share {args.share:g} pseudo-labels, C {args.C:g}")
    for name, figs in rows.items():
        print(f"  {name:<16}{summary(figs)}")


if __name__ == "__main__":
    main()
