"""Live sources: a file (followed while it grows), a URL or a capture device -> timed 16-frame snippets.

``classify`` says what a SOURCE string is; ``FrameSource`` decodes it with
PyAV, reconnecting a dropped network stream with exponential back-off, and
yields RGB frames with their stream time, decoded as ``vadpipe score`` decodes a
file (turned upright, every frame at the first frame's size); ``SnippetStream`` cuts those frames
into the checkpoint recipe's snippets (the same fps policy, snippet assembly,
tail padding and resize as ``vadpipe extract``) in a decoding thread that
feeds a bounded queue. When the consumer cannot keep up on a live source,
whole snippets are dropped, oldest first, and counted: the queue never holds
more than ``queue_snippets``, so the lag stays bounded.

Stream time: seconds since the first decoded frame (pts based); after a
reconnect it continues where the lost connection stopped. A snippet's ``due``
is the monotonic wall time at which its last frame was live: the connection's
live clock (the earliest any frame so far arrived relative to its time stamp,
so the delay of probing the stream before the first frame counts) + the
frame's stream time; ``now - due`` is its lag.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from .errors import VideoDecodeError
from .recipe import Recipe
from .snippet_queue import SnippetQueue
from .video import PYAV_THREADS, Snippet, VideoReader, _short, check_resize, resample_indices, rgb_array
from .video_checks import FFmpegLog, clockwise_rotation, ffmpeg_said, upright

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "rtp", "srt")


class StreamError(VideoDecodeError):
    """The source could not be opened, is not a video, or was lost and did not come back."""


@dataclass(frozen=True)
class StreamOptions:
    open_timeout_s: float = 10.0     # connecting / probing a network source
    read_timeout_s: float = 10.0     # no data for this long: the connection is considered lost
    follow_timeout_s: float = 5.0    # a file that has not grown for this long has ended
    max_reconnects: int = 5          # attempts after a lost (or refused) network connection
    backoff_s: float = 1.0           # first wait before reconnecting; doubles each attempt
    backoff_max_s: float = 30.0
    stable_s: float = 30.0           # a connection that delivered this much stream earns a fresh attempt budget
    # Decoded snippets waiting for the model (live: at most this many old). 3 waiting rode out the
    # machine's slow spells (lag up to ~2.7 s on the 2-core CPU, 30 min, watch --workers 2) without a
    # drop where 2 lost one; lag stays bounded at about (3 + workers) snippets.
    queue_snippets: int = 3
    drop: Optional[bool] = None      # drop snippets when behind; None: on live sources (URL, device)
    poll_s: float = 0.1              # how often a followed file is checked for growth
    decode_process: bool = True      # decode in a child process (a decoder's crash ends the source, not watch)


@dataclass(frozen=True)
class SourceSpec:
    source: str
    kind: str                        # "file" | "url" | "device"
    av_format: Optional[str] = None  # e.g. "v4l2"

    @property
    def live(self) -> bool:
        return self.kind != "file"


def classify(source: str) -> SourceSpec:
    scheme = source.partition("://")[0].lower() if "://" in source else ""
    if scheme in NETWORK_SCHEMES:
        return SourceSpec(source, "url")
    if scheme == "file":
        return SourceSpec(source[len("file://"):], "file")
    if scheme:
        raise StreamError(f"{source}: unsupported scheme {scheme!r} (expected a file, /dev/videoN or one of "
                          f"{', '.join(NETWORK_SCHEMES)})")
    if source.startswith("/dev/video"):
        return SourceSpec(source, "device", "v4l2")
    if not os.path.exists(source):
        raise StreamError(f"{source}: no such file")
    if os.path.isdir(source):
        raise StreamError(f"{source}: is a folder, not a video file or stream")
    return SourceSpec(source, "file")


def av_open_args(spec: SourceSpec, options: StreamOptions) -> dict:
    """Keyword arguments of ``av.open`` for a source: timeouts for network protocols, the device format."""
    kwargs: dict = {"timeout": (options.open_timeout_s, options.read_timeout_s)}   # PyAV's interrupt callback
    if spec.kind == "url":
        micro = str(int(options.read_timeout_s * 1e6))
        av_options = {"rw_timeout": micro}                        # every protocol's I/O timeout (µs)
        scheme = spec.source.partition("://")[0].lower()
        if scheme in ("rtsp", "rtsps"):
            av_options.update(timeout=micro, rtsp_transport="tcp")   # TCP: no lost packets, no smearing
        elif scheme in ("udp", "rtp"):
            av_options.update(timeout=micro, overrun_nonfatal="1", fifo_size="278876")
        elif scheme in ("tcp", "http", "https"):
            av_options.update(timeout=micro)
        kwargs["options"] = av_options
    if spec.av_format:
        kwargs["format"] = spec.av_format
    return kwargs


class FollowFile:
    """A read-only binary file that waits at its end while the file keeps growing.

    ``read`` returns b"" (end of file) only once the file has not grown for
    ``idle_s`` seconds, counted from its last growth or from its modification
    time: a finished file ends at once, one still being written is followed.
    """

    def __init__(self, path: str, idle_s: float, poll_s: float = 0.1, stop: Optional[threading.Event] = None):
        self.path, self.idle_s, self.poll_s = path, idle_s, poll_s
        self.stop = stop or threading.Event()
        self._fh = open(path, "rb")
        self._size = os.fstat(self._fh.fileno()).st_size
        self._grew = os.path.getmtime(path)    # wall clock of the last growth seen

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        while not data and not self.stop.is_set():
            size = os.fstat(self._fh.fileno()).st_size
            if size > self._size:
                self._size, self._grew = size, time.time()
            elif time.time() - max(self._grew, os.path.getmtime(self.path)) >= self.idle_s:
                return b""
            time.sleep(self.poll_s)
            data = self._fh.read(n)
        return data

    @property
    def growing(self) -> bool:
        """It grew (or was written) less than ``idle_s`` ago: someone is still writing it."""
        return time.time() - max(self._grew, os.path.getmtime(self.path)) < self.idle_s

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


# the first box of an MP4 / MOV (ISO base media): the MP4 demuxer needs the index ('moov'), which a recorder
# writes only when it finishes the file (unless it writes fragments)
_MP4_BOXES = (b"ftyp", b"mdat", b"moov", b"free", b"wide", b"skip")


def _unfinished_mp4(raw: FollowFile) -> bool:
    """A file still being written that is an MP4 / MOV: it cannot be opened before its index exists."""
    with open(raw.path, "rb") as fh:
        head = fh.read(8)
    return raw.growing and head[4:8] in _MP4_BOXES


def _fragmented_mp4(path: str, moov_limit: int = 1 << 20) -> bool:
    """An MP4 whose index ('moov') comes first and announces fragments ('mvex'): a recorder's fragmented MP4,
    readable while it is written. Walks the top-level boxes up to the index (or media data, which a plain
    MP4 being written puts first)."""
    with open(path, "rb") as fh:
        while len(header := fh.read(8)) == 8:
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            if size == 1:
                size = int.from_bytes(fh.read(8), "big") - 8
            if kind == b"moov":
                return 8 <= size <= moov_limit and b"mvex" in fh.read(size - 8)
            if kind in (b"mdat", b"moof") or size < 8:
                return kind == b"moof"
            fh.seek(size - 8, os.SEEK_CUR)
    return False


class _Sequential:
    """A followed file read front to back only: FFmpeg's MP4 reader sizes a seekable input when it opens it
    and stops there, so a growing fragmented MP4 ended early (48 of 200 frames); read without seeking it
    takes each fragment as it comes (all 200, the same frames and times as the finished file)."""

    def __init__(self, raw: FollowFile):
        self.read = raw.read


def _permanent(exc: BaseException) -> bool:
    """Errors a reconnect cannot cure: the bytes are not a video container we can read."""
    import av

    return isinstance(exc, (av.error.InvalidDataError, av.error.DecoderNotFoundError,
                            av.error.PatchWelcomeError, av.error.ProtocolNotFoundError))


@dataclass
class FrameStats:
    frames: int = 0                  # output frames (after the recipe's fps policy)
    connections: int = 0             # successful opens
    reconnects: int = 0              # reconnect attempts made
    decoder_errors: int = 0          # FFmpeg error lines while decoding (packet loss, corrupt data)
    native_fps: float = 0.0
    width: int = 0
    height: int = 0


class DecoderErrors:
    """FFmpeg's error lines while a source decodes (a camera's lost packets, corrupt data), reported as
    warnings: the first at once, then at most one summary every ``every_s`` seconds of stream, so that a
    stream whose frames may be damaged says so without a line per frame. The capture is emptied as it is
    read (a live stream runs for days)."""

    def __init__(self, source: str, stats: FrameStats, log: Callable[[str], None], every_s: float = 60.0):
        self.source, self.stats, self.log, self.every_s = source, stats, log, every_s
        self.pending: list = []
        self.span: Optional[Tuple[float, float]] = None      # stream times of the pending lines
        self.reported: Optional[float] = None

    def read(self, ffmpeg: FFmpegLog, t: float) -> None:
        lines = ffmpeg.take_errors()
        if lines:
            self.stats.decoder_errors += len(lines)
            self.pending += lines
            self.span = (self.span[0] if self.span else t, t)
        if self.pending and (self.reported is None or t - self.reported >= self.every_s):
            self.flush(t)

    def flush(self, t: Optional[float] = None) -> None:
        if not self.pending:
            return
        start, end = self.span
        when = f"{start:.1f} s" if end - start < 0.05 else f"{start:.1f}-{end:.1f} s"
        self.log(f"warning: {self.source}: decoder errors at {when} of the stream ({len(self.pending)} "
                 f"line{'s' if len(self.pending) != 1 else ''}, {ffmpeg_said(self.pending)}): frames there may "
                 "be damaged and score high")
        self.pending, self.span = [], None
        self.reported = end if t is None else t


class FrameSource:
    """RGB frames (H, W, 3) uint8 of a source at the recipe's frame rate, with stream times.

    ``frames()`` yields ``(frame, time_s, due)``. A network source that fails
    or stalls is reopened after ``backoff_s``, ``2 * backoff_s``, ... up to
    ``max_reconnects`` attempts (reset once frames flow again); then, or on a
    source that is not a video at all, StreamError. The clean end of a file or
    stream ends the iteration.
    """

    def __init__(self, spec: SourceSpec, recipe: Recipe, options: StreamOptions = StreamOptions(),
                 stop: Optional[threading.Event] = None, log: Callable[[str], None] = lambda msg: None):
        self.spec, self.recipe, self.options = spec, recipe, options
        self.stop = stop or threading.Event()
        self.log = log
        self.target_fps = None if str(recipe.fps) == "native" else float(recipe.fps)
        self.stats = FrameStats()
        self.size: Optional[Tuple[int, int]] = None     # (width, height) of every frame: the first one's, upright
        self._resized = False                           # a size change was reported

    def _open(self):
        import av

        if self.spec.kind == "file":
            raw = FollowFile(self.spec.source, self.options.follow_timeout_s, self.options.poll_s, self.stop)
            unfinished = False
            try:
                unfinished = _unfinished_mp4(raw)
                container = av.open(_Sequential(raw) if unfinished and _fragmented_mp4(self.spec.source) else raw)
            except BaseException as exc:
                raw.close()
                if unfinished and isinstance(exc, Exception):
                    raise StreamError(f"{self.spec.source}: an MP4 still being written (no index yet) cannot be "
                                      f"read until it is finished: record fragmented MP4 (-movflags "
                                      f"frag_keyframe+empty_moov), MPEG-TS (.ts) or MKV to watch it live "
                                      f"({_short(exc)})") from None
                raise
            return container, raw
        return av.open(self.spec.source, **av_open_args(self.spec, self.options)), None

    def frames(self) -> Iterator[Tuple[np.ndarray, float, float]]:
        offset = 0.0          # stream time where this connection starts
        attempts = 0
        errors = DecoderErrors(self.spec.source, self.stats, self.log)
        while not self.stop.is_set():
            produced_here = 0
            try:
                container, raw = self._open()
            except StreamError:
                raise
            except Exception as exc:
                if _permanent(exc) or self.spec.kind == "file":
                    raise StreamError(f"{self.spec.source}: not a readable video stream ({_short(exc)})") from None
                attempts = self._backoff(attempts, f"cannot open ({_short(exc)})")
                continue
            try:
                with FFmpegLog() as ffmpeg, container:
                    if not container.streams.video:
                        raise StreamError(f"{self.spec.source}: no video stream in it")
                    stream = container.streams.video[0]
                    # slice threads only (video.PYAV_THREADS): frame threading holds frames back (one per
                    # decoder thread: 80 ms at 25 fps here) and can hang when a watch stops before the end
                    stream.thread_type = PYAV_THREADS
                    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                    native_fps = float(rate) if rate else (self.target_fps or 25.0)
                    self.stats.connections += 1
                    self.stats.native_fps = native_fps
                    resampler = resample_indices(native_fps, self.target_fps)
                    first_pts: Optional[float] = None
                    wall0 = 0.0
                    for src_index, frame in enumerate(container.decode(stream)):
                        if self.stop.is_set():
                            return
                        if src_index == 0:
                            rotation, decode_size = self._layout(frame, stream)
                        pts = frame.time if frame.time is not None else src_index / native_fps
                        now = time.monotonic()
                        if first_pts is None:
                            first_pts, wall0 = pts, now
                        # The live clock: the earliest arrival of any frame relative to its pts so far.
                        # The first frames arrive late (the container is probed before any is decoded),
                        # so anchoring on the first one alone would hide that delay from the lag.
                        wall0 = min(wall0, now - max(0.0, pts - first_pts))
                        errors.read(ffmpeg, offset + max(0.0, pts - first_pts))
                        repeats = resampler.keep(src_index)
                        if not repeats:
                            continue
                        rgb = self._rgb(frame, rotation, decode_size)
                        for _ in range(repeats):
                            t = offset + max(0.0, pts - first_pts)
                            produced_here += 1
                            if t - offset >= self.options.stable_s:
                                attempts = 0      # a lasting connection: the next loss gets the full budget
                            self.stats.frames += 1
                            yield rgb, t, wall0 + (t - offset)
                    return                        # a clean end of file / stream
            except VideoDecodeError:              # StreamError, or a frame size vadpipe does not extract
                raise
            except Exception as exc:
                if _permanent(exc) and produced_here == 0:
                    raise StreamError(f"{self.spec.source}: not a readable video stream ({_short(exc)})") from None
                if self.spec.kind == "file":
                    if produced_here == 0:
                        raise StreamError(f"{self.spec.source}: decoding failed ({_short(exc)})") from None
                    self.log(f"warning: {self.spec.source}: decoding stopped ({_short(exc)}); keeping what decoded")
                    return                        # a truncated tail, as ``vadpipe score`` treats it
                if produced_here:
                    offset += produced_here / (self.target_fps or self.stats.native_fps or 25.0)
                attempts = self._backoff(attempts, f"stream lost after {self.stats.frames} frames ({_short(exc)})")
            finally:
                errors.flush()
                if raw is not None:
                    raw.close()

    def _layout(self, frame, stream) -> Tuple[int, Tuple[int, int]]:
        """This connection's (clockwise rotation, decode size), from its first frame. Frames are turned
        upright as ``score`` turns a file's, and every frame of the source comes out at the first one's
        upright size (a camera that renegotiates its resolution, a reconnect at another size: scaled, as
        score's PyAV pass scales a file's); that size's resize is checked once against the sliver limit."""
        rotation = clockwise_rotation(float(frame.rotation or 0), stream.metadata.get("rotate"))
        quarter = rotation in (90, 270)
        if self.size is None:
            width, height = (frame.height, frame.width) if quarter else (frame.width, frame.height)
            check_resize(self.spec.source, width, height, self.recipe.resize_short_side)
            self.size = (width, height)
            self.stats.width, self.stats.height = self.size
        width, height = self.size
        return rotation, ((height, width) if quarter else (width, height))

    def _rgb(self, frame, rotation: int, size: Tuple[int, int]) -> np.ndarray:
        """An upright RGB frame at the source's one size (swscale converts a frame already at that size
        exactly as without a size); a size change is reported once."""
        if (frame.width, frame.height) != size and not self._resized:
            self._resized = True
            self.log(f"warning: {self.spec.source}: frame size changed {size[0]}x{size[1]} -> "
                     f"{frame.width}x{frame.height} at frame {self.stats.frames}; every frame decoded at "
                     f"{self.size[0]}x{self.size[1]}")
        return upright(rgb_array(frame, size), rotation)

    def _backoff(self, attempts: int, why: str) -> int:
        if attempts >= self.options.max_reconnects:
            tried = f"; gave up after {attempts} reconnect attempt{'s' if attempts != 1 else ''}" \
                if self.options.max_reconnects else ""
            raise StreamError(f"{self.spec.source}: {why}{tried}")
        wait = min(self.options.backoff_max_s, self.options.backoff_s * (2 ** attempts))
        self.log(f"warning: {self.spec.source}: {why}; reconnecting in {wait:g} s "
                 f"(attempt {attempts + 1} of {self.options.max_reconnects})")
        self.stats.reconnects += 1
        self.stop.wait(wait)         # a stop request cuts the wait short
        return attempts + 1


@dataclass
class StreamSnippet:
    index: int                 # snippet number in the stream (dropped ones included)
    start_frame: int           # first output frame it covers
    valid: int                 # real frames (the rest repeat the last one: the stream's end)
    start_s: float             # stream time of its first frame
    end_s: float               # stream time just after its last real frame
    due: float                 # monotonic time its last frame was live (lag = now - due)
    pixels: object             # uint8 tensor (1, L, h, w, 3) at the recipe's model size
    middle: np.ndarray         # its middle real frame at native size (event snapshots)

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.valid


class _TimedFrames:
    """Frames with their times kept aside, so ``VideoReader.snippets`` (the one snippet assembly rule,
    tail padding included) cuts a live stream exactly as it cuts a file."""

    snippets = VideoReader.snippets

    def __init__(self, source: FrameSource):
        self.source = source
        self.path = source.spec.source                      # names the source in VideoReader.snippets' errors
        self.times: Dict[int, Tuple[float, float]] = {}     # output frame -> (time_s, due)
        self.count = 0
        self._low = 0                                       # times below this frame are forgotten

    def frames(self) -> Iterator[np.ndarray]:
        for frame, t, due in self.source.frames():
            self.times[self.count] = (t, due)
            self.count += 1
            yield frame

    def take(self, snippet: Snippet, stride: int, fps: float) -> Tuple[float, float, float]:
        """(start_s, end_s, due) of a snippet; forgets the times no later snippet needs."""
        first = self.times[snippet.start_frame][0]
        last_t, due = self.times[snippet.start_frame + snippet.valid - 1]
        for k in range(self._low, snippet.start_frame + stride):
            self.times.pop(k, None)
        self._low = max(self._low, snippet.start_frame + stride)
        return first, last_t + 1.0 / fps, due


def stream_snippets(source: FrameSource, recipe: Recipe) -> Iterator[StreamSnippet]:
    """``source``'s frames cut into the recipe's snippets, timed, at the model's size (stops once
    ``source.stop`` is set); a source that gives no frame at all is a StreamError."""
    from .encode import to_model_size
    from .extractors.transforms import light_snippets

    # Every snippet is converted and resized; a full queue drops its oldest one (the freshest content
    # wins). Deciding earlier, at a snippet's first frame, would save its RGB conversion (~0.09 CPU-s on
    # 640x360) but drop snippets that a short stall would have let through.
    timed = _TimedFrames(source)
    for snippet in light_snippets(timed.snippets(recipe.snippet_len, recipe.stride), recipe):
        fps = source.target_fps or source.stats.native_fps
        start_s, end_s, due = timed.take(snippet, recipe.stride, fps)
        yield StreamSnippet(snippet.index, snippet.start_frame, snippet.valid, start_s, end_s, due,
                            to_model_size([snippet.frames], recipe), snippet.frames[(snippet.valid - 1) // 2].copy())
        if source.stop.is_set():
            return
    if timed.count == 0 and not source.stop.is_set():
        raise StreamError(f"{source.spec.source}: no decodable frames")


def stream_error(exc: Exception, source: str) -> StreamError:
    """What ended a source, as the one line ``watch`` prints (a StreamError as it is)."""
    if isinstance(exc, StreamError):
        return exc
    if isinstance(exc, VideoDecodeError):        # a frame size vadpipe does not extract, say
        return StreamError(str(exc))
    return StreamError(f"{source}: {type(exc).__name__}: {_short(exc)}")


@dataclass
class SnippetStream:
    """Decodes ``spec`` into a :class:`SnippetQueue` of recipe snippets, in a child process
    (``options.decode_process``: a decoder that crashes ends the source, not the watch; see
    ``stream_process``) or in a thread. Use as an iterator of StreamSnippet; ``stop()`` ends it early;
    after the end, ``error`` holds a StreamError if any. Start it from a thread that outlives it (the
    child is tied to the thread that forks it)."""

    spec: SourceSpec
    recipe: Recipe
    options: StreamOptions = StreamOptions()
    log: Callable[[str], None] = lambda msg: None
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        drop = self.spec.live if self.options.drop is None else self.options.drop
        self.queue = SnippetQueue(self.options.queue_snippets, drop, self.stop_event)
        # in a child process this one only names the source and mirrors the child's stats
        self.source = FrameSource(self.spec, self.recipe, self.options, self.stop_event, self.log)
        self.decoded = 0
        self._child = None
        target = self._relay if self.options.decode_process else self._decode
        self._thread = threading.Thread(target=target, name="vadpipe-decode", daemon=True)
        self._started = False

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def error(self) -> Optional[BaseException]:
        return self.queue.error

    def start(self) -> "SnippetStream":
        if not self._started:
            self._started = True
            if self.options.decode_process:
                from .stream_process import StreamProcess

                self._child = StreamProcess(self.spec, self.recipe, self.options)
            self._thread.start()
        return self

    def stop(self, join_s: float = 2.0) -> None:
        """Ask the decoder to stop; waits a little (a blocked network read ends at its own timeout)."""
        self.stop_event.set()
        if self._child is not None:
            self._child.stop()
        if self._started:
            self._thread.join(join_s)

    def _take(self, snippet: StreamSnippet) -> None:
        self.decoded += 1
        self.queue.put(snippet)

    def _decode(self) -> None:
        error: Optional[StreamError] = None
        try:
            for snippet in stream_snippets(self.source, self.recipe):
                self._take(snippet)
                if self.stop_event.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - reported by the consumer as one line
            if not (isinstance(exc, VideoDecodeError) and self.stop_event.is_set()):
                error = stream_error(exc, self.spec.source)
        finally:
            self.queue.close(error)

    def _relay(self) -> None:
        """The child's snippets into the queue, its log lines to ``log``, its stats into ``source.stats``."""
        error: Optional[StreamError] = None
        try:
            for kind, value, stats in self._child.items(self.stop_event, self.log):
                self.source.stats = stats
                if kind == "end":
                    error = value
                    break
                self._take(value)
                if self.stop_event.is_set():
                    break
        except StreamError as exc:               # the child died (a crash), not while the watch stopped
            if not self.stop_event.is_set():
                error = exc
        finally:
            self._child.stop()
            self.queue.close(error)

    def next_snippet(self, timeout: float) -> Optional[StreamSnippet]:
        """The next snippet, or None when none came within ``timeout`` (see ``finished``)."""
        self.start()
        return None if self.stop_event.is_set() else self.queue.get(timeout)

    @property
    def finished(self) -> bool:
        """Stopped, or ended with every decoded snippet handed over."""
        return self.stop_event.is_set() or self.queue.done

    def __iter__(self) -> Iterator[StreamSnippet]:
        while True:
            item = self.next_snippet(0.2)
            if item is not None:
                yield item
            elif self.finished:
                return
