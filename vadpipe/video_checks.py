"""What a decode pass tells about a clip: damage, timing, orientation; and FFmpeg's log, captured.

Pure functions on what the decoder saw (counts, timestamps, error lines), so the
rules can be tested without building broken files for every case. ``video.py``
feeds them while it streams.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

# A clip is damaged when it decodes this much shorter than its container claims. Intact files decode
# exactly their claim (or one or two frames off on estimates from duration x fps), truncated ones far less.
SHORTFALL_FRAMES = 2
SHORTFALL_FRACTION = 0.05
# Frame intervals further than this from the median make a clip variable-frame-rate: a jitter of a
# few percent (phones) moves no time much, a dropped frame (2x) or a pause does.
VFR_TOLERANCE = 0.25
FFMPEG_LINES_KEPT = 3


class FFmpegLog:
    """Captures FFmpeg's log lines (through PyAV's log callback) instead of printing them.

    PyAV keeps FFmpeg silent unless a level is set; a level is set only while a
    capture is open (all threads: the decoder's frame threads log too), and
    the previous level comes back when the outermost capture closes.
    """

    _depth = 0
    _saved_level: Optional[int] = None

    def __enter__(self) -> "FFmpegLog":
        import av.logging

        if FFmpegLog._depth == 0:
            FFmpegLog._saved_level = av.logging.get_level()
            av.logging.set_level(av.logging.WARNING)
        FFmpegLog._depth += 1
        self._capture = av.logging.Capture(local=False)
        self.records = self._capture.__enter__()     # (level, name, message) tuples, appended live
        return self

    def __exit__(self, *exc) -> None:
        import av.logging

        self._capture.__exit__(None, None, None)
        FFmpegLog._depth -= 1
        if FFmpegLog._depth == 0:
            av.logging.set_level(FFmpegLog._saved_level)

    def errors(self, start: int = 0) -> List[str]:
        """Error-level (and worse) lines captured since record ``start``, as "[name] message"."""
        return _error_lines(self.records[start:])

    def take_errors(self) -> List[str]:
        """The error lines captured so far; every record so far is forgotten (a capture open as long as a
        live stream keeps no history). Called once a decoded frame: nothing captured costs nothing."""
        if not self.records:
            return []
        count = len(self.records)
        taken, self.records[:count] = self.records[:count], []
        return _error_lines(taken)

    def lines(self) -> List[str]:
        return [_format(r) for r in self.records]


def _error_lines(records) -> List[str]:
    """The error-level (and worse) records as "[name] message" lines."""
    import av.logging

    return [_format(r) for r in records if r[0] <= av.logging.ERROR]


def _format(record) -> str:
    _, name, message = record
    text = " ".join(message.split())        # FFmpeg lines end in newlines and may hold more than one
    return f"[{name}] {text}" if name else text


def ffmpeg_said(lines: Sequence[str]) -> str:
    """The first few distinct FFmpeg lines, for a one-line note."""
    distinct = list(dict.fromkeys(line for line in lines if line))
    if not distinct:
        return ""
    more = f" (+{len(distinct) - FFMPEG_LINES_KEPT} more)" if len(distinct) > FFMPEG_LINES_KEPT else ""
    return "FFmpeg: " + " | ".join(distinct[:FFMPEG_LINES_KEPT]) + more


def damage_reason(decoded: Optional[int], claimed: Optional[int], packets: Optional[int] = None, stop_error: str = "",
                  mid_errors: Sequence[str] = ()) -> str:
    """Why a clip counts as damaged ("" when intact).

    ``decoded``: frames the decoder produced (None: not decoded); ``claimed``: what the container's
    header says (stream frame count or duration x fps); ``packets``: video
    packets the demuxer found (a truncated file has fewer than it claims);
    ``stop_error``: the error that ended decoding early; ``mid_errors``: error
    lines the decoder logged after its first frame.
    """
    reasons = []
    if stop_error:
        reasons.append(f"decoding stopped after {decoded} frames ({stop_error})")
    if claimed and decoded is not None and _short_of(decoded, claimed):
        reasons.append(f"decoded {decoded} of the {claimed} frames the container claims")
    elif claimed and packets is not None and _short_of(packets, claimed):
        reasons.append(f"the container claims {claimed} frames but holds {packets} packets")
    if mid_errors:
        reasons.append(f"{len(mid_errors)} decoder error(s) mid-stream")
    if not reasons:
        return ""
    said = ffmpeg_said(mid_errors)
    return "; ".join(reasons) + (f" ({said})" if said else "")


def _short_of(count: int, claimed: int) -> bool:
    return claimed - count > max(SHORTFALL_FRAMES, SHORTFALL_FRACTION * claimed)


def variable_rate(times: Sequence[float]) -> str:
    """A note when frame intervals are not constant (variable frame rate), else ""."""
    if len(times) < 3:
        return ""
    steps = np.diff(np.asarray(times, dtype=np.float64))
    median = float(np.median(steps))
    if median <= 0 or float(np.max(np.abs(steps - median))) <= VFR_TOLERANCE * median:
        return ""
    return (f"variable frame rate: frame intervals {steps.min() * 1000:.1f}-{steps.max() * 1000:.1f} ms "
            f"(median {median * 1000:.1f} ms); frame times come from the timestamps")


def frame_index_to_time(times: Sequence[float], index, fps: float):
    """Time in seconds of frame ``index`` (an int or an array of them) from per-frame times.

    ``times`` are the frames' presentation times (``VideoReader.frame_times`` or
    ``frame_times(path)``); frames past its end (a padded snippet tail) continue
    at ``1 / fps`` after the last one.
    """
    known = np.asarray(times, dtype=np.float64)
    idx = np.asarray(index)
    if known.size == 0:
        out = idx / fps
    else:
        last = known.size - 1
        inside = known[np.clip(idx, 0, last)]
        out = np.where(idx <= last, inside, known[last] + (idx - last) / fps)
    return float(out) if out.ndim == 0 else out


def clockwise_rotation(display_ccw: float, rotate_tag: str | int | None) -> int:
    """Degrees (0/90/180/270) to turn decoded frames clockwise so they display upright.

    ``display_ccw`` is FFmpeg's display-matrix angle (counter-clockwise, what
    ``av.VideoFrame.rotation`` gives; a phone's portrait clip reads -90);
    the legacy ``rotate`` tag (clockwise) is the fall-back when there is no matrix.
    """
    if display_ccw:
        degrees = -float(display_ccw)
    else:
        try:
            degrees = float(rotate_tag or 0)
        except ValueError:
            degrees = 0.0
    return int(round(degrees / 90.0)) % 4 * 90


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """An (H, W, 3) frame turned ``rotation`` degrees clockwise (contiguous, as decoders give)."""
    if not rotation:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-(rotation // 90)))
