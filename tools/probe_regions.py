"""Do region-grid features (``vadpipe extract --regions RxC``) carry more than the whole frame?

Snippet-level AUC on the test split, with the labels of the frame ground truth
(an upper-bound check: weak supervision never sees them), for:

  normal distance, whole     Mahalanobis distance of the whole-frame vector (the mean of the regions)
                             to the normal TRAINING snippets (shrunk covariance, as models/normal_stats.py)
  normal distance, regions   the same per region (each region its own normal Gaussian, standardised on
                             the training normals), max and mean over regions
  supervised, whole          logistic regression on the training split's snippet labels
  supervised, regions        the same on every region (each region given its snippet's label), max/mean

    python tools/probe_regions.py FEATURES GT_DIR
    (FEATURES/{train,test} region features, GT_DIR/{train,test}_gt.json)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from probe_features import snippet_labels
from vadpipe.data import open_features
from vadpipe.groundtruth import load_ground_truth, match_ids


def load_split(features: Path, gt_file: Path):
    """[(label, (T, R, D) features, (T,) snippet labels)] of one split."""
    feature_set = open_features(features, list_anomalous="none")
    gts = load_ground_truth(gt_file)
    key = match_ids([v.id for v in feature_set.videos], list(gts))
    return [(v.label, np.asarray(v.raw(), dtype=np.float64),
             snippet_labels(gts[key[v.id]], v.raw().shape[0], feature_set.snippet_len, feature_set.stride))
            for v in feature_set.videos]


def normal_distance(normal: np.ndarray, x: np.ndarray, shrinkage: float) -> np.ndarray:
    """Mahalanobis distance of ``x`` (N, D) to the Gaussian of ``normal`` (M, D), z-scored on ``normal``."""
    mean = normal.mean(0)
    cov = np.cov((normal - mean).T)
    target = np.eye(cov.shape[0]) * np.trace(cov) / cov.shape[0]
    precision = np.linalg.inv((1 - shrinkage) * cov + shrinkage * target)

    def dist(v):
        d = v - mean
        return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", d, precision, d), 0))

    own = dist(normal)
    return (dist(x) - own.mean()) / own.std()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features", type=Path)
    parser.add_argument("gt_dir", type=Path)
    parser.add_argument("--shrinkage", type=float, default=0.5)
    args = parser.parse_args()

    train = load_split(args.features / "train", args.gt_dir / "train_gt.json")
    test = load_split(args.features / "test", args.gt_dir / "test_gt.json")
    regions = train[0][1].shape[1]
    y_test = np.concatenate([y for _, _, y in test])
    test_x = np.concatenate([x for _, x, _ in test])                       # (N, R, D)
    normal_x = np.concatenate([x for label, x, _ in train if label == 0])
    train_x = np.concatenate([x for _, x, _ in train])
    y_train = np.concatenate([y for _, _, y in train])
    auc = lambda s: 100 * roc_auc_score(y_test, s)   # noqa: E731

    print(f"{args.features}: {regions} region(s) per snippet, {len(y_test)} test snippets "
          f"({int(y_test.sum())} anomalous), shrinkage {args.shrinkage}")
    print(f"  normal distance, whole     {auc(normal_distance(normal_x.mean(1), test_x.mean(1), args.shrinkage)):.1f}")
    per_region = np.stack([normal_distance(normal_x[:, r], test_x[:, r], args.shrinkage)
                           for r in range(regions)], axis=1)
    print(f"  normal distance, regions   max {auc(per_region.max(1)):.1f}, mean {auc(per_region.mean(1)):.1f}")
    whole = LogisticRegression(C=0.1, max_iter=2000).fit(train_x.mean(1), y_train)
    print(f"  supervised, whole          {auc(whole.decision_function(test_x.mean(1))):.1f}")
    each = LogisticRegression(C=0.1, max_iter=2000).fit(train_x.reshape(-1, train_x.shape[-1]),
                                                          np.repeat(y_train, regions))
    s = each.decision_function(test_x.reshape(-1, test_x.shape[-1])).reshape(-1, regions)
    print(f"  supervised, regions        max {auc(s.max(1)):.1f}, mean {auc(s.mean(1)):.1f}")


if __name__ == "__main__":
    main()
