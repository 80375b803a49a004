"""Where a trained run's scoring terms put each group of snippets: the head's logit fused with its normal
statistics (ℓ) and the pseudo-label stage's standardised logit (z₂, models/pseudo_stage.py), on the
run's normal training videos, its held-out normal videos (which calibrate the ``auto`` threshold), the
test split's normal videos, and the test split's event snippets and the rest of its anomalous videos.
The fused logit ``s = ℓ + w·σ₁·z₂`` (before the stage's bound, which keeps the order) is shown at the
run's own stage weight and at ``--stage-weights``, with its 99th percentile and the share of snippets it
scores above 0.5: ``auto`` is that percentile of the held-out normal frames, so held-out normal videos
whose s lies above the events' keep ``auto`` from flagging them. The held-out normal videos are listed
one by one (mean ℓ / z₂ over each video's snippets), every crop averaged per snippet.

A diagnostic of one trained head (it reads test labels), not a way to choose anything:

    python tools/score_terms.py RUNS/default/ped1-0 --bench ped1 --stage-weights 4 8
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from bench_accuracy import BENCHES, default_cache
from normal_weight_sweep import training_split

Terms = Tuple[np.ndarray, np.ndarray]            # (ℓ, z₂) per snippet of one video


def video_terms(model, video) -> Terms:
    """ℓ (the head's fused logit, the stage left out) and z₂ (the stage's standardised logit) of each
    snippet of ``video``, crops averaged."""
    import torch

    from vadpipe.checkpoint import head_scores
    from vadpipe.fitted_terms import crop_rows
    from vadpipe.models.normal_stats import logit

    stage = model.pseudo_stage
    x = crop_rows(video, torch.device("cpu"))
    with torch.no_grad(), stage.left_out():      # the head and its statistics alone
        head = logit(head_scores(model, x).double())
        z = (stage.stage_logit(x) - stage.scale[2]) / stage.scale[3]
    return head.mean(0).numpy(), z.double().mean(0).numpy()


def test_groups(model, bench) -> Dict[str, List[Terms]]:
    """The test split's terms: normal videos, event snippets, the rest of the anomalous videos."""
    from probe_features import snippet_labels

    from vadpipe.data import open_features
    from vadpipe.groundtruth import load_ground_truth, match_ids

    test = open_features(bench.test, list_anomalous="none")
    gts = load_ground_truth(bench.gt)
    key = match_ids([v.id for v in test.videos], list(gts))
    groups: Dict[str, List[Terms]] = {"test normal": [], "test events": [], "test anomalous, rest": []}
    for video in test.videos:
        head, z = video_terms(model, video)
        gt = gts.get(key.get(video.id, ""))
        if gt is None or not gt.anomalous:
            groups["test normal"].append((head, z))
            continue
        event = snippet_labels(gt, len(head), test.snippet_len, test.stride) > 0
        groups["test events"].append((head[event], z[event]))
        groups["test anomalous, rest"].append((head[~event], z[~event]))
    return groups


def describe(values: np.ndarray, tail: bool = False) -> str:
    """mean ± sd; with ``tail`` (a fused logit) its 99th percentile and the share above 0 (score > 0.5)."""
    return f"{values.mean():5.2f} ± {values.std():4.2f}" + (
        f" p99 {np.percentile(values, 99):5.2f} >0.5 {100 * (values > 0).mean():3.0f} %" if tail else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder or checkpoint trained on the benchmark's features")
    parser.add_argument("--bench", choices=list(BENCHES), required=True)
    parser.add_argument("--stage-weights", type=float, nargs="*", default=[],
                        help="also show s at these stage weights (the run's own is always shown)")
    parser.add_argument("--cache", default=default_cache())
    args = parser.parse_args()

    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    bench = BENCHES[args.bench](Path(args.cache))
    if bench is None:
        raise SystemExit(f"benchmark {args.bench} is not available here")
    model, _ = load_checkpoint(checkpoint_path(args.run), "cpu")
    stage = getattr(model, "pseudo_stage", None)
    if stage is None or not stage.fitted:
        raise SystemExit(f"{args.run}: this head carries no fitted pseudo-label stage (model.pseudo_weight 0)")
    model.eval()
    held = [v for v in training_split(args.run, bench, "val") if v.label == 0]
    groups = {"training normal": [video_terms(model, v) for v in training_split(args.run, bench) if v.label == 0],
              "held-out normal": [video_terms(model, v) for v in held]}
    groups.update(test_groups(model, bench))
    unit = float(stage.scale[1])
    weights = [stage.weight] + [w for w in args.stage_weights if w != stage.weight]
    where = "held-out normal videos" if stage.unit == "held-out" else "training normals"
    print(f"{args.run} on {args.bench}: stage weight {stage.weight:g}, its unit σ₁ {unit:.3f} (the fused logits' "
          f"sd on the {where}); snippets, mean ± sd, s with its 99th percentile and the share scoring above 0.5")
    for name, rows in groups.items():
        if not rows:
            continue
        head, z = np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
        fused = " | ".join(f"s@{w:g} {describe(head + w * unit * z, tail=True)}" for w in weights)
        print(f"  {name:<21} n {head.size:5d} | ℓ {describe(head)} | z₂ {describe(z)} | {fused}")
    print("  held-out normal videos (ℓ / z₂): " + ", ".join(
        f"{v.id.split('/')[-1]} {h.mean():.2f} / {z.mean():.2f}" for v, (h, z) in zip(held, groups["held-out normal"])))


if __name__ == "__main__":
    from vadpipe.errors import VadpipeError

    try:
        main()
    except VadpipeError as exc:         # a missing run or a damaged file: one line, not a traceback
        raise SystemExit(f"error: {exc}") from None
