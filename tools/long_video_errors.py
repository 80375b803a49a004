#!/usr/bin/env python
"""Where a head's ranking inside the long videos of ``bench_accuracy.py --bench ped1-long`` is won or lost.

Each test video there strings Ped1 clips end to end (tools/long_videos.py, which records the clip
blocks in ``test_clips.json``). Snippet-level AUC over the snippets of the anomalous videos, pooled,
then split:
- ``near joins``: snippets within 1 of a join between two clips (a window there straddles two
  recordings), against ``far``: the rest;
- ``event clip``: the anomalous clip's own snippets only (does it find *when* inside the event's clip?);
- ``vs other clips``: the event's snippets against the snippets of the video's normal clips.

    python tools/long_video_errors.py CACHE/ped1-inception-frame316-long8 \\
        --runs whole RUNS/whole/ped1-long-{0,1,2,3,4} --runs h5c RUNS/h5c/ped1-long-{0,1,2,3,4}
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

SPLITS = ("inside", "near joins", "far", "event clip", "vs other clips")


def join_distance(blocks: Sequence[Sequence], length: int) -> np.ndarray:
    """Per snippet, how many snippets lie between it and the nearest join between two clips (0: it
    touches one); a video of one clip has no join (inf)."""
    joins = np.array([b[0] for b in blocks[1:]], dtype=float)            # first snippet after each join
    idx = np.arange(length, dtype=float)[:, None]
    if not joins.size:
        return np.full(length, np.inf)
    return np.minimum(np.abs(idx - joins), np.abs(idx + 1 - joins)).min(axis=1)


def split_aucs(videos: Sequence[tuple]) -> Dict[str, Optional[float]]:
    """``videos``: (snippet scores, snippet labels 0/1, clip blocks) of each anomalous video. Pooled AUC
    over all their snippets and over each split of the module docstring (None: one class only)."""
    s = np.concatenate([v[0] for v in videos])
    y = np.concatenate([v[1] for v in videos]).astype(bool)
    near = np.concatenate([join_distance(v[2], len(v[0])) <= 1 for v in videos])
    in_event = np.concatenate([_event_block(v[1], v[2]) for v in videos])
    event_vs_rest = np.r_[np.ones((y & in_event).sum(), dtype=bool), np.zeros((~in_event).sum(), dtype=bool)]
    return {"inside": _auc(y, s), "near joins": _auc(y[near], s[near]), "far": _auc(y[~near], s[~near]),
            "event clip": _auc(y[in_event], s[in_event]),
            "vs other clips": _auc(event_vs_rest, np.r_[s[y & in_event], s[~in_event]])}


def _auc(labels: np.ndarray, scores: np.ndarray) -> Optional[float]:
    """ROC AUC, or None where the split holds one class only."""
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else None


def _event_block(labels: np.ndarray, blocks: Sequence[Sequence]) -> np.ndarray:
    """True over the snippets of every clip that holds an anomalous snippet."""
    mask = np.zeros(len(labels), dtype=bool)
    for start, end, _ in blocks:
        if labels[start:end].any():
            mask[start:end] = True
    return mask


def load_test(long_dir: Path) -> tuple:
    """The long test videos' features, frame ground truth and clip blocks (read once for every run)."""
    from vadpipe.data import open_features
    from vadpipe.groundtruth import load_ground_truth

    return (open_features(long_dir / "test.list", list_anomalous="none"),
            load_ground_truth(long_dir / "test_gt.json"), json.loads((long_dir / "test_clips.json").read_text()))


def run_videos(run: Path, test: tuple) -> List[tuple]:
    """(snippet scores, snippet labels, clip blocks) of each anomalous test video under ``run``'s head."""
    import torch

    from probe_features import snippet_labels
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.evaluate import score_feature_set

    features, gt, blocks = test
    model, _ = load_checkpoint(checkpoint_path(run), torch.device("cpu"))
    scores = score_feature_set(model, features, "cpu")
    return [(s, snippet_labels(gt[vid], len(s), scores.snippet_len, scores.stride), blocks[vid])
            for vid, s in scores.scores.items() if gt[vid].anomalous]


def main(argv=None) -> None:
    import torch
    from vadpipe.progress import progress_bar

    from bench_accuracy import mean_sd
    from vadpipe.errors import VadpipeError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("long_dir", type=Path, help="a ped1-long cache folder (test.list, test_gt.json, "
                        "test_clips.json)")
    parser.add_argument("--runs", nargs="+", action="append", required=True, metavar=("NAME", "RUN"),
                        help="a name and the run folders (one per seed) it covers; repeat for each config")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (args.long_dir / "test_clips.json").exists():
        parser.error(f"{args.long_dir}: no test_clips.json (rebuild it with bench_accuracy.py --bench ped1-long)")
    for name, *runs in args.runs:
        if not runs:
            parser.error(f"--runs {name}: no run folders")
    try:
        test = load_test(args.long_dir)
        print("config | " + " | ".join(SPLITS) + "   (snippet AUC in anomalous videos, percent, mean ± sd)")
        for name, *runs in args.runs:
            # a run scores every long test video: seconds each, so show where the config stands (stderr)
            per_run = [split_aucs(run_videos(Path(r), test)) for r in progress_bar(runs, desc=name, unit="run", leave=False)]
            print(f"{name} ({len(runs)}) | " + " | ".join(mean_sd([r[k] for r in per_run]) for k in SPLITS),
                  flush=True)
    except VadpipeError as exc:         # a missing run or a damaged file: one line, not a traceback
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
