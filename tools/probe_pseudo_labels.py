"""Would a second, self-trained stage on pseudo-labels help (MIST, CVPR 2021, in its simplest form)?

For each trained run of a config, the product's stage (``models/pseudo_stage.PseudoStage``, as
``model.pseudo_weight=1`` builds it) is fitted on the run's fused scores of the training videos and
scored on the test set alone and fused with the head. Prints frame AUC and AUC inside anomalous
videos for the head, the second stage and the fusion. Unlike training it fits on every training
video, held-out ones included, on crop-averaged features, and reads each run as trained.

With ``--rounds N`` the labelling is repeated as MIST iterates it: round r's stage is fitted on the
pseudo-labels that round r − 1's fused scores give (round 1: the head's) and fused with the head in
place of the earlier stage; each round is reported. ``--classifiers`` puts other classifiers in the
stage's place on the same labels, fused as the product fuses: ``lr`` (the product's logistic regression),
``rbf:G`` (an RBF kernel of width γ G, approximated on 400 components, then that regression), ``mlp:A``
(one hidden layer of 64 units, L2 strength A). ``--context K`` (odd) fits the stage on each snippet
beside its K − 1 neighbours (unit-length snippets side by side, a video's edges repeated, as
``model.normal_context`` gives the normal statistics): a supervised probe gains from them on the demo
world's abandoned objects and intrusions (``tools/probe_features.py --context 5 --per-type-on frames``).

A diagnostic (it reads test labels), not a training recipe.

    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --seeds 0 1 2 3 4 --C 1
    python tools/probe_pseudo_labels.py RUNS/default --bench demo --share 0.1 --rounds 3
    python tools/probe_pseudo_labels.py RUNS/default --bench ped1 --share 0.1 --classifiers lr rbf:1 mlp:1
    python tools/probe_pseudo_labels.py RUNS/default --bench demo --share 0.1 --context 5
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Tuple

import numpy as np

from probe_ensemble import figures, logits, open_bench, run_set_parser, summary


def crop_mean(video) -> np.ndarray:
    """(T, D) features, crops averaged."""
    f = np.asarray(video.raw(), dtype=np.float32)
    return f.reshape(f.shape[0], -1, f.shape[-1]).mean(axis=1)


def with_context(features: np.ndarray, context: int) -> np.ndarray:
    """(T, D) -> (T, K·D): each unit-length snippet beside its K − 1 neighbours (edges repeated); K 1 leaves
    ``features`` as they are (the stage normalises them itself)."""
    if context == 1:
        return features
    import torch

    from vadpipe.models.normal_stats import neighbourhoods

    unit = torch.nn.functional.normalize(torch.from_numpy(features), dim=-1)
    return neighbourhoods(unit, context).numpy()


def parse_classifier(name: str) -> Tuple[str, float]:
    """(kind, its number) of a ``--classifiers`` entry (module docstring); one line on a bad one."""
    kind, _, value = name.partition(":")
    try:
        if kind == "lr" and not value:
            return kind, 0.0
        if kind in ("rbf", "mlp"):
            return kind, float(value)
    except ValueError:
        pass
    raise SystemExit(f"--classifiers {name!r}: lr, rbf:GAMMA or mlp:ALPHA")


def classifier_stage(name: str, dim: int, share: float, c: float):
    """The product's stage with the classifier ``name`` (module docstring) in its place."""
    import torch

    from vadpipe.models.pseudo_stage import PseudoStage

    kind, value = parse_classifier(name)
    if kind == "lr":
        return PseudoStage(dim, 1.0, share, c)

    class Stage(PseudoStage):
        def fit_classifier(self, x, y, seed):
            from sklearn.kernel_approximation import Nystroem
            from sklearn.linear_model import LogisticRegression
            from sklearn.neural_network import MLPClassifier
            from sklearn.pipeline import make_pipeline

            self.clf = (make_pipeline(Nystroem(gamma=value, n_components=400, random_state=seed),
                                      LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))
                        if kind == "rbf" else MLPClassifier((64,), alpha=value, max_iter=300, random_state=seed))
            self.clf.fit(x, y)

        def stage_logit(self, x):
            unit = torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy()
            p = self.clf.predict_proba(unit)[:, 1].clip(1e-7, 1 - 1e-7)
            return torch.from_numpy(np.log(p) - np.log1p(-p)).float()

    return Stage(dim, 1.0, share, c)


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--share", type=float, default=0.3,
                        help="share of an anomalous video's snippets labelled 1 (top) and 0 (bottom)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--rounds", type=int, default=1,
                        help="label and fit again on the previous round's fused scores, this many times in all")
    parser.add_argument("--classifiers", nargs="+", default=["lr"],
                        help="the stage's classifier: lr, rbf:GAMMA, mlp:ALPHA (module docstring)")
    parser.add_argument("--context", type=int, default=1,
                        help="odd K: the stage sees each snippet beside its K - 1 neighbours")
    args = parser.parse_args()
    if args.context < 1 or args.context % 2 == 0:
        parser.error(f"--context {args.context}: an odd number >= 1")
    for name in args.classifiers:          # a bad entry stops here, before any run is read
        parse_classifier(name)

    import torch

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint, score_features, scoring_rule
    from vadpipe.data import open_features

    bench, test_set, gts = open_bench(args)
    train = [(v, with_context(crop_mean(v), args.context)) for v in open_features(bench.train).videos]
    test = [(v, torch.from_numpy(with_context(crop_mean(v), args.context))) for v in test_set.videos]

    def name(classifier: str, part: str, r: int) -> str:
        return (f"{classifier} " if args.classifiers != ["lr"] else "") + part + (f" {r}" if args.rounds > 1 else "")

    rows: Dict[str, List[Tuple[float, float]]] = {"head": []}
    for classifier, r, part in itertools.product(args.classifiers, range(1, args.rounds + 1), ("second stage", "fused")):
        rows[name(classifier, part, r)] = []
    for seed in args.seeds:
        model, _ = load_checkpoint(checkpoint_path(args.runs / f"{args.bench}-{seed}"), "cpu")
        mode = scoring_rule(model).frame_scores
        train_head = [torch.from_numpy(score_features(model, v.raw(), "cpu")) for v, _ in train]
        head = {v.id: torch.from_numpy(score_features(model, v.raw(), "cpu")) for v, _ in test}
        rows["head"].append(figures({k: logits(h.numpy()) for k, h in head.items()}, test_set, gts, mode))
        for classifier in args.classifiers:
            labelling = train_head                   # the scores that choose the next round's pseudo-labels
            for r in range(1, args.rounds + 1):
                stage = classifier_stage(classifier, train[0][1].shape[1], args.share, args.C)
                stage.fit([f for _, f in train], [s.numpy() for s in labelling],
                          [bool(v.label) for v, _ in train], seed)
                with torch.no_grad():
                    rows[name(classifier, "second stage", r)].append(
                        figures({v.id: stage.stage_logit(f).numpy() for v, f in test}, test_set, gts, mode))
                    rows[name(classifier, "fused", r)].append(
                        figures({v.id: logits(stage.fuse(head[v.id], f).numpy()) for v, f in test}, test_set, gts, mode))
                    if r < args.rounds:          # the next round's labels: this round's fused scores
                        labelling = [stage.fuse(h, torch.from_numpy(f)) for h, (_, f) in zip(train_head, train)]
    print(f"{args.runs} on {args.bench}: share {args.share:g} pseudo-labels, C {args.C:g}, context {args.context}")
    for label, figs in rows.items():
        print(f"  {label:<22}{summary(figs)}")


if __name__ == "__main__":
    main()
