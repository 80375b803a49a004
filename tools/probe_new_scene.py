"""Can the normal statistics tell a new scene from a long event, score aside? (vadpipe/scene_check.py)

For each trained run of a config: every normal training video's *quiet z* (the ``--shares`` quantiles of its
snippets' standardised distance to a normal Gaussian fitted without it: the folds the head's statistics
standardise on) and its largest value, the *bound*; then the quiet z of the benchmark's test clips (by
kind: normal, anomalous with events over less than 90 % of the frames, over 90 % or more) and of each
``--new NAME=FEATURES`` folder (clips of cameras the run never saw, extracted with the run's recipe), with
the share of clips above the bound and, among the clips the run's ``auto`` threshold flags over 90 % of
their frames (the clips ``vadpipe score`` notes), the share above it. A diagnostic of trained runs (it
reads test labels), never a way to choose anything for them:

    python tools/bench_accuracy.py --bench ped1 --config default=default --runs RUNS
    python tools/probe_new_scene.py RUNS/default --bench ped1 --new media=CACHE/media-inception-frame316
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from normal_weight_sweep import recorded_split
from probe_ensemble import open_bench, run_set_parser

LONG_EVENT = 0.9      # an anomalous clip whose events cover at least this share of its frames


def clip_figures(model, threshold: float, feature_set, shares) -> Dict[str, Tuple[np.ndarray, bool]]:
    """Each clip's quiet z at ``shares`` and whether ``vadpipe score`` would note it (flagged throughout)."""
    from vadpipe.calibration import calibration_frames
    from vadpipe.evaluate import score_feature_set
    from vadpipe.scene_check import quiet_z, snippet_z
    from vadpipe.threshold import is_whole_flagged

    scored = score_feature_set(model, feature_set, "cpu")
    out = {}
    for v in feature_set.videos:
        z = snippet_z(model.normal_stats, v.raw())
        frames = calibration_frames(scored.scores[v.id], v.frames, scored.snippet_len, scored.stride,
                                    scored.frame_mode)
        out[v.id] = (np.array([quiet_z(z, s) for s in shares]), is_whole_flagged(frames, threshold))
    return out


def event_share(gt, video_id: str) -> float:
    """The share of a test clip's frames inside its events (0 for a normal clip)."""
    from vadpipe.groundtruth import match_ids

    found = match_ids([video_id], list(gt)).get(video_id)
    if not found:
        return float("nan")
    g = gt[found]
    if g.mask is not None:
        return float(np.mean(g.mask > 0.5))
    return sum(e - s for s, e in g.intervals) / max(g.frames or 1, 1)


def main() -> None:
    parser = run_set_parser(__doc__)
    parser.add_argument("--new", action="append", default=[], metavar="NAME=FEATURES",
                        help="a feature folder of clips from cameras the runs never saw (their recipe)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.25, 0.5],
                        help="quantiles of a clip's snippet z (vadpipe.scene_check.QUIET_SHARE: 0.1)")
    args = parser.parse_args()
    import torch

    from vadpipe.checkpoint import load_checkpoint
    from vadpipe.data import open_features
    from vadpipe.fitted_terms import crop_rows, snippet_subset, terms_videos
    from vadpipe.scene_check import held_out_quiet_z, scene_heads
    from vadpipe.threshold import resolve_threshold

    bench, test, gt = open_bench(args)
    news = {name: open_features(path, list_anomalous="none")
            for name, path in (item.split("=", 1) for item in args.new)}
    bounds: List[np.ndarray] = []
    training: List[np.ndarray] = []
    groups: Dict[str, List[Tuple[np.ndarray, bool, int]]] = {}    # (quiet z, noted, run)
    for r, seed in enumerate(args.seeds):
        run = args.runs / f"{args.bench}-{seed}"
        model, ckpt = load_checkpoint(run, "cpu")
        if scene_heads(model) != [model]:
            raise SystemExit(f"{run}: this probe reads one head's fitted normal statistics, and the run has "
                             f"{len(scene_heads(model))} sets (a bagged ensemble or a pair: `vadpipe eval --run` "
                             "and probe_relit.py read them all)")
        model.eval()
        data, split = recorded_split(run, bench, "cannot find its normal videos")
        normals = [v for v in terms_videos(data, split, ckpt.model_config.terms_fit == "all") if v.label == 0]
        rows = [crop_rows(v, torch.device("cpu")) for v in normals]
        per_share = np.array([held_out_quiet_z(model.normal_stats, rows, snippet_subset(ckpt.train_config.seed, 20000), s)
                              for s in args.shares])                  # (shares, videos)
        training.append(per_share)
        bounds.append(per_share.max(axis=1))
        threshold = resolve_threshold("auto", ckpt.calibration).value
        for vid, (q, noted) in clip_figures(model, threshold, test, args.shares).items():
            share = event_share(gt, vid)
            kind = "test normal" if share == 0 else \
                f"test anomalous, events {'>=' if share >= LONG_EVENT else '<'} {LONG_EVENT:.0%}"
            groups.setdefault(kind, []).append((q, noted, r))
        for name, feature_set in news.items():
            for q, noted in clip_figures(model, threshold, feature_set, args.shares).values():
                groups.setdefault(f"new: {name}", []).append((q, noted, r))
    bounds_a = np.array(bounds)                      # (runs, shares)
    print(f"{args.runs} on {args.bench}, {len(args.seeds)} runs: the quiet z (quantile of a clip's snippet z) and the "
          "share of clips above each run's bound (the largest held-out quiet z of its normal training videos)")
    for j, share in enumerate(args.shares):
        train_all = np.concatenate([t[j] for t in training])
        print(f"\nquantile {share:g}: normal training videos held out: median {np.median(train_all):.2f}, "
              f"bound {bounds_a[:, j].mean():.2f} ± {bounds_a[:, j].std():.2f} over runs")
        for kind in sorted(groups):
            rows = groups[kind]
            q = np.array([x[0][j] for x in rows])
            above = np.array([x[0][j] > bounds_a[x[2], j] for x in rows])
            noted = np.array([x[1] for x in rows])
            among = f"{100 * above[noted].mean():5.1f} % of {noted.sum():3d}" if noted.any() else "   -  of   0"
            print(f"  {kind:34s} n {len(rows):4d}  median {np.median(q):6.2f}  above bound {100 * above.mean():5.1f} %"
                  f"   noted clips above it {among}")


if __name__ == "__main__":
    main()
