"""``--overlay``: the clip re-encoded with its score drawn on every frame.

Bottom panel: the whole clip's score curve (threshold dashed, detected
intervals tinted red, ground truth as a green band) with a cursor at the
current frame. Top left: the current score, red with "ANOMALY" inside a
detected interval. Right edge: a bar filled to the current score.

The panel is rasterised once with numpy (it must work from 48-pixel test
clips to 4K, where a matplotlib layout would not), then alpha-blended onto
each frame while streaming: memory stays flat in the clip's length.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from .intervals import Interval

RED = np.array([230, 50, 45], dtype=np.float32)
GREEN = np.array([60, 200, 90], dtype=np.float32)
CURVE = np.array([255, 225, 80], dtype=np.float32)
WHITE = np.array([255, 255, 255], dtype=np.float32)


@dataclass(frozen=True)
class OverlayStyle:
    panel_fraction: float = 0.22     # panel height as a share of the frame height
    panel_alpha: float = 0.72
    bar_fraction: float = 0.018      # score bar width as a share of the frame width
    font_fraction: float = 0.06      # text height as a share of the frame height
    min_text_height: int = 120       # below this frame height, no text (it would be unreadable)


def _column_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Max score of the frames that fall in each pixel column (short peaks stay visible)."""
    n = scores.size
    edges = np.linspace(0, n, width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, n)
    return np.array([scores[min(a, n - 1):max(b, a + 1)].max() for a, b in zip(edges[:-1], edges[1:])])


def render_panel(scores: np.ndarray, width: int, height: int, threshold: Optional[float],
                 intervals: Sequence[Interval], gt_frames: Sequence[Tuple[int, int]] = ()
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """(rgb float32 (h, w, 3), alpha float32 (h, w, 1)) of the static curve panel."""
    n = scores.size
    top = max(1.0, float(scores.max()))
    rgb = np.zeros((height, width, 3), dtype=np.float32) + 20.0
    alpha = np.ones((height, width, 1), dtype=np.float32)
    to_x = width / n
    for iv in intervals:
        rgb[:, int(iv.start_frame * to_x):max(int(iv.end_frame * to_x), int(iv.start_frame * to_x) + 1)] = \
            RED * 0.35 + 20.0
    band = max(2, height // 12)
    for start, end in gt_frames:
        rgb[height - band:, int(start * to_x):max(int(end * to_x), int(start * to_x) + 1)] = GREEN
    margin = max(1, height // 10)
    usable = height - 2 * margin

    def to_y(value):
        return np.clip(np.round(height - margin - np.asarray(value) / top * usable), 0, height - 1).astype(int)

    if threshold is not None and threshold <= top:
        y = int(to_y(threshold))
        dash = max(4, width // 80)
        for x0 in range(0, width, 2 * dash):
            rgb[y, x0:x0 + dash] = WHITE * 0.8
    ys = to_y(_column_scores(scores, width))
    thick = max(2, height // 30)
    for x in range(width):
        lo, hi = sorted((ys[x], ys[x - 1] if x else ys[x]))
        rgb[max(0, lo - thick // 2):hi + thick // 2 + 1, x] = CURVE
    return rgb, alpha


def _font(size: int):
    from PIL import ImageFont

    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        return ImageFont.truetype(str(path), size)
    except Exception:  # a broken font install must not stop the overlay
        return ImageFont.load_default()


class Painter:
    """Draws the score of one frame onto it; built once per clip."""

    def __init__(self, scores: np.ndarray, width: int, height: int, threshold: Optional[float],
                 intervals: Sequence[Interval], gt_frames: Sequence[Tuple[int, int]] = (),
                 style: OverlayStyle = OverlayStyle()):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.width, self.height = width, height
        self.threshold = threshold
        self.top = max(1.0, float(self.scores.max()))
        self.in_interval = np.zeros(self.scores.size, dtype=bool)
        for iv in intervals:
            self.in_interval[iv.start_frame:iv.end_frame] = True
        self.panel_h = max(8, int(round(height * style.panel_fraction)))
        rgb, alpha = render_panel(self.scores, width, self.panel_h, threshold, intervals, gt_frames)
        self.panel_fg = rgb * alpha * style.panel_alpha
        self.panel_keep = 1.0 - alpha * style.panel_alpha
        self.bar_w = max(3, int(round(width * style.bar_fraction)))
        self.font = _font(max(10, int(height * style.font_fraction))) if height >= style.min_text_height else None

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, expected {self.width}x{self.height}")
        out = frame.copy()
        i = min(index, self.scores.size - 1)
        score = float(self.scores[i])
        hot = bool(self.in_interval[i])
        y0 = self.height - self.panel_h
        out[y0:] = (out[y0:] * self.panel_keep + self.panel_fg).astype(np.uint8)
        x = min(self.width - 1, int(i * self.width / self.scores.size))
        out[y0:, max(0, x - 1):x + 1] = 255                      # cursor
        bar_h = int(round(score / self.top * (y0 - 4)))
        colour = RED if hot else GREEN
        out[y0 - 2 - bar_h:y0 - 2, self.width - self.bar_w - 2:self.width - 2] = colour.astype(np.uint8)
        if self.font is not None:
            out = self._text(out, f"{score:.2f}" + ("  ANOMALY" if hot else ""), hot)
        return out

    def _text(self, frame: np.ndarray, text: str, hot: bool) -> np.ndarray:
        from PIL import Image, ImageDraw

        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        pad = max(4, self.height // 60)
        colour = tuple(int(c) for c in (RED if hot else WHITE))
        draw.text((pad, pad), text, font=self.font, fill=colour, stroke_width=max(1, pad // 3), stroke_fill=(0, 0, 0))
        return np.asarray(image)


def overlay_frames(frames: Iterator[np.ndarray], scores: np.ndarray, threshold: Optional[float],
                   intervals: Sequence[Interval], gt_frames: Sequence[Tuple[int, int]] = ()) -> Iterator[np.ndarray]:
    """Paint each frame; the painter is sized from the first decoded frame (rotation-proof)."""
    painter = None
    for index, frame in enumerate(frames):
        if painter is None:
            painter = Painter(scores, frame.shape[1], frame.shape[0], threshold, intervals, gt_frames)
        yield painter(index, frame)


def write_overlay(video_path: str | os.PathLike, out_path: str | os.PathLike, scores: np.ndarray,
                  threshold: Optional[float], intervals: Sequence[Interval],
                  gt_frames: Sequence[Tuple[int, int]] = (), backend: str = "auto") -> int:
    """Re-encode ``video_path`` (native size and fps) with the overlay; returns the frames written.

    ``scores`` has one value per native frame of the video.
    """
    from .video import VideoReader, write_video

    reader = VideoReader(video_path, backend=backend)
    frames = overlay_frames(reader.frames(), np.asarray(scores), threshold, intervals, gt_frames)
    return write_video(out_path, frames, fps=reader.info.fps)
