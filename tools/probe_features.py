"""How much of each event type do the features carry? A supervised upper-bound check.

Fits a logistic regression on *snippet* labels (from frame-level ground truth,
which weak supervision never sees) with K folds split by video, so no video
gives snippets to both sides, and prints the frame-free snippet AUC overall
and per event type (normal videos + that type's videos), beside the untrained
feature-norm score. If even this probe is near chance for a type, no head
trained on video labels will find that type with these features.

    python tools/probe_features.py demo/features demo/world
    (feature folders FEATURES/{train,test}, ground truth WORLD/{train,test}_gt.json)
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from vadpipe.data import open_features
from vadpipe.groundtruth import load_ground_truth, match_ids


def snippet_labels(gt, n_snippets: int, snippet_len: int) -> np.ndarray:
    """1 for every snippet holding an anomalous frame (frame labels from the gt's own reader)."""
    frames, _ = gt.labels(gt.frames if gt.frames else n_snippets * snippet_len)
    padded = np.zeros(n_snippets * snippet_len, dtype=np.int8)
    padded[: min(len(frames), len(padded))] = frames[: len(padded)]
    return padded.reshape(n_snippets, snippet_len).max(axis=1).astype(float)


def load_split(features: Path, gt_file: Path):
    feature_set = open_features(features, list_anomalous="none")
    gts = load_ground_truth(gt_file)
    key = match_ids([v.id for v in feature_set.videos], list(gts))   # ids as the gt spells them
    videos = []
    for video in feature_set.videos:
        feats = np.asarray(video.raw(), dtype=np.float32)
        feats = feats.reshape(feats.shape[0], -1, feats.shape[-1]).mean(axis=1)     # crops averaged
        labels = snippet_labels(gts[key[video.id]], len(feats), feature_set.snippet_len)
        videos.append((video.id, video.cls if video.label else None, feats, labels))   # None = normal
    return videos


def per_type_auc(videos, scores) -> dict:
    out = {}
    types = sorted({cls for _, cls, _, _ in videos if cls})
    for kind in types:
        keep = [i for i, (_, cls, _, _) in enumerate(videos) if cls in (None, kind)]
        y = np.concatenate([videos[i][3] for i in keep])
        s = np.concatenate([scores[i] for i in keep])
        out[kind] = roc_auc_score(y, s) if 0 < y.sum() < len(y) else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features", type=Path, help="folder holding train/ and test/ feature folders")
    parser.add_argument("world", type=Path, help="folder holding train_gt.json and test_gt.json")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the probe")
    args = parser.parse_args()

    videos = (load_split(args.features / "train", args.world / "train_gt.json")
              + load_split(args.features / "test", args.world / "test_gt.json"))
    folds = np.arange(len(videos)) % args.folds
    probe_scores = [None] * len(videos)
    for k in range(args.folds):
        train_idx = [i for i in range(len(videos)) if folds[i] != k]
        clf = LogisticRegression(C=args.C, max_iter=3000)
        clf.fit(np.concatenate([videos[i][2] for i in train_idx]), np.concatenate([videos[i][3] for i in train_idx]))
        for i in np.flatnonzero(folds == k):
            probe_scores[i] = clf.decision_function(videos[i][2])
    norm_scores = [np.linalg.norm(v[2], axis=1) for v in videos]

    y = np.concatenate([v[3] for v in videos])
    rows = {"probe (supervised, by-video folds)": probe_scores, "feature norm (untrained)": norm_scores}
    kinds = sorted({cls for _, cls, _, _ in videos if cls})
    print(f"{len(videos)} videos, {len(y)} snippets ({int(y.sum())} anomalous), {args.folds} folds by video")
    print(f"{'scores':<36}{'AUC':>7}" + "".join(f"{k:>11}" for k in kinds))
    for name, scores in rows.items():
        per = defaultdict(float, per_type_auc(videos, scores))
        overall = roc_auc_score(y, np.concatenate(scores))
        print(f"{name:<36}{overall:>7.3f}" + "".join(f"{per[k]:>11.3f}" for k in kinds))


if __name__ == "__main__":
    main()
