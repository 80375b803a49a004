"""Do decord and PyAV give the same frames? The manifest records which one decoded a video (``decoder``)
but the recipe does not compare it: this script is the measurement that choice rests on.

    python tools/bench_decoders.py ../shared/data/ucsd-ped1/videos/test ../shared/media

For every video under the given files or folders (``--limit`` per argument), both backends decode the
whole clip at native size; it prints the frame counts and, where they agree, the largest difference of
one RGB value, the mean difference and the share of values that differ at all.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from vadpipe.errors import VideoDecodeError
from vadpipe.video import VideoReader, find_videos


def frames_of(path: Path, backend: str) -> np.ndarray:
    return np.stack(list(VideoReader(path, backend=backend).frames()))


def compare(path: Path) -> str:
    """One row: frames per backend and how far apart their pixels are."""
    try:
        by_decord, by_pyav = frames_of(path, "decord"), frames_of(path, "pyav")
    except VideoDecodeError as exc:
        return f"{path}: not compared ({exc})"
    if by_decord.shape != by_pyav.shape:
        return f"{path.name}: decord {by_decord.shape} vs pyav {by_pyav.shape}: different frames"
    diff = np.abs(by_decord.astype(np.int16) - by_pyav.astype(np.int16))
    return (f"{path.name}: {len(diff)} frames {diff.shape[2]}x{diff.shape[1]}, max |diff| {int(diff.max())}, "
            f"mean {diff.mean():.2e}, values that differ {100 * (diff > 0).mean():.4f} %")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="video files or folders (searched recursively)")
    ap.add_argument("--limit", type=int, default=4, help="videos per argument (default 4)")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("decord") is None:
        print("decord is not installed here: nothing to compare (PyAV decodes every video)")
        return 1
    for given in args.paths:
        for path in find_videos(given)[:args.limit]:
            print(compare(path), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
