#!/usr/bin/env python
"""How much does windowed scoring (`vadpipe score --window N`, `vadpipe watch`) change a run's scores?

Scores every video of a feature folder with the run's head on the whole clip and on sliding
windows of N snippets, and prints per window size: the largest and mean absolute score
difference, the share of videos longer than the window, and frame AUC / AUC inside anomalous
videos both ways (with --gt).

    python tools/bench_window.py runs/latest features/test --gt test_gt.json --windows 8 16 32
"""
from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("features")
    ap.add_argument("--gt", default=None)
    ap.add_argument("--windows", nargs="+", type=int, default=[8, 16, 32])
    args = ap.parse_args(argv)

    from vadpipe.checkpoint import load_checkpoint, score_features
    from vadpipe.data import open_features
    from vadpipe.evaluate import evaluate_feature_scores
    from vadpipe.groundtruth import load_ground_truth
    from vadpipe.window import score_windowed

    model, _ = load_checkpoint(args.run, "cpu")
    fs = open_features(args.features, list_anomalous="none")
    feats = {v.id: np.asarray(v.raw(), dtype=np.float32) for v in fs.videos}
    whole = {k: score_features(model, x, "cpu") for k, x in feats.items()}
    gts = load_ground_truth(args.gt) if args.gt else None

    def metrics(scores):
        if gts is None:
            return ""
        m = evaluate_feature_scores(scores, fs, gts, on_mismatch="skip").metrics
        return f"AUC {100 * m['auc']:.2f}, in anomalous {100 * m['auc_anomalous_videos']:.2f}"

    print(f"whole clip: {metrics(whole)}")
    for w in args.windows:
        windowed = {k: score_windowed(model, x, window=w, device="cpu") for k, x in feats.items()}
        diff = np.concatenate([np.abs(windowed[k] - whole[k]) for k in feats])
        longer = np.mean([x.shape[0] > w for x in feats.values()])
        print(f"window {w:>4}: max |diff| {diff.max():.4f}, mean {diff.mean():.4f}, "
              f"{100 * longer:.0f}% of videos longer than the window; {metrics(windowed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
