"""Video decoding: decord first, PyAV as fallback, streamed snippet by snippet.

Container metadata often lies about frame counts (AVI indexes, VFR MP4s,
truncated files). The frames actually decoded are the truth: ``VideoReader``
counts them as it streams and ``VideoInfo.metadata_frames`` keeps what the
container claimed, so a disagreement is visible.

Frames are uint8 RGB (H, W, 3), upright: a clip whose display matrix (or
legacy ``rotate`` tag) says it is turned is turned back, after the decoder's
resize to the swapped size, so features see what a player shows. Resizing
(short side N, aspect kept) happens in the decoder (decord's and swscale's own
scalers), so a full-resolution frame never reaches Python when a smaller one
is asked for.

Every pass also checks the clip (``video_checks``): a decode that stops early,
logs decoder errors mid-stream or yields far fewer frames than the container
claims marks ``info.damaged`` with the reason in ``info.damage``; FFmpeg's own
log lines are captured into that reason, never printed. Each frame's time is
its presentation timestamp (``timed_frames``, ``frame_times``), and irregular
intervals set ``info.vfr``.
"""
from __future__ import annotations

import os
import re
import threading
from array import array
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .errors import VideoDecodeError
from .video_checks import (FFmpegLog, clockwise_rotation, damage_reason, ffmpeg_said, frame_index_to_time,
                           upright, variable_rate)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
BACKENDS = ("auto", "decord", "pyav")


@dataclass
class VideoInfo:
    path: str
    frames: int                  # decoded count when known (frames_exact), else the best estimate
    fps: float                   # average rate (see vfr)
    width: int                   # as displayed: after the rotation below
    height: int
    codec: str
    rotation: int = 0            # degrees clockwise the decoded frames are turned to display upright
    decoder: str = ""            # "decord" or "pyav"
    metadata_frames: Optional[int] = None   # what the container claimed
    frames_exact: bool = False   # True once every frame was decoded and counted
    notes: List[str] = field(default_factory=list)
    damaged: bool = False        # decoding stopped early, hit decoder errors, or fell far short of the claim
    damage: str = ""             # why, one line (FFmpeg's own words included)
    vfr: bool = False            # frame intervals vary: times come from timestamps, not frame / fps
    # after a resampling pass (frames and fps above are then the output's): the source's own decoded
    # count and rate, so scores can be put back on the video's frames (score.native_frame_scores)
    source_frames: Optional[int] = None
    source_fps: Optional[float] = None

    def mark_damaged(self, reason: str) -> None:
        if reason and not self.damaged:
            self.damaged, self.damage = True, reason

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
        for key in ("source_frames", "source_fps"):     # absent when the clip was not resampled
            if out[key] is None:
                out.pop(key)
        return out


@dataclass
class Snippet:
    index: int             # snippet number within the video
    start_frame: int       # first (output) frame it covers
    frames: np.ndarray     # (L, H, W, 3) uint8 RGB
    valid: int             # how many of the L frames are real (the rest repeat the last one)
    times: Optional[np.ndarray] = None   # (valid,) presentation times in seconds of the real frames


def find_videos(root: str | os.PathLike) -> List[Path]:
    """Video files under ``root`` (recursive, sorted for determinism); a file is returned as is."""
    root = Path(root)
    if root.is_file():
        return [root]
    check_readable(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def check_readable(path: str | os.PathLike, folder_ok: bool = True) -> None:
    """A one-line VideoDecodeError naming ``path`` when it is missing, unreadable or (``folder_ok``
    False) a folder: the per-file failure every command reports before decoding anything."""
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: no such file" + (" or folder" if folder_ok else ""))
    if os.path.isdir(path) and not folder_ok:
        raise VideoDecodeError(f"{path}: is a folder, not a video file")
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise VideoDecodeError(f"{path}: permission denied (not readable)")


MAX_RESIZED_SIDE = 8192   # px: the long side a resize may reach (32:1 at a 256-px short side)


def short_side_size(width: int, height: int, short_side: Optional[int]) -> Tuple[int, int]:
    """(width, height) after resizing so the short side is ``short_side`` (aspect kept, rounded)."""
    if not short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def check_resize(name: str, width: int, height: int, short_side: int) -> Tuple[int, int]:
    """``short_side_size``, or a one-line VideoDecodeError naming ``name`` when the long side would pass
    MAX_RESIZED_SIDE: a sliver of a frame (128x2) would fill the memory. Every path that resizes (the
    decoder's, ``encode.reader_for``'s recipe resize, a watched stream) asks here before decoding."""
    size = short_side_size(width, height, short_side)
    if max(size) > MAX_RESIZED_SIDE:
        raise VideoDecodeError(f"{name}: {width}x{height} frames resized to a short side of {short_side} would be "
                               f"{size[0]}x{size[1]} (over {MAX_RESIZED_SIDE} px): an aspect ratio vadpipe does "
                               "not extract")
    return size


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

    with FFmpegLog() as log:
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
                rotation = clockwise_rotation(_first_frame_rotation(container, stream),
                                              stream.metadata.get("rotate"))
                width, height = (stream.height, stream.width) if rotation in (90, 270) else (stream.width,
                                                                                             stream.height)
                info = VideoInfo(path=path, frames=meta_frames or 0, fps=fps, width=width, height=height,
                                 codec=stream.codec_context.name, rotation=rotation, decoder="pyav",
                                 metadata_frames=meta_frames)
                if rotation:
                    info.notes.append(f"turned {rotation} degrees clockwise to display upright "
                                      f"(coded {stream.width}x{stream.height})")
                return info
        except VideoDecodeError:
            raise
        except Exception as exc:  # av raises many types (InvalidDataError, OSError...)
            said = ffmpeg_said(log.errors())
            raise VideoDecodeError(f"{path}: cannot open as video ({_short(exc)}{'; ' + said if said else ''})") \
                from None


def _first_frame_rotation(container, stream) -> float:
    """The display-matrix angle (counter-clockwise) of the first frame: PyAV exposes it per frame."""
    import av

    try:
        for frame in container.decode(stream):
            return float(frame.rotation or 0)
    except (av.error.FFmpegError, ValueError):
        pass          # undecodable start: the decode pass reports it
    return 0.0


@dataclass
class _DecodeReport:
    """What one PyAV pass saw, for the damage verdict."""
    frames: int = 0               # decoded, skipped ones included
    packets: int = 0              # video packets with data the demuxer found
    stop_error: str = ""          # the error that ended decoding before the end of the file
    mid_errors: List[str] = field(default_factory=list)   # decoder error lines after the first frame
    complete: bool = False        # the pass reached the end of the file
    resized: str = ""             # the first frame-size change mid-stream (every frame is scaled to one size)


# FFmpeg's slice threads only: with frame threads (AUTO, FRAME) a reader stopped before the end, as
# next(frames()) is, can hang for ever freeing the codec context once torch is imported (PyAV issue 1849;
# seen here: a test hung in avcodec_free_context, 1 run in a few thousand)
PYAV_THREADS = "SLICE"


_REFORMATTERS = threading.local()      # this process's own swscale contexts, one per thread


def rgb_array(frame, size: Tuple[int, int]) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB at ``size`` (width, height), converted on the calling thread by
    a swscale context this process made. PyAV 18.1.1 keeps one context per thread for every conversion, with a
    pool of slice threads by default; a decode worker forked from a process whose main thread had converted
    a frame so inherits a pool without its threads, and hung for ever when it used it (twice in a fresh
    clone's suite: gdb showed the worker joining a thread of that pool, a live decoder thread now holding
    its old handle). So: our own context, remade in a forked child, with no pool (threads=1: ~20 % more of
    a 1080p conversion, 0.64 ms). PyAV's own context is then only asked for a no-op (``to_ndarray``)."""
    import av.video.reformatter

    if getattr(_REFORMATTERS, "pid", None) != os.getpid():
        _REFORMATTERS.pid, _REFORMATTERS.reformatter = os.getpid(), av.video.reformatter.VideoReformatter()
    rgb = _REFORMATTERS.reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24", threads=1)
    return rgb.to_ndarray()


def _decode_pyav(path: str, report: _DecodeReport, fps: float, size: Optional[Tuple[int, int]] = None,
                 skip: int = 0, rotation: int = 0, convert: bool = True
                 ) -> Iterator[Tuple[float, Optional[np.ndarray]]]:
    """(time in seconds, RGB frame or None when not ``convert``) for every frame from ``skip`` on.

    Times are presentation timestamps from the stream's start (index / fps when a
    frame has none). A decode error after the first frame ends the pass and is
    recorded in ``report`` (a truncated tail keeps what decoded, as players do).
    Every frame comes out at one size: ``size``, else the first frame's (swscale scales the frames of a
    stream whose resolution changes mid-way; a frame already at that size converts exactly as without it).
    """
    import av

    with FFmpegLog() as log:
        try:
            container = av.open(path)
        except Exception as exc:
            raise VideoDecodeError(f"{path}: cannot open as video ({_short(exc)})") from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = PYAV_THREADS
            base = stream.time_base
            start = stream.start_time or 0
            first_log = None         # log position at the first frame: later errors are mid-stream
            first_size = None        # the first frame's coded size
            index = 0
            try:
                for packet in container.demux(stream):
                    report.packets += 1 if packet.size else 0
                    for frame in packet.decode():
                        if first_log is None:
                            first_log = len(log.records)
                        if first_size is None:
                            first_size = (frame.width, frame.height)
                            size = size or first_size
                        elif not report.resized and (frame.width, frame.height) != first_size:
                            report.resized = (f"frame size changed {first_size[0]}x{first_size[1]} -> "
                                              f"{frame.width}x{frame.height} at frame {index}")
                        if index >= skip:
                            t = float((frame.pts - start) * base) if frame.pts is not None and base else index / fps
                            if convert:
                                yield t, upright(rgb_array(frame, size), rotation)
                            else:
                                yield t, None
                        index += 1
                report.complete = True
            except av.error.FFmpegError as exc:
                if index == 0:
                    said = ffmpeg_said(log.errors())
                    raise VideoDecodeError(f"{path}: decoding failed ({_short(exc)}{'; ' + said if said else ''})") \
                        from None
                report.stop_error = _short(exc)
            finally:
                report.frames = index
                report.mid_errors = log.errors(first_log) if first_log is not None else []


_decord_quiet = False


def _iter_decord(path: str, size: Optional[Tuple[int, int]], chunk: int = 16
                 ) -> Iterator[Tuple[float, np.ndarray]]:
    global _decord_quiet
    import decord

    if not _decord_quiet:    # decord's own FFmpeg prints to stderr; a failure falls back to PyAV, which captures
        decord.logging.set_level(decord.logging.QUIET)
        _decord_quiet = True
    kwargs = {"num_threads": 1}
    if size is not None:
        kwargs.update(width=size[0], height=size[1])
    reader = decord.VideoReader(path, ctx=decord.cpu(0), **kwargs)
    n = len(reader)
    for start in range(0, n, chunk):
        indices = list(range(start, min(start + chunk, n)))
        batch = reader.get_batch(indices).asnumpy()
        times = reader.get_frame_timestamp(indices)[:, 0]
        yield from zip((round(float(t), 6) for t in times), batch)   # decord keeps float32 seconds


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
    decord is missing or fails), "decord" or "pyav"; rotated clips always
    decode with PyAV (decord ignores the display matrix). After a full pass,
    ``info.frames`` is the decoded count, ``info.frames_exact`` is True,
    ``info.damaged`` / ``info.vfr`` are set, and ``frame_times`` holds every
    output frame's time.
    """

    def __init__(self, path: str | os.PathLike, short_side: Optional[int] = None, fps: Optional[float] = None,
                 backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        self.path = str(path)
        check_readable(self.path, folder_ok=False)
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(f"{self.path}: empty file")
        self.info = _probe_pyav(self.path)
        if self.info.width <= 0 or self.info.height <= 0:
            raise VideoDecodeError(f"{self.path}: video stream has no frame size")
        self.backend = backend if backend != "auto" else ("decord" if _decord_available() else "pyav")
        if self.info.rotation and self.backend == "decord":
            self.backend = "pyav"
        self.info.decoder = self.backend
        self.target_fps = fps
        self.size = check_resize(self.path, self.info.width, self.info.height, short_side) if short_side else None
        self.output_fps = float(fps) if fps else self.info.fps
        self._times = array("d")          # output frame -> time (s), filled while streaming
        self._source_times = array("d")   # decoded frame -> time (s), for the frame-rate check

    @property
    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of every output frame streamed so far (all of them after a pass)."""
        return np.frombuffer(self._times, dtype=np.float64).copy() if self._times else np.zeros(0)

    def time_of(self, index):
        """Time in seconds of output frame ``index`` (int or array): see ``frame_index_to_time``."""
        return frame_index_to_time(self._times, index, self.output_fps)

    def _decode_size(self) -> Optional[Tuple[int, int]]:
        """The size asked of the decoder: before the quarter turn, so width and height swap."""
        if self.size is None or self.info.rotation not in (90, 270):
            return self.size
        return self.size[1], self.size[0]

    def _source_frames(self, report: _DecodeReport) -> Iterator[Tuple[float, np.ndarray]]:
        """(time, frame) at native rate; decord failures fall back to PyAV where they stopped."""
        done = 0
        if self.backend == "decord":
            try:
                for item in _iter_decord(self.path, self.size):
                    yield item
                    done += 1
                return
            except Exception as exc:  # decord raises DECORDError / RuntimeError on bad streams
                why = re.sub(r"\[[\d:]+\] \S+:\d+: ", "", _short(exc))   # drop decord's "[time] file:line:" noise
                self.info.notes.append(f"decord failed after {done} frames ({why}); PyAV took over")
                self.backend = self.info.decoder = "pyav"
        yield from _decode_pyav(self.path, report, self.info.fps, self._decode_size(), skip=done,
                                rotation=self.info.rotation)

    def timed_frames(self) -> Iterator[Tuple[float, np.ndarray]]:
        """(time in seconds, frame) for every output frame (resized, resampled, upright).
        Counts and checks the clip into ``info`` once exhausted."""
        resampler = resample_indices(self.info.fps, self.target_fps)
        report = _DecodeReport()
        produced = 0
        for src_index, (t, frame) in enumerate(self._source_frames(report)):
            self._source_times.append(t)
            for _ in range(resampler.keep(src_index)):
                produced += 1
                self._times.append(t)
                yield t, frame
        source_count = len(self._source_times)
        if source_count == 0:
            raise VideoDecodeError(f"{self.path}: no decodable frames")
        self.info.frames = produced
        self.info.frames_exact = True
        if self.target_fps:
            self.info.source_frames, self.info.source_fps = source_count, self.info.fps
            self.info.fps = self.output_fps
            self.info.notes.append(f"resampled from {source_count} frames to {produced} at {self.output_fps:g} fps")
        self._check(source_count, report if self.backend == "pyav" else None)

    def frames(self) -> Iterator[np.ndarray]:
        """Output frames (resized, resampled, upright); their times land in ``frame_times``."""
        for _, frame in self.timed_frames():
            yield frame

    def _check(self, decoded: int, report: Optional[_DecodeReport]) -> None:
        """Notes and verdicts after a full pass: claimed vs decoded, damage, frame rate."""
        claimed = self.info.metadata_frames
        if claimed is not None and claimed != decoded:
            self.info.notes.append(f"container claimed {claimed} frames, decoded {decoded}")
        if report is not None and report.resized:
            self.info.notes.append(f"{report.resized}; every frame decoded at one size")
        self.info.mark_damaged(damage_reason(
            decoded, claimed, packets=report.packets if report is not None and report.complete else None,
            stop_error=report.stop_error if report else "", mid_errors=report.mid_errors if report else ()))
        vfr = variable_rate(self._source_times)
        if vfr:
            self.info.vfr = True
            self.info.notes.append(vfr)

    def snippets(self, length: int = 16, stride: int = 16) -> Iterator[Snippet]:
        """Consecutive snippets of ``length`` frames every ``stride`` frames.

        The last partial snippet is kept and padded by repeating its last
        frame, so that with stride == length, T = ceil(frames / length) and
        frame f belongs to snippet f // length.
        """
        if length < 1 or stride < 1:
            raise ValueError("snippet length and stride must be >= 1")
        times = getattr(self, "_times", None)   # other frame sources (live streams) reuse this rule untimed
        window: List[np.ndarray] = []
        next_start = 0       # output frame index where the next snippet starts
        covered = 0          # output frames covered by the snippets yielded so far
        seen = 0             # output frames read so far
        index = 0
        shape = None         # every frame's: one that differs is one line, never a numpy error
        for frame in self.frames():
            shape = shape or frame.shape
            if frame.shape != shape:   # PyAV holds one size; another frame source might not
                raise VideoDecodeError(f"{getattr(self, 'path', 'the stream')}: frame size changed "
                                       f"{shape[1]}x{shape[0]} -> {frame.shape[1]}x{frame.shape[0]} at frame {seen}")
            if seen >= next_start:
                window.append(frame)
            seen += 1
            if len(window) == length:
                yield Snippet(index, next_start, np.stack(window), length, _slice(times, next_start, length))
                covered = next_start + length
                index += 1
                next_start += stride
                window = window[stride:] if stride < length else []
        if window and seen > covered:
            valid = len(window)
            window.extend([window[-1]] * (length - valid))
            yield Snippet(index, next_start, np.stack(window), valid, _slice(times, next_start, valid))

    def count_frames(self) -> int:
        """Decode every frame without converting it (fast exact count, same checks as a full pass)."""
        report = _DecodeReport()
        # PyAV without RGB conversion is the cheapest full decode, whichever backend streams.
        for t, _ in _decode_pyav(self.path, report, self.info.fps, convert=False):
            self._source_times.append(t)
        count = len(self._source_times)
        if report.stop_error:
            self.info.notes.append(f"decoding stopped after {count} frames ({report.stop_error})")
        if count == 0:
            raise VideoDecodeError(f"{self.path}: no decodable frames")
        self._check(count, report)
        self.info.frames = count
        self.info.frames_exact = True
        return count


def _slice(times: Optional[array], start: int, count: int) -> Optional[np.ndarray]:
    return np.asarray(times[start:start + count], dtype=np.float64) if times is not None else None


def probe(path: str | os.PathLike, count: str = "decode", backend: str = "auto") -> VideoInfo:
    """Describe a video. ``count``: "decode" (exact, decodes all frames), "packets"
    (demux only, fast, exact for almost every file) or "metadata" (trust the container).
    "decode" and "packets" also set ``damaged`` (packets: only a shortfall against the claim) and ``vfr``."""
    reader = VideoReader(path, backend=backend)
    if count == "decode":
        reader.count_frames()
    elif count == "packets":
        times = _packet_times(reader.path)
        reader.info.frames = len(times)
        reader.info.notes.append("frames counted from packets (not decoded)")
        reader.info.mark_damaged(damage_reason(None, reader.info.metadata_frames, packets=len(times)))
        vfr = variable_rate(times)
        if vfr:
            reader.info.vfr = True
            reader.info.notes.append(vfr)
    if reader.info.frames <= 0:
        raise VideoDecodeError(f"{reader.path}: zero frames")
    return reader.info


def frame_times(path: str | os.PathLike) -> np.ndarray:
    """Presentation time in seconds (from the stream's start) of every frame, from the packets' timestamps:
    demux only, no decode. Frame i of a decode pass is at ``frame_times(path)[i]``; map indices past the
    end (padded tails) with ``frame_index_to_time``."""
    return _packet_times(str(path))


def _packet_times(path: str) -> np.ndarray:
    import av

    try:
        with FFmpegLog(), av.open(path) as container:
            stream = container.streams.video[0]
            base, start = stream.time_base, stream.start_time or 0
            rate = stream.average_rate or stream.guessed_rate
            stamps, count = [], 0
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
                    if packet.pts is not None and base:
                        stamps.append(float((packet.pts - start) * base))
    except Exception as exc:
        raise VideoDecodeError(f"{path}: demuxing failed ({_short(exc)})") from None
    if len(stamps) == count:
        return np.sort(np.asarray(stamps, dtype=np.float64))   # decode order -> presentation order
    return np.arange(count, dtype=np.float64) / float(rate or 25)   # no timestamps (some AVIs): the nominal rate


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25.0, crf: int = 23,
                codec: str = "libx264", options: Optional[dict] = None, container_options: Optional[dict] = None
                ) -> int:
    """Write RGB uint8 frames as H.264 MP4 (yuv420p) atomically; returns the frame count.

    Width and height must be even (yuv420p); odd sizes are cropped by one pixel.
    ``options`` adds encoder options (e.g. ``{"preset": "veryfast", "threads": "1"}``),
    ``container_options`` muxer ones (e.g. ``{"movflags": "faststart"}``: the index first).
    """
    import av

    from .atomic import atomic_path

    count = 0
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        with av.open(str(tmp), mode="w", options=container_options or {}) as container:
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
