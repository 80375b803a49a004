"""Which normal videos set a run's `auto` threshold, and does each head of a pair flag events at its own?
For each trained run of a config (bench_accuracy's layout: RUNS/CONFIG/BENCH-SEED), every held-out normal
training video (the split its last.pt records) is listed with its peak frame score and the share of its
frames at or above the threshold, as each head sees it: the run's model at its checkpoint's `auto`
threshold and, for a pair (``model.partner``), each of its two heads at the 0.99 quantile of its own scores
of the same videos. With ``--videos DIR`` each video's mean absolute frame difference (grey levels, a
crowd-density proxy: more people, more moving pixels) is listed too.

Then per head: the share of anomalous test frames at or above its threshold (hit) and of normal test
frames (false alarms), and for a pair the two heads' own thresholds taken together (a frame flagged when
either head reaches its threshold); then the model's hit and false alarms at each quantile its checkpoint
calibrated (``vadpipe score --threshold auto:Q``); with ``--per-test-video`` each normal test video's share
of frames at or above the model's threshold. A diagnostic that reads test labels, not a way to choose
a model.

    python tools/bench_accuracy.py --bench ped1 --config "pairreal=default+model.partner=rtfm-real" --runs RUNS
    python tools/probe_heldout.py RUNS/pairreal --bench ped1 --videos ../shared/data/ucsd-ped1/videos/train
    python tools/probe_heldout.py RUNS/default --bench ped1-swap --per-test-video
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bench_accuracy import events_and_normals, test_frame_level
from normal_weight_sweep import training_split
from probe_calibration import frame_scores
from probe_ensemble import open_bench, run_set_parser


def motion(path: Path) -> Optional[float]:
    """Mean absolute difference of consecutive grey frames (None when the file is not there)."""
    import av

    if not path.is_file():
        return None
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)])
    return float(np.abs(np.diff(frames, axis=0)).mean()) if len(frames) > 1 else None


def heads_of(model) -> Dict[str, object]:
    """The model and, for a pair, each of its heads by name."""
    return {"model": model, **({"head": model.primary, "partner": model.partner} if hasattr(model, "partner") else {})}


def test_frames(model, test, gts):
    """(anomalous frames, normal frames) of the test set, scored by ``model``."""
    events, normal = events_and_normals(test_frame_level(model, test, gts))
    return np.concatenate(events), np.concatenate(normal)


def main() -> None:
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    parser = run_set_parser(__doc__)
    parser.add_argument("--videos", type=Path, default=None,
                        help="the training videos' folder (ids are paths under it, without .mp4): adds motion")
    parser.add_argument("--per-test-video", action="store_true",
                        help="also each normal test video's share of frames at or above the model's auto threshold")
    args = parser.parse_args()
    bench, test, gts = open_bench(args)
    totals: Dict[str, List[tuple]] = {}
    by_quantile: Dict[str, List[tuple]] = {}
    normal_tests = [v for v in test.videos if v.label == 0]
    per_test: Dict[str, List[float]] = {v.id: [] for v in normal_tests}
    for seed in args.seeds:
        run = args.runs / f"{args.bench}-{seed}"
        model, ckpt = load_checkpoint(checkpoint_path(run), "cpu")
        held = [v for v in training_split(run, bench, "val") if v.label == 0]
        heads = heads_of(model)
        scores = {name: dict(zip((v.id for v in held), frame_scores(m, held, test.snippet_len, test.stride)))
                  for name, m in heads.items()}
        thresholds = {name: float(np.quantile(np.concatenate(list(s.values())), 0.99)) for name, s in scores.items()}
        thresholds["model"] = ckpt.calibration["normal_frame_score_quantiles"]["0.99"]
        print(f"{run} ({len(held)} held-out normal videos): peak frame score / share of frames at or above "
              f"the threshold, percent; thresholds " + ", ".join(f"{n} {t:.3f}" for n, t in thresholds.items()))
        for v in held:
            cells = [f"{n} {s[v.id].max():.3f} / {100 * np.mean(s[v.id] >= thresholds[n]):5.1f}"
                     for n, s in scores.items()]
            moved = motion(args.videos / f"{v.id}.mp4") if args.videos else None
            print(f"  {v.id:32s} " + " | ".join(cells) + (f" | motion {moved:.1f}" if moved is not None else ""))
        flagged = {}
        for name, m in heads.items():
            pos, neg = test_frames(m, test, gts)
            flagged[name] = (pos >= thresholds[name], neg >= thresholds[name])
            if name == "model":
                for q, t in ckpt.calibration["normal_frame_score_quantiles"].items():
                    by_quantile.setdefault(q, []).append((100 * np.mean(pos >= t), 100 * np.mean(neg >= t)))
        if args.per_test_video:
            for v, f in zip(normal_tests, frame_scores(model, normal_tests, test.snippet_len, test.stride)):
                per_test[v.id].append(100 * np.mean(f >= thresholds["model"]))
        if len(heads) > 1:
            flagged["either head"] = tuple(flagged["head"][i] | flagged["partner"][i] for i in (0, 1))
        for name, (pos, neg) in flagged.items():
            totals.setdefault(name, []).append((100 * pos.mean(), 100 * neg.mean()))
    print(f"test frames at or above each threshold, percent, mean ± sd over {len(args.seeds)} seeds:")
    for name, rows in totals.items():
        print(f"  {name:12s} " + hit_line(rows))
    print("the model at each calibrated quantile (--threshold auto:Q):")
    for q, rows in by_quantile.items():
        print(f"  auto:{q:7s} " + hit_line(rows))
    if args.per_test_video:
        print("each normal test video: share of its frames at or above the model's auto threshold, percent, "
              "mean over seeds (per seed)")
        for vid, shares in per_test.items():
            print(f"  {vid:32s} {np.mean(shares):5.1f} ({' '.join(f'{x:.0f}' for x in shares)})")


def hit_line(rows: List[tuple]) -> str:
    """'hit ... false alarms ...' of per-seed (hit, false-alarm) percentages, mean ± sd."""
    a = np.array(rows)
    sd = a.std(0, ddof=1) if len(a) > 1 else np.zeros(2)
    return (f"hit (anomalous frames) {a[:, 0].mean():5.1f} ± {sd[0]:4.1f}   "
            f"false alarms (normal frames) {a[:, 1].mean():4.1f} ± {sd[1]:4.1f}")


if __name__ == "__main__":
    main()
