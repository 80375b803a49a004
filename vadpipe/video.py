"""Video decoding: decord first, PyAV as fallback, streamed snippet by snippet.

Container metadata often lies about frame counts (AVI indexes, VFR MP4s,
truncated files). The frames actually decoded are the truth: ``VideoReader``
counts them as it streams and ``VideoInfo.metadata_frames`` keeps what the
container claimed, so a disagreement is visible.

Frames are uint8 RGB (H, W, 3). Resizing (short side N, aspect kept) happens
in the decoder (decord's and swscale's own scalers), so a full-resolution
frame never reaches Python when a smaller one is asked for.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .errors import VideoDecodeError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
BACKENDS = ("auto", "decord", "pyav")


@dataclass
class VideoInfo:
    path: str
    frames: int                  # decoded count when known (frames_exact), else the best estimate
    fps: float
    width: int
    height: int
    codec: str
    rotation: int = 0            # degrees, from the container's display matrix / metadata
    decoder: str = ""            # "decord" or "pyav"
    metadata_frames: Optional[int] = None   # what the container claimed
    frames_exact: bool = False   # True once every frame was decoded and counted
    notes: List[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0

    @property
    def metadata_disagrees(self) -> bool:
        return self.frames_exact and self.metadata_frames is not None and self.metadata_frames != self.frames

    def to_dict(self) -> dict:
        out = asdict(self)
        out["duration"] = round(self.duration, 3)
        out["metadata_disagrees"] = self.metadata_disagrees
        return out


@dataclass
class Snippet:
    index: int             # snippet number within the video
    start_frame: int       # first (output) frame it covers
    frames: np.ndarray     # (L, H, W, 3) uint8 RGB
    valid: int             # how many of the L frames are real (the rest repeat the last one)


def find_videos(root: str | os.PathLike) -> List[Path]:
    """Video files under ``root`` (recursive, sorted for determinism); a file is returned as is."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.exists():
        raise VideoDecodeError(f"{root}: no such file or folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def short_side_size(width: int, height: int, short_side: Optional[int]) -> Tuple[int, int]:
    """(width, height) after resizing so the short side is ``short_side`` (aspect kept, rounded)."""
    if not short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def resample_indices(native_fps: float, target_fps: Optional[float]) -> "_Resampler":
    return _Resampler(native_fps, target_fps)


class _Resampler:
    """Keeps the source frames nearest to a ``target_fps`` grid, streaming (no lookahead)."""

    def __init__(self, native_fps: float, target_fps: Optional[float]):
        self.step = native_fps / target_fps if target_fps and native_fps > 0 else 1.0
        self.next_out = 0

    def keep(self, src_index: int) -> int:
        """How many times source frame ``src_index`` appears in the output (0, 1, or more when upsampling)."""
        if self.step == 1.0:
            return 1
        count = 0
        while round(self.next_out * self.step) == src_index:
            count += 1
            self.next_out += 1
        return count


# --- backends -----------------------------------------------------------------

def _probe_pyav(path: str) -> VideoInfo:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            meta_frames = stream.frames or None
            if not meta_frames and stream.duration and stream.time_base and fps:
                meta_frames = int(round(float(stream.duration * stream.time_base) * fps))
            rotation = int(float(stream.metadata.get("rotate", 0) or 0))
            return VideoInfo(path=path, frames=meta_frames or 0, fps=fps, width=stream.width, height=stream.height,
                             codec=stream.codec_context.name, rotation=rotation, decoder="pyav",
                             metadata_frames=meta_frames)
    except VideoDecodeError:
        raise
    except Exception as exc:  # av raises many types (InvalidDataError, OSError...)
        raise VideoDecodeError(f"{path}: cannot open as video ({_short(exc)})") from None


def _iter_pyav(path: str, size: Optional[Tuple[int, int]], skip: int = 0) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoDecodeError(f"{path}: cannot open as video ({_short(exc)})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= skip:
                    if size is not None:
                        yield frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                    else:
                        yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as exc:
            if index == 0:
                raise VideoDecodeError(f"{path}: decoding failed ({_short(exc)})") from None
            # A truncated/corrupt tail: keep what decoded, like every player does.
            return


def _iter_decord(path: str, size: Optional[Tuple[int, int]], chunk: int = 16) -> Iterator[np.ndarray]:
    import decord

    kwargs = {"num_threads": 1}
    if size is not None:
        kwargs.update(width=size[0], height=size[1])
    reader = decord.VideoReader(path, ctx=decord.cpu(0), **kwargs)
    n = len(reader)
    for start in range(0, n, chunk):
        batch = reader.get_batch(list(range(start, min(start + chunk, n)))).asnumpy()
        yield from batch


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except Exception:
        return False
    return True


def _short(exc: BaseException) -> str:
    """First line of an exception's message, without errno noise."""
    text = (getattr(exc, "strerror", None) or str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- reader ---------------------------------------------------------------------

class VideoReader:
    """Streams one video as frames or fixed-length snippets.

    ``short_side`` resizes in the decoder; ``fps`` resamples to that rate
    (None = native). ``backend`` is "auto" (decord, falling back to PyAV when
    decord is missing or fails), "decord" or "pyav". After a full pass,
    ``info.frames`` is the decoded count and ``info.frames_exact`` is True.
    """

    def __init__(self, path: str | os.PathLike, short_side: Optional[int] = None, fps: Optional[float] = None,
                 backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        self.path = str(path)
        if not os.path.exists(self.path):
            raise VideoDecodeError(f"{self.path}: no such file")
        if os.path.isdir(self.path):
            raise VideoDecodeError(f"{self.path}: is a folder, not a video file")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(f"{self.path}: empty file")
        self.info = _probe_pyav(self.path)
        if self.info.width <= 0 or self.info.height <= 0:
            raise VideoDecodeError(f"{self.path}: video stream has no frame size")
        self.backend = backend if backend != "auto" else ("decord" if _decord_available() else "pyav")
        self.info.decoder = self.backend
        self.target_fps = fps
        self.size = short_side_size(self.info.width, self.info.height, short_side) if short_side else None
        self.output_fps = float(fps) if fps else self.info.fps

    def _source_frames(self) -> Iterator[np.ndarray]:
        """Decoded frames at native rate; decord failures fall back to PyAV where they stopped."""
        done = 0
        if self.backend == "decord":
            try:
                for frame in _iter_decord(self.path, self.size):
                    yield frame
                    done += 1
                return
            except Exception as exc:  # decord raises DECORDError / RuntimeError on bad streams
                self.info.notes.append(f"decord failed after {done} frames ({_short(exc)}); PyAV took over")
                self.backend = self.info.decoder = "pyav"
        yield from _iter_pyav(self.path, self.size, skip=done)

    def frames(self) -> Iterator[np.ndarray]:
        """Output frames (resized, resampled). Counts them into ``info`` once exhausted."""
        resampler = resample_indices(self.info.fps, self.target_fps)
        produced = 0
        source_count = 0
        for src_index, frame in enumerate(self._source_frames()):
            source_count += 1
            for _ in range(resampler.keep(src_index)):
                produced += 1
                yield frame
        if source_count == 0:
            raise VideoDecodeError(f"{self.path}: no decodable frames")
        self.info.frames = produced
        self.info.frames_exact = True
        if self.target_fps:
            self.info.fps = self.output_fps
            self.info.notes.append(f"resampled from {source_count} frames to {produced} at {self.output_fps:g} fps")
        if self.info.metadata_frames is not None and self.info.metadata_frames != source_count:
            self.info.notes.append(f"container claimed {self.info.metadata_frames} frames, decoded {source_count}")

    def snippets(self, length: int = 16, stride: int = 16) -> Iterator[Snippet]:
        """Consecutive snippets of ``length`` frames every ``stride`` frames.

        The last partial snippet is kept and padded by repeating its last
        frame, so that with stride == length, T = ceil(frames / length) and
        frame f belongs to snippet f // length.
        """
        if length < 1 or stride < 1:
            raise ValueError("snippet length and stride must be >= 1")
        window: List[np.ndarray] = []
        next_start = 0       # output frame index where the next snippet starts
        covered = 0          # output frames covered by the snippets yielded so far
        seen = 0             # output frames read so far
        index = 0
        for frame in self.frames():
            if seen >= next_start:
                window.append(frame)
            seen += 1
            if len(window) == length:
                yield Snippet(index, next_start, np.stack(window), length)
                covered = next_start + length
                index += 1
                next_start += stride
                window = window[stride:] if stride < length else []
        if window and seen > covered:
            valid = len(window)
            window.extend([window[-1]] * (length - valid))
            yield Snippet(index, next_start, np.stack(window), valid)

    def count_frames(self) -> int:
        """Decode every frame without converting it (fast exact count, same fallback rules)."""
        import av  # PyAV without RGB conversion is the cheapest full decode, whichever backend streams

        count = 0
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for _ in container.decode(stream):
                    count += 1
        except av.error.FFmpegError as exc:
            if count == 0:
                raise VideoDecodeError(f"{self.path}: decoding failed ({_short(exc)})") from None
            self.info.notes.append(f"decoding stopped after {count} frames ({_short(exc)})")
        if count == 0:
            raise VideoDecodeError(f"{self.path}: no decodable frames")
        if self.info.metadata_frames is not None and self.info.metadata_frames != count:
            self.info.notes.append(f"container claimed {self.info.metadata_frames} frames, decoded {count}")
        self.info.frames = count
        self.info.frames_exact = True
        return count


def probe(path: str | os.PathLike, count: str = "decode", backend: str = "auto") -> VideoInfo:
    """Describe a video. ``count``: "decode" (exact, decodes all frames), "packets"
    (demux only, fast, exact for almost every file) or "metadata" (trust the container)."""
    reader = VideoReader(path, backend=backend)
    if count == "decode":
        reader.count_frames()
    elif count == "packets":
        reader.info.frames = _count_packets(reader.path)
        reader.info.notes.append("frames counted from packets (not decoded)")
    if reader.info.frames <= 0:
        raise VideoDecodeError(f"{reader.path}: zero frames")
    return reader.info


def _count_packets(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except Exception as exc:
        raise VideoDecodeError(f"{path}: demuxing failed ({_short(exc)})") from None




def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25.0, crf: int = 23,
                codec: str = "libx264", options: Optional[dict] = None) -> int:
    """Write RGB uint8 frames as H.264 MP4 (yuv420p) atomically; returns the frame count.

    Width and height must be even (yuv420p); odd sizes are cropped by one pixel.
    ``options`` adds encoder options (e.g. ``{"preset": "veryfast", "threads": "1"}``).
    """
    import av

    from .atomic import atomic_path

    count = 0
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        with av.open(str(tmp), mode="w") as container:
            stream = None
            for frame in frames:
                h, w = frame.shape[:2]
                if stream is None:
                    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height = w - w % 2, h - h % 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), **(options or {})}
                frame = np.ascontiguousarray(frame[: stream.height, : stream.width])
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to write")
            for packet in stream.encode():
                container.mux(packet)
    return count
