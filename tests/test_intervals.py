import numpy as np
import pytest

from vadpipe.intervals import (drop_short, find_intervals, format_clock, format_interval, frame_times, merge_gaps,
                               runs_above, snippets_to_frames)


def test_snippet_scores_cover_every_frame_including_the_tail():
    frames = snippets_to_frames([0.1, 0.5, 0.9], num_frames=40)
    assert frames.shape == (40,)
    assert np.all(frames[:16] == 0.1) and np.all(frames[16:32] == 0.5) and np.all(frames[32:] == 0.9)
    # a video longer than T * 16 (a dropped tail) still gets a score for every frame
    assert np.all(snippets_to_frames([0.2, 0.4], num_frames=50)[32:] == 0.4)


def test_overlapping_snippets_average_where_they_overlap():
    frames = snippets_to_frames([0.0, 1.0], num_frames=24, snippet_len=16, stride=8)
    assert np.allclose(frames[:8], 0.0) and np.allclose(frames[8:16], 0.5) and np.allclose(frames[16:], 1.0)


def test_frame_times_follow_fps():
    assert np.allclose(frame_times(4, 25.0), [0, 0.04, 0.08, 0.12])
    with pytest.raises(ValueError):
        frame_times(4, 0)


def test_runs_are_at_or_above_and_end_exclusive():
    scores = [0, 0.6, 0.7, 0.49, 0.9, 0, 0.8]
    assert runs_above(scores, 0.5) == [(1, 3), (4, 5), (6, 7)]
    # a frame at the threshold is flagged, as false alarms, calibration and the whole-clip note count it
    assert runs_above([0.5, 0.5, 0.2], 0.5) == [(0, 2)]
    flat = np.full(40, 0.5)
    assert [(iv.start_frame, iv.end_frame) for iv in find_intervals(flat, 0.5, fps=10.0)] == [(0, 40)]
    assert runs_above([0.1, 0.2], 0.5) == []
    assert runs_above([1, 1, 1], 0.5) == [(0, 3)]


def test_a_stride_longer_than_a_snippet_holds_the_snippet_before_each_gap():
    frames = snippets_to_frames([0.0, 10.0, 20.0], num_frames=60, snippet_len=16, stride=24)
    assert np.all(frames[:24] == 0.0) and np.all(frames[24:48] == 10.0) and np.all(frames[48:] == 20.0)


def test_the_minimum_duration_and_the_gap_round_up_to_whole_frames():
    # 0.5 s at 25 fps is 12.5 frames: a run of 12 frames (0.48 s) is shorter and dropped, 13 kept
    assert find_intervals(np.r_[np.zeros(10), np.ones(12), np.zeros(10)], 0.5, fps=25.0, min_duration_s=0.5) == []
    assert len(find_intervals(np.r_[np.zeros(10), np.ones(13), np.zeros(10)], 0.5, fps=25.0, min_duration_s=0.5)) == 1
    # a gap of 12 frames (0.48 s) is shorter than 0.5 s and merged, 13 (0.52 s) is not
    for gap, runs in ((12, 1), (13, 2)):
        scores = np.r_[np.ones(20), np.zeros(gap), np.ones(20)]
        assert len(find_intervals(scores, 0.5, fps=25.0, merge_gap_s=0.5, min_duration_s=0)) == runs


def test_merge_and_drop():
    assert merge_gaps([(0, 10), (12, 20), (30, 31)], max_gap_frames=3) == [(0, 20), (30, 31)]
    assert merge_gaps([(0, 10), (13, 20)], max_gap_frames=3) == [(0, 10), (13, 20)]   # gap 3 is not < 3
    assert drop_short([(0, 10), (30, 31)], min_frames=2) == [(0, 10)]


def test_find_intervals_on_a_hand_made_curve():
    fps = 10.0
    scores = np.zeros(200)
    scores[20:40] = 0.9        # 2 s event...
    scores[45:60] = 0.8        # ...resumed after a 0.5 s dip: merged (gap < 1 s)
    scores[42] = 0.95          # a blip inside the gap, merged too
    scores[100:103] = 0.99     # 0.3 s spike: dropped (< 0.5 s)
    scores[150:170] = 0.7      # separate event, 9 s later
    intervals = find_intervals(scores, threshold=0.5, fps=fps, merge_gap_s=1.0, min_duration_s=0.5)
    assert [(iv.start_frame, iv.end_frame) for iv in intervals] == [(20, 60), (150, 170)]
    first = intervals[0]
    assert first.start_s == 2.0 and first.end_s == 6.0 and first.duration_s == 4.0
    assert first.peak_frame == 42 and first.peak_score == pytest.approx(0.95)
    assert first.mean_score == pytest.approx(scores[20:60].mean())
    # without merging the dip splits the event; with no minimum the spike stays
    split = find_intervals(scores, 0.5, fps, merge_gap_s=0.0, min_duration_s=0.0)
    assert [(iv.start_frame, iv.end_frame) for iv in split] == [(20, 40), (42, 43), (45, 60), (100, 103), (150, 170)]


def test_a_clip_shorter_than_the_minimum_keeps_its_run_only_when_flagged_throughout():
    # 0.4 s at 10 fps, under --min-duration 0.5: flagged throughout it is one interval (it could hold no
    # longer one); flagged on part of it, the run is dropped as in a long clip
    whole = find_intervals(np.full(4, 0.9), 0.5, fps=10.0, min_duration_s=0.5)
    assert [(iv.start_frame, iv.end_frame) for iv in whole] == [(0, 4)]
    assert find_intervals(np.r_[0.1, np.full(3, 0.9)], 0.5, fps=10.0, min_duration_s=0.5) == []


def test_clock_formatting():
    assert format_clock(0) == "00:00" and format_clock(75.4) == "01:15" and format_clock(3725) == "1:02:05"
    iv = find_intervals(np.r_[np.zeros(30), np.ones(10)], 0.5, fps=10.0, min_duration_s=0)[0]
    assert format_interval(iv) == "00:03\u201300:04"


def test_peak_frame_is_the_middle_of_the_highest_plateau():
    scores = np.r_[np.zeros(5), np.full(16, 0.7), np.full(16, 0.9), np.full(10, 0.8)]
    (interval,) = find_intervals(scores, 0.5, fps=25.0, min_duration_s=0)
    assert interval.peak_frame == 21 + 7 and interval.peak_score == 0.9


def test_linear_frame_scores_pass_through_snippet_centres_and_hold_at_the_ends():
    frames = snippets_to_frames([0.0, 1.0, 0.0], num_frames=50, mode="linear")
    assert frames.shape == (50,)
    assert np.all(frames[:8] == 0.0) and np.all(frames[40:] == 0.0)          # before/after the first/last centre
    assert frames[24] == pytest.approx(1 - 0.5 / 16) and frames[23] == pytest.approx(1 - 0.5 / 16)
    assert np.all(np.diff(frames[8:24]) > 0) and np.all(np.diff(frames[24:40]) < 0)   # a ramp, no 16-frame step
    assert frames[16] == pytest.approx(8.5 / 16)         # halfway up between centres 7.5 and 23.5
    # overlapping snippets: centres every stride frames
    lin = snippets_to_frames([0.0, 1.0], num_frames=24, snippet_len=16, stride=8, mode="linear")
    assert lin[7] == 0.0 and np.all(lin[16:] == 1.0) and lin[11] == pytest.approx(3.5 / 8)   # centres 7.5, 15.5
    assert np.array_equal(snippets_to_frames([0.3], 20, mode="linear"), np.full(20, 0.3))
    # a padded last snippet's centre is the middle of its real frames (32-35), not 39.5 past the end
    tail = snippets_to_frames([0.0, 0.0, 1.0], num_frames=36, mode="linear")
    assert np.all(tail[34:] == 1.0) and tail[33] == pytest.approx(9.5 / 10) and np.all(tail[:8] == 0.0)  # centres 23.5, 33.5
    assert np.array_equal(snippets_to_frames([0.0, 1.0], 17, mode="linear")[16:], [1.0])
    with pytest.raises(ValueError, match="frame mode"):
        snippets_to_frames([0.1], 16, mode="nearest")
