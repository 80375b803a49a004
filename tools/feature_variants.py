"""Feature variants that are not recipes of the product, made to be probed and benchmarked (measured in
docs/localisation.md, "Motion and time from the same network" and, ``noise``, "Each frame and its mirror
image"; none kept).

- ``diff``: every snippet's frame differences (frame t minus frame t - 1 after the recipe's resize; the
  first difference repeated), shown to the same Inception I3D as images 128 + GAIN x difference: the
  RGB-difference input of TSN (Wang et al., 2016), through the RGB network as it is, since no flow
  weights are reachable here.
- ``shift``: the ``frame`` preset's features of the snippet grid moved SHIFT frames later (snippets start
  at SHIFT, SHIFT + 16, ...): each snippet seen a second time, half a snippet off.
- ``noise MIRROR OUT``: from a ``--mirror`` store, a second view that is the frame view plus Gaussian
  noise with the per-dimension sd of (mirror view - frame view) on MIRROR/train (clipped at 0, as the
  pooled features are; one draw per snippet): as far from the frame as the mirror image, but no image.
- ``combine concat A B OUT``: two stores of the same videos side by side (D = D_A + D_B); ``combine views
  A B OUT``: B as a second view beside A's, in crop mode ``mirror``'s layout (C = 2), so that training
  draws one view a step and ``vadpipe eval --crops 1`` scores A's view alone. A store a snippet shorter
  (the shifted grid) has its last row repeated.

    python tools/feature_variants.py diff ../shared/data/ucsd-ped1/videos OUT/diff --short-side 316
    python tools/feature_variants.py shift ../shared/data/ucsd-ped1/videos OUT/shift --short-side 316
    python tools/feature_variants.py combine views CACHE/ped1-inception-frame316 OUT/shift OUT/views
    python tools/feature_variants.py noise CACHE/ped1-inception-frame316-mirror OUT/noise
    python tools/bench_accuracy.py --bench --extra "ped1-views=OUT/views/train:OUT/views/test:GT" ...

``diff`` and ``shift`` read VIDEOS/{train,test} and write OUT/{train,test} as ``vadpipe extract`` does;
their recipes carry ``extra.variant`` (a recipe id of its own, so they never pass for the ``frame``
preset's features), and ``combine`` adds ``extra.combined``. The variants patch two functions of the
extraction (the whole-frame crop, the reader's frames) for the length of this process only.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def with_variant(recipe, **marks):
    """``recipe`` with ``marks`` added to its ``extra`` (and so a recipe id of its own)."""
    return recipe.replace(extra=tuple(sorted(dict(recipe.extra, **marks).items())))


def difference_images(frames: torch.Tensor, gain: float) -> torch.Tensor:
    """(N, T, 3, H, W) frames -> 128 + gain x (frame t - frame t-1), clipped to the pixel range and of the
    frames' dtype; the first difference is repeated so that T stays."""
    x = frames.to(torch.float32)
    d = x[:, 1:] - x[:, :-1]
    d = torch.cat([d[:, :1], d], dim=1)
    img = (128.0 + gain * d).clamp(0, 255)
    return img.round().to(torch.uint8) if frames.dtype == torch.uint8 else img.to(frames.dtype)


def patch_diff(gain: float) -> dict:
    from vadpipe.extractors import transforms

    whole_frame = transforms.crop

    def crop(frames, size, mode):
        return difference_images(frames, gain).unsqueeze(0) if mode == "none" else whole_frame(frames, size, mode)

    transforms.crop = crop
    return {"variant": f"diff-gain{gain:g}"}


def patch_shift(shift: int) -> dict:
    from vadpipe.video import VideoReader

    all_frames = VideoReader.frames

    def frames(self, *args, **kwargs):
        return itertools.islice(all_frames(self, *args, **kwargs), shift, None)

    VideoReader.frames = frames
    return {"variant": f"shift{shift}"}


def extract_variant(videos: Path, out: Path, short_side: int, marks: dict) -> None:
    from vadpipe import extract

    plain = extract.build_recipe
    extract.build_recipe = lambda *a, **k: with_variant(plain(*a, **k), **marks)
    for split in ("train", "test"):
        summary, _ = extract.extract_folder(videos / split, out / split, backbone="i3d-inception", preset="frame",
                                            short_side=short_side, progress=False, log=print)
        if summary.failed:
            raise SystemExit(f"{videos / split}: {summary.failed} video(s) failed to extract")


def write_derived(source, out: Path, recipe, make) -> Tuple[int, tuple]:
    """A feature store at ``out`` under ``recipe`` holding ``make(video id, record)`` for every video of the
    store ``source`` (its manifest records kept, their crops and recipe id updated); returns (videos, the
    last array's shape)."""
    from vadpipe import atomic
    from vadpipe.features import FeatureStore

    target = FeatureStore(out)
    target.write_recipe(recipe)
    records = source.all_records()
    for vid, record in records.items():
        x = np.ascontiguousarray(make(vid, record), dtype=np.float32)
        atomic.save_npy(out / record.file, x)
        target.append(dataclasses.replace(record, crops=x.shape[1], recipe_id=recipe.recipe_id))
    target.merge(0, 1)
    return len(records), x.shape


def combine(mode: str, a: Path, b: Path, out: Path) -> None:
    from vadpipe.features import FeatureStore

    first, second = FeatureStore(a), FeatureStore(b)
    recipe = first.recipe()
    if mode == "concat":
        recipe = with_variant(recipe.replace(feature_dim=recipe.feature_dim + second.recipe().feature_dim),
                              combined=f"concat:{second.recipe().recipe_id}")
    else:
        recipe = with_variant(recipe.replace(crop="mirror"), combined=f"views:{second.recipe().recipe_id}")
    others = second.all_records()

    def both(vid, record):
        if vid not in others:
            raise SystemExit(f"{b}: no features for {vid}")
        x = np.asarray(first.load(record), dtype=np.float32)
        y = np.asarray(second.load(others[vid]), dtype=np.float32)
        y = np.concatenate([y, np.repeat(y[-1:], max(0, len(x) - len(y)), axis=0)])[:len(x)]
        return np.concatenate([x, y], axis=2 if mode == "concat" else 1)

    videos, shape = write_derived(first, out, recipe, both)
    print(f"{out}: {videos} videos, (T, C, D) like {shape}")


def noise_views(mirror: Path, out: Path, seed: int = 0) -> None:
    from vadpipe.features import FeatureStore

    train = FeatureStore(mirror / "train")
    changes = np.concatenate([np.diff(np.asarray(train.load(r), dtype=np.float32), axis=1)[:, 0]
                              for r in train.all_records().values()])
    sd = changes.std(axis=0)
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        source = FeatureStore(mirror / split)

        def with_noise(vid, record):
            frame = np.asarray(source.load(record), dtype=np.float32)[:, :1]
            noisy = np.maximum(frame + rng.normal(size=frame.shape).astype(np.float32) * sd, 0)
            return np.concatenate([frame, noisy], axis=1)

        write_derived(source, out / split, with_variant(source.recipe(), variant=f"noise-like-mirror-seed{seed}"),
                      with_noise)
    print(f"{out}: noise sd {sd.mean():.4f} a dimension on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("diff", "shift"):
        p = sub.add_parser(name)
        p.add_argument("videos", type=Path, help="folder with train/ and test/ videos")
        p.add_argument("out", type=Path)
        p.add_argument("--short-side", type=int, default=316)
        if name == "diff":
            p.add_argument("--gain", type=float, default=2.0)
        else:
            p.add_argument("--shift", type=int, default=8)
    p = sub.add_parser("noise")
    p.add_argument("mirror", type=Path, help="a --mirror feature folder with train/ and test/")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("combine")
    p.add_argument("mode", choices=("concat", "views"))
    p.add_argument("a", type=Path, help="feature folder with train/ and test/ (view 0, or the first features)")
    p.add_argument("b", type=Path, help="the same videos' other feature folder")
    p.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.what == "noise":
        noise_views(args.mirror, args.out, args.seed)
        return
    if args.what == "combine":
        for split in ("train", "test"):
            combine(args.mode, args.a / split, args.b / split, args.out / split)
        return
    marks = patch_diff(args.gain) if args.what == "diff" else patch_shift(args.shift)
    extract_variant(args.videos, args.out, args.short_side, marks)


if __name__ == "__main__":
    main()
