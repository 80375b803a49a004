"""The same clips under other light: every video under SRC written again under OUT (same relative paths, so
ground truth still matches by name) with its pixel values scaled by ``--gain`` and, with ``--noise``,
seeded Gaussian sensor noise added (a camera's auto-gain in the dark). A darker exposure, for measuring how
the head and its scene check (vadpipe/scene_check.py) read the training camera at dusk
(docs/localisation.md, "A scene the head never saw"):

    python tools/relight_clips.py ../shared/data/ucsd-ped1/videos/test DUSK --gain 0.25 --noise 6
    vadpipe extract DUSK -o DUSK-FEATURES --backbone i3d-inception --preset frame --short-side 316
    vadpipe eval --run RUN --features DUSK-FEATURES --gt ../shared/data/ucsd-ped1/test_gt.json

Relit normal clips beside the originals in a training set (``--suffix=-dusk`` names them apart) show the head
that light as normal. With ``--ramp-from G`` the gain moves from G to ``--gain`` over each clip and the noise
grows as the light falls (sd ``--noise`` · (1 − g) / (1 − ``--gain``) at gain g): clips relit 1 → 0.85, 0.85 → 0.7,
... and joined make one slow fade. Frame rate and size are kept; clips are written as H.264 (a re-encode, as any camera's stream is one).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Tuple

import av
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def relit(image: np.ndarray, gain: float, noise: float, rng: np.random.Generator, blur: float = 0.0) -> np.ndarray:
    """An RGB frame (H, W, 3) uint8 with its values times ``gain`` plus N(0, ``noise``²) per pixel (one draw
    shared by the three channels: luminance noise), rounded and clipped; then, with ``blur``, a Gaussian blur
    of that radius in pixels (a spatial denoiser, as one would run before extraction)."""
    x = image.astype(np.float32) * gain
    if noise > 0:
        x += rng.normal(0.0, noise, size=image.shape[:2] + (1,)).astype(np.float32)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if blur > 0:
        from PIL import Image, ImageFilter

        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(blur)))
    return out


def frame_light(gain: float, noise: float, ramp_from: Optional[float], t: float) -> Tuple[float, float]:
    """(gain, noise sd) at the share ``t`` of a clip: ``gain`` and ``noise`` throughout, or with ``ramp_from``
    a fade from that gain to ``gain`` with the noise growing as the light falls (``noise`` at ``gain``)."""
    if ramp_from is None:
        return gain, noise
    g = ramp_from + (gain - ramp_from) * t
    return g, (noise * (1.0 - g) / (1.0 - gain) if gain < 1.0 else noise)


def relight_video(src: Path, dst: Path, gain: float, noise: float, ramp_from: Optional[float], seed: int,
                  blur: float = 0.0) -> int:
    """Write ``src`` relit to ``dst`` (through a temporary file, so a crash leaves none); its frame count."""
    from vadpipe.video import probe

    rng = np.random.default_rng(seed)
    total = probe(src, count="packets").frames if ramp_from is not None else 1   # a fade needs the clip's length
    tmp = dst.with_name(dst.name + ".part")      # no video suffix: `vadpipe extract` never takes a leftover
    with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4") as out:
        video = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.codec_context.width, video.codec_context.height, "yuv420p"
        count = 0
        for frame in inp.decode(video=0):
            g, sd = frame_light(gain, noise, ramp_from, count / max(total - 1, 1))
            image = relit(frame.to_ndarray(format="rgb24"), g, sd, rng, blur)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            count += 1
        out.mux(stream.encode())
    tmp.replace(dst)
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="folder of videos (searched recursively)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--gain", type=float, required=True, help="pixel values times this (0.25: two stops darker)")
    ap.add_argument("--noise", type=float, default=0.0, help="sd of added sensor noise, in 0-255 levels")
    ap.add_argument("--ramp-from", type=float, default=None, metavar="G",
                    help="fade from gain G to --gain over each clip, the noise growing as the light falls")
    ap.add_argument("--blur", type=float, default=0.0, help="then a Gaussian blur of this radius (px): a denoiser")
    ap.add_argument("--suffix", default="", help="added to each file's name (relit clips beside the originals "
                                                 "in one training set need names of their own)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    videos = sorted(p for p in args.src.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SystemExit(f"{args.src}: no video found")
    for i, src in enumerate(videos):
        rel = src.relative_to(args.src)
        dst = args.out / rel.parent / f"{rel.stem}{args.suffix}.mp4"
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        frames = relight_video(src, dst, args.gain, args.noise, args.ramp_from, seed=args.seed * 100003 + i,
                               blur=args.blur)
        fade = "" if args.ramp_from is None else f"{args.ramp_from} → "
        print(f"{dst}: {frames} frames, gain {fade}{args.gain}, noise {args.noise}"
              + (f", blur {args.blur}" if args.blur else ""))


if __name__ == "__main__":
    main()
