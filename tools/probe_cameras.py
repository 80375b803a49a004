"""Does a clip's camera decide its score? For each trained run of a config on a world whose clips carry a camera
(the demo world's ``world.json``), the held-out normal clips and the test clips are grouped by whether their
camera has a normal clip among the videos the run's fitted terms saw (itself left out), and each group is
described by the head's mean logit, the normal statistics' mean standardised distance z, and the level logits
of its frames (the median frame and the 0.99 quantile, means over clips) with the share of frames at or above
0.5. A camera the terms never met puts a normal clip where an event would be: the demo world's 10 normal
training clips cover 8 cameras, so a held-out clip is nearly always its camera's only one (docs/localisation.md,
"The held-out normal videos in the fitted terms").

With ``model.terms_fit`` all the held-out clips are among the terms' videos themselves, so their figures are
in-sample (calibration scores them cross-fitted). A diagnostic of trained runs (it reads the test labels),
never a way to choose anything:

    python tools/bench_accuracy.py --bench demo --config default=default --runs RUNS
    python tools/probe_cameras.py RUNS/default --bench demo
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from normal_weight_sweep import recorded_split
from probe_ensemble import open_bench, run_set_parser

Row = Tuple[float, float, float, float, float]   # head logit, z, median frame, 0.99 quantile, share >= 0.5


def world_cameras(gt: str) -> Dict[str, int]:
    """Each clip's camera by clip name, from the ``world.json`` beside a world's ground truth."""
    path = Path(gt).parent / "world.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no world description with cameras (a demo world's world.json)")
    return {c["name"]: int(c["camera"]) for c in json.loads(path.read_text())["clips"]}


def clip_row(model, video, frame_scores: np.ndarray) -> Row:
    """One clip's figures (see the module docstring)."""
    import torch

    from vadpipe.fitted_terms import crop_rows
    from vadpipe.models.levels import logit64
    from vadpipe.models.normal_stats import logit

    x = crop_rows(video, torch.device("cpu"))
    with torch.no_grad():
        head = float(logit(model(x).scores.float()).mean())
        stats = getattr(model, "normal_stats", None)
        z = float(((stats.distance(x) - stats.scale[0]) / stats.scale[1]).mean()) if stats is not None else float("nan")
    f = logit64(np.asarray(frame_scores, dtype=np.float64))
    return head, z, float(np.median(f)), float(np.quantile(f, 0.99)), float(np.mean(frame_scores >= 0.5))


def camera_groups(model, ckpt, run: Path, bench, test, cameras: Dict[str, int]) -> Dict[str, List[Row]]:
    """The run's held-out normal clips and test clips, grouped by kind and by whether a normal clip of their
    camera (itself left out) is among the videos its terms saw."""
    from vadpipe.calibration import calibration_frames
    from vadpipe.evaluate import score_feature_set
    from vadpipe.fitted_terms import terms_videos

    model.eval()
    cam = lambda video: cameras[video.id.split("/")[-1]]   # noqa: E731
    data, split = recorded_split(run, bench, "cannot group its clips")
    seen = [v for v in terms_videos(data, split, ckpt.model_config.terms_fit == "all") if v.label == 0]
    held = data.subset([i for i in split.held_idx if data.videos[i].label == 0])
    groups: Dict[str, List[Row]] = {}
    for part, videos in (("held-out", held), ("test", test)):
        scored = score_feature_set(model, videos, "cpu")
        for v in (v for v in videos.videos if v.label in (0, 1)):
            covered = any(cam(o) == cam(v) and o.id != v.id for o in seen)
            frames = calibration_frames(scored.scores[v.id], v.frames, scored.snippet_len, scored.stride,
                                        scored.frame_mode)
            kind = "normal" if v.label == 0 else "anomalous"
            key = f"{part} {kind}, camera {'with' if covered else 'without'} a normal clip in the terms"
            groups.setdefault(key, []).append(clip_row(model, v, frames))
    return groups


def main() -> None:
    args = run_set_parser(__doc__).parse_args()
    from vadpipe.checkpoint import load_checkpoint

    bench, test, _ = open_bench(args)
    cameras = world_cameras(bench.gt)
    pooled: Dict[str, List[Row]] = {}
    for seed in args.seeds:
        run = args.runs / f"{args.bench}-{seed}"
        model, ckpt = load_checkpoint(run, "cpu")
        for key, rows in camera_groups(model, ckpt, run, bench, test, cameras).items():
            pooled.setdefault(key, []).extend(rows)
    print(f"{args.runs} on {args.bench} ({len(args.seeds)} runs; means over clips and runs): head logit, z, "
          "level logit of the median frame and of the 0.99 quantile, frames >= 0.5")
    for key in sorted(pooled):
        a = np.array(pooled[key])
        print(f"  {key:62s} n {len(a):3d}  head {a[:, 0].mean():6.2f}  z {a[:, 1].mean():6.1f}  median "
              f"{a[:, 2].mean():7.2f}  q0.99 {a[:, 3].mean():7.2f}  >= 0.5 {100 * a[:, 4].mean():5.1f} %")


if __name__ == "__main__":
    main()
