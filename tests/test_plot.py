import numpy as np
import pytest
from PIL import Image

from vadpipe.intervals import find_intervals, frame_times, snippets_to_frames
from vadpipe.overlay import Painter, render_panel, write_overlay
from vadpipe.plot import MAX_THUMBNAILS, choose_thumbnails, figure_size_px, plot_clip
from vadpipe.video import VideoReader

FPS = 25.0


def _curve(n=500):
    snippets = np.full((n + 15) // 16, 0.1)
    snippets[len(snippets) // 3:len(snippets) // 3 + 2] = 0.9
    return snippets_to_frames(snippets, n)


def test_thumbnails_take_peaks_then_even_context():
    scores = _curve()
    intervals = find_intervals(scores, 0.5, FPS)
    thumbs = choose_thumbnails(scores, FPS, intervals)
    assert len(thumbs) == MAX_THUMBNAILS
    assert [t.frame for t in thumbs] == sorted(t.frame for t in thumbs)
    peaks = [t for t in thumbs if t.is_peak]
    assert len(peaks) == 1 and peaks[0].frame == intervals[0].peak_frame and peaks[0].score == 0.9
    assert all(t.time_s == t.frame / FPS for t in thumbs)
    # no interval: evenly spaced; very short clip: never more thumbnails than frames
    even = choose_thumbnails(np.zeros(600), FPS, [])
    assert [t.frame for t in even] == [50, 150, 250, 350, 450, 550] and not any(t.is_peak for t in even)
    assert len(choose_thumbnails(np.zeros(3), FPS, [])) == 3
    # a variable-frame-rate clip: the frames' timestamps, not frame / fps
    times = np.r_[0.0, 0.04, 0.6, 4.8]
    assert [t.time_s for t in choose_thumbnails(np.zeros(4), FPS, [], times=times)] == times.tolist()


def test_png_has_the_documented_size(tmp_path):
    scores = _curve()
    intervals = find_intervals(scores, 0.5, FPS)
    thumbs = choose_thumbnails(scores, FPS, intervals)
    for t in thumbs:
        t.image = np.full((36, 64, 3), 120, np.uint8)
    with_strip = plot_clip(tmp_path / "a.png", frame_times(scores.size, FPS), scores, FPS, "clip.mp4", 0.5,
                           intervals, thumbs, gt_intervals_s=[(6.0, 9.0)], threshold_label="threshold 0.5")
    bare = plot_clip(tmp_path / "b.png", frame_times(scores.size, FPS), scores, FPS, "clip.npy", None, [])
    assert Image.open(with_strip).size == figure_size_px(True)
    assert Image.open(bare).size == figure_size_px(False)
    assert not list(tmp_path.glob(".*tmp*"))   # atomic writes leave no temporary files


def test_overlay_panel_and_painter_shapes():
    scores = _curve(100)
    intervals = find_intervals(scores, 0.5, FPS, min_duration_s=0)
    rgb, alpha = render_panel(scores, 64, 12, 0.5, intervals, [(0, 10)])
    assert rgb.shape == (12, 64, 3) and alpha.shape == (12, 64, 1)
    painter = Painter(scores, 64, 48, 0.5, intervals)
    frame = np.zeros((48, 64, 3), np.uint8)
    calm, hot = painter(0, frame), painter(intervals[0].peak_frame, frame)
    assert calm.shape == frame.shape and calm.dtype == np.uint8
    assert not np.array_equal(calm, hot)                  # the cursor and the bar moved
    assert hot[..., 0].sum() > calm[..., 0].sum()          # the red bar of an anomalous frame


def test_overlay_keeps_every_frame(video_factory, tmp_path):
    clip = video_factory(frames=37, width=160, height=128)
    scores = _curve(37)
    n = write_overlay(clip, tmp_path / "clip.overlay.mp4", scores, 0.5, find_intervals(scores, 0.5, FPS))
    reader = VideoReader(tmp_path / "clip.overlay.mp4")
    assert n == 37 and sum(1 for _ in reader.frames()) == 37
    assert (reader.info.width, reader.info.height) == (160, 128)


def test_score_axis_turns_logit_only_for_scores_bunched_at_one_end(tmp_path):
    from vadpipe.plot import score_axis_scale

    bunched = np.linspace(0.94, 0.9999, 200)          # a flat line at the top of a linear axis
    assert score_axis_scale(bunched, 0.987) == "logit"
    assert score_axis_scale(1 - bunched, 0.013) == "logit"          # the same at the bottom
    assert score_axis_scale(np.linspace(0.05, 0.9, 200), 0.5) == "linear"   # already readable
    assert score_axis_scale(np.full(50, 0.5), 0.52) == "linear"     # in the middle: nothing to unfold
    assert score_axis_scale(np.linspace(0.99, 0.996, 50), 0.995) == "logit"   # the demo's fight clip
    assert score_axis_scale(np.r_[bunched, 1.0], 0.987) == "linear"  # exact 1.0 has no place on a logit axis
    assert score_axis_scale(bunched, 0.987, "linear") == "linear"   # an explicit choice is kept
    assert score_axis_scale(np.linspace(0.1, 0.9, 9), None, "logit") == "logit"
    with pytest.raises(ValueError, match="plot scale"):
        score_axis_scale(bunched, None, "log")
    # the figure: logit axis whose limits hold the curve and the threshold, same PNG size as before
    import matplotlib.pyplot as plt
    from vadpipe.plot import draw_scores

    fig, ax = plt.subplots()
    draw_scores(ax, frame_times(bunched.size, FPS), bunched, 0.987, [], scale="logit")
    lo, hi = ax.get_ylim()
    assert ax.get_yscale() == "logit" and lo < 0.94 and hi > 0.9999 and hi < 1.0
    plt.close(fig)
    from vadpipe.plot import _decimal, _logit_ticks

    assert _logit_ticks(0.93, 0.9995) == [0.95, 0.99, 0.995, 0.999, 0.9995]     # round, readable ticks
    assert [_decimal(p, 2) for p in (0.998, 0.94, 0.5)] == ["0.998", "0.94", "0.50"]   # 0.998 never reads 1.00
    png = plot_clip(tmp_path / "c.png", frame_times(bunched.size, FPS), bunched, FPS, "clip.mp4", 0.987, [])
    assert Image.open(png).size == figure_size_px(False)
