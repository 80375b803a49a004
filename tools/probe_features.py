"""How much of each event type do the features carry? A supervised upper-bound check.

Fits a logistic regression on *snippet* labels (from frame-level ground truth,
which weak supervision never sees) with K folds split by video, so no video
gives snippets to both sides, and prints the frame-free snippet AUC overall
and per event type (normal videos + that type's videos), beside the distance
to the normal videos of the other folds (the default's normal statistics,
unsupervised) and the untrained feature-norm score. If even this probe is
near chance for a type, no head trained on video labels will find that type
with these features. "inside" is the AUC over the snippets of anomalous
videos only (does it find *when*?); both are also given on frames, the snippet
scores interpolated to frames as the default head's are, over every video and
over the test split's alone (the set a head's benchmark figures come from;
each video is always scored by the fold that did not train on it). ``--fit
train`` fits the probe on the train split alone and scores the test split: a
fully supervised model on exactly the videos a weakly supervised head trains
on and is measured on, the fairest ceiling for that head.

A ceiling with more than one snippet at a time: ``--context K`` (odd) gives
the probe (and the distance, as ``model.normal_context`` does) each snippet
beside its K - 1 neighbours (edges repeated), and ``--also FOLDER`` appends
the same videos' features from another extraction (another resolution, say)
to every snippet. ``--probe rbf|mlp|boost`` swaps the logistic regression for
an RBF SVM, an MLP or gradient-boosted trees: is the ceiling the features' or
the linear model's?

    python tools/probe_features.py demo/features demo/world
    python tools/probe_features.py CACHE/ped1-inception-frame316 ../shared/data/ucsd-ped1 \
        --also CACHE/ped1-inception-frame474 --context 5
    (feature folders FEATURES/{train,test}, ground truth WORLD/{train,test}_gt.json)
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from vadpipe.data import open_features
from vadpipe.groundtruth import load_ground_truth, match_ids
from vadpipe.intervals import snippet_reach, snippets_to_frames
from vadpipe.models.normal_stats import NormalStats, neighbourhoods


def frame_labels(gt, n_snippets: int, snippet_len: int, stride: Optional[int] = None) -> np.ndarray:
    """The gt's 0/1 frame labels (its own reader) over its frame count, or as far as the snippets reach
    when it gives none."""
    return gt.labels(gt.frames or snippet_reach(n_snippets, snippet_len, stride or snippet_len))[0]


def snippets_holding(frames: np.ndarray, n_snippets: int, snippet_len: int,
                     stride: Optional[int] = None) -> np.ndarray:
    """1 for every snippet holding an anomalous frame of ``frames``; snippet i covers frames [i*stride,
    i*stride + snippet_len) (no stride: the snippet length, no overlap)."""
    stride = stride or snippet_len
    reach = snippet_reach(n_snippets, snippet_len, stride)
    padded = np.zeros(reach, dtype=np.int8)
    padded[: min(len(frames), len(padded))] = frames[: len(padded)]
    starts = np.arange(n_snippets)[:, None] * stride + np.arange(snippet_len)[None, :]
    return padded[starts].max(axis=1).astype(float)


def snippet_labels(gt, n_snippets: int, snippet_len: int, stride: Optional[int] = None) -> np.ndarray:
    """1 for every snippet holding an anomalous frame of the gt."""
    return snippets_holding(frame_labels(gt, n_snippets, snippet_len, stride), n_snippets, snippet_len, stride)


def snippet_features(video) -> np.ndarray:
    feats = np.asarray(video.raw(), dtype=np.float32)
    return feats.reshape(feats.shape[0], -1, feats.shape[-1]).mean(axis=1)      # crops averaged


def load_split(features: Path, gt_file: Path, also: tuple = ()):
    feature_set = open_features(features, list_anomalous="none")
    extra_sets = [{v.id: v for v in open_features(folder, list_anomalous="none").videos} for folder in also]
    gts = load_ground_truth(gt_file)
    key = match_ids([v.id for v in feature_set.videos], list(gts))   # ids as the gt spells them
    videos, grids = [], []
    L, s = feature_set.snippet_len, feature_set.stride
    for video in feature_set.videos:
        parts = [snippet_features(video)]
        for folder, extra in zip(also, extra_sets):
            if video.id not in extra:
                raise SystemExit(f"{folder}: no features for video {video.id} (needed by --also)")
            more = snippet_features(extra[video.id])
            if len(more) != len(parts[0]):
                raise SystemExit(f"{folder}: video {video.id} has {len(more)} snippets, {features} has "
                                 f"{len(parts[0])}: --also needs the same snippet recipe")
            parts.append(more)
        feats = np.concatenate(parts, axis=1)
        frames = frame_labels(gts[key[video.id]], len(feats), L, s)
        videos.append((video.id, video.cls if video.label else None, feats,   # None = normal
                       snippets_holding(frames, len(feats), L, s)))
        grids.append(FrameGrid(frames, L, s))
    return videos, grids


@dataclass
class FrameGrid:
    """A video's frame labels and its snippet grid: the probe's snippet scores become frame scores as a
    ``model.frame_scores: linear`` head's do, so its frame AUC reads against the issue's targets."""
    labels: np.ndarray
    snippet_len: int
    stride: int

    def frame_scores(self, snippet_scores: np.ndarray) -> np.ndarray:
        return snippets_to_frames(snippet_scores, len(self.labels), self.snippet_len, self.stride, "linear")


def make_probe(kind: str, C: float, seed: int = 0):
    """The supervised probe: linear (the ceiling quoted in the docs) or one of three non-linear ones, to test
    whether that ceiling is the features' or the linear model's."""
    if kind == "linear":
        return LogisticRegression(C=C, max_iter=3000)
    if kind == "rbf":            # kernel SVM on standardised features (C 0.1, the linear default, is C 1 here)
        return make_pipeline(StandardScaler(), SVC(C=C * 10, kernel="rbf", gamma="scale"))
    if kind == "mlp":            # two hidden layers, weight decay, early stopping on a tenth of the snippets
        return make_pipeline(StandardScaler(), MLPClassifier((512, 128), alpha=1.0 / C, max_iter=400,
                                                             early_stopping=True, random_state=seed))
    if kind == "boost":          # gradient-boosted trees
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    raise ValueError(f"unknown probe {kind!r}")


def probe_scores_of(clf, x: np.ndarray) -> np.ndarray:
    return clf.decision_function(x) if hasattr(clf, "decision_function") else clf.predict_proba(x)[:, 1]


def per_type_auc(videos, labels, scores) -> dict:
    """Per event type, the AUC over the normal videos and that type's (each video's ``labels`` and
    ``scores``: its snippets' or its frames')."""
    out = {}
    types = sorted({cls for _, cls, _, _ in videos if cls})
    for kind in types:
        keep = [i for i, (_, cls, _, _) in enumerate(videos) if cls in (None, kind)]
        y = np.concatenate([labels[i] for i in keep])
        s = np.concatenate([scores[i] for i in keep])
        out[kind] = roc_auc_score(y, s) if 0 < y.sum() < len(y) else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features", type=Path, help="folder holding train/ and test/ feature folders")
    parser.add_argument("world", type=Path, help="folder holding train_gt.json and test_gt.json")
    parser.add_argument("--fit", choices=("folds", "train"), default="folds",
                        help="folds: K folds by video over both splits (default); train: fit on the train "
                             "split, score the test split (the head's own videos, with snippet labels)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--C", type=float, default=0.1,
                        help="inverse regularisation strength: the linear probe's C, the RBF SVM's C / 10, "
                             "the MLP's weight decay 1 / C (boosted trees: unused)")
    parser.add_argument("--probe", choices=("linear", "rbf", "mlp", "boost"), default="linear",
                        help="the supervised model: logistic regression (default), RBF SVM, MLP or boosted trees")
    parser.add_argument("--also", type=Path, action="append", default=[],
                        help="another feature folder (train/ and test/) of the same videos, appended to each snippet")
    parser.add_argument("--context", type=int, default=1, help="odd K: each snippet with its K - 1 neighbours")
    parser.add_argument("--per-type-on", choices=("snippets", "frames"), default="snippets",
                        help="the per-type columns' units: snippet labels (default) or frames, as `vadpipe eval` "
                             "reports a head's AUC per type")
    args = parser.parse_args()
    if args.context < 1 or args.context % 2 == 0:
        parser.error(f"--context {args.context}: an odd number >= 1")

    videos, grids, splits = [], [], []
    for split in ("train", "test"):
        split_videos, split_grids = load_split(args.features / split, args.world / f"{split}_gt.json",
                                               tuple(folder / split for folder in args.also))
        videos += split_videos
        grids += split_grids
        splits += [split] * len(split_videos)
    stacked = [neighbourhoods(torch.from_numpy(v[2]), args.context).numpy() for v in videos]
    probe_scores, distance_scores = [None] * len(videos), [None] * len(videos)
    for k, (train_idx, score_idx) in enumerate(fits_of(splits, args.fit, args.folds)):
        clf = make_probe(args.probe, args.C, seed=k)
        clf.fit(np.concatenate([stacked[i] for i in train_idx]), np.concatenate([videos[i][3] for i in train_idx]))
        # the product's normal statistics (unit-length features, the same context), fitted on this fit's
        # training normals: what the default's unsupervised term can see
        stats = NormalStats(videos[0][2].shape[1], features="l2", context=args.context)
        normals = [torch.from_numpy(videos[i][2]) for i in train_idx if videos[i][1] is None]
        stats.fit(normals, [torch.full(v.shape[:1], 0.5) for v in normals])
        for i in score_idx:
            probe_scores[i] = probe_scores_of(clf, stacked[i])
            distance_scores[i] = stats.distance(torch.from_numpy(videos[i][2])).numpy()
    scored = [i for i in range(len(videos)) if probe_scores[i] is not None]   # --fit train: the test split
    videos, grids, splits = ([seq[i] for i in scored] for seq in (videos, grids, splits))
    probe_scores, distance_scores = [probe_scores[i] for i in scored], [distance_scores[i] for i in scored]
    norm_scores = [np.linalg.norm(v[2], axis=1) for v in videos]

    y = np.concatenate([v[3] for v in videos])
    rows = {f"{args.probe} probe (supervised, by video)": probe_scores,
            "distance to normals (unsupervised)": distance_scores, "feature norm (untrained)": norm_scores}
    kinds = sorted({cls for _, cls, _, _ in videos if cls})
    fitted = (f"{args.folds} folds by video over both splits" if args.fit == "folds"
              else "fitted on the train split, scoring the test split")
    print(f"{len(videos)} videos scored, {len(y)} snippets ({int(y.sum())} anomalous), {fitted}")
    print(f"{videos[0][2].shape[1]}-d snippets from {1 + len(args.also)} folder(s), context {args.context}")
    print("AUC / inside: snippets (an event frame makes its snippet anomalous); frames / inside: frame labels, "
          "snippet scores interpolated to frames (model.frame_scores: linear); test / inside: those frame "
          "columns over the test split's videos alone, as the benchmarks report a head; per type: normal videos "
          f"and that type's, on {args.per_type_on}")
    print(f"{'scores':<36}{'AUC':>7}{'inside':>8}{'frames':>8}{'inside':>8}{'test':>8}{'inside':>8}"
          + "".join(f"{k:>11}" for k in kinds))
    anomalous = [i for i, v in enumerate(videos) if v[1]]
    test = [i for i, split in enumerate(splits) if split == "test"]
    test_anomalous = [i for i in test if videos[i][1]]
    for name, scores in rows.items():
        frame_scores = [grid.frame_scores(s) for grid, s in zip(grids, scores)]
        per = defaultdict(float, per_type_auc(videos, [v[3] for v in videos], scores)
                          if args.per_type_on == "snippets"
                          else per_type_auc(videos, [g.labels for g in grids], frame_scores))
        cols = [auc_over(range(len(videos)), [v[3] for v in videos], scores),
                auc_over(anomalous, [v[3] for v in videos], scores),
                auc_over(range(len(videos)), [g.labels for g in grids], frame_scores),
                auc_over(anomalous, [g.labels for g in grids], frame_scores),
                auc_over(test, [g.labels for g in grids], frame_scores),
                auc_over(test_anomalous, [g.labels for g in grids], frame_scores)]
        print(f"{name:<36}" + "".join(f"{c:>{7 if j == 0 else 8}.3f}" for j, c in enumerate(cols))
              + "".join(f"{per[k]:>11.3f}" for k in kinds))


def fits_of(splits: list, fit: str, folds: int) -> list:
    """(videos to fit on, videos to score) pairs: K folds by video over both splits, each video scored by the
    fold that did not see it, or one fit on the train split scoring the test split (the videos a weakly
    supervised head trains on and is measured on, with the snippet labels it never sees)."""
    if fit == "train":
        return [([i for i, s in enumerate(splits) if s == "train"], [i for i, s in enumerate(splits) if s == "test"])]
    fold = np.arange(len(splits)) % folds
    return [(np.flatnonzero(fold != k).tolist(), np.flatnonzero(fold == k).tolist()) for k in range(folds)]


def auc_over(indices, labels, scores) -> float:
    """AUC of the given videos' scores pooled (snippets or frames)."""
    indices = list(indices)
    return roc_auc_score(np.concatenate([labels[i] for i in indices]), np.concatenate([scores[i] for i in indices]))


if __name__ == "__main__":
    main()
