"""A video whose scene changes part-way: clips of one camera, then another video, resized to the first clip's
frame and rate, for `vadpipe watch`'s block-by-block scene check (docs/watch.md, "A scene that changes"):

    python tools/scene_change_stream.py OUT.mp4 ../shared/data/ucsd-ped1/videos/test/normal/Train01{8,9}.mp4 \\
        ../shared/data/ucsd-ped1/videos/test/normal/Train02{0,1}.mp4 --then ../shared/media/vtest.avi --seconds 60
    vadpipe watch OUT.mp4 --run RUN --window 8
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np


def frames_of(path: Path, size, limit=None):
    """RGB frames of a video resized to ``size`` (w, h), at most ``limit``."""
    with av.open(str(path)) as src:
        for i, frame in enumerate(src.decode(video=0)):
            if limit is not None and i >= limit:
                return
            yield np.asarray(frame.to_image().convert("RGB").resize(size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("first", type=Path, nargs="+", help="clips of the first camera, in order")
    ap.add_argument("--then", type=Path, required=True, help="the video of the new scene")
    ap.add_argument("--seconds", type=float, default=60.0, help="how much of it (at the first clip's rate)")
    args = ap.parse_args()
    with av.open(str(args.first[0])) as probe:
        video = probe.streams.video[0]
        size, rate = (video.codec_context.width, video.codec_context.height), video.average_rate
    out = av.open(str(args.out), "w")
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    counts = []
    parts = [frames_of(p, size) for p in args.first] + [frames_of(args.then, size, int(args.seconds * rate))]
    for part in parts:
        counts.append(0)
        for image in part:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            counts[-1] += 1
    out.mux(stream.encode())
    out.close()
    change = sum(counts[:-1]) / float(rate)
    print(f"{args.out}: {sum(counts)} frames at {rate} fps, {size[0]}x{size[1]}; the scene changes at {change:.1f} s")


if __name__ == "__main__":
    main()
