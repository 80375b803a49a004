import numpy as np
import pytest

from vadpipe.errors import VideoDecodeError
from vadpipe.video import VideoReader, find_videos, probe, short_side_size

from conftest import make_video


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frame_count_and_snippets_with_tail(video_factory, backend):
    path = video_factory(frames=40)
    reader = VideoReader(path, backend=backend)
    snippets = list(reader.snippets(16, 16))
    assert [s.start_frame for s in snippets] == [0, 16, 32]
    assert [s.valid for s in snippets] == [16, 16, 8]
    assert all(s.frames.shape == (16, 48, 64, 3) and s.frames.dtype == np.uint8 for s in snippets)
    # The tail repeats its last real frame.
    tail = snippets[-1].frames
    assert np.array_equal(tail[8:], np.repeat(tail[7:8], 8, axis=0))
    assert reader.info.frames == 40 and reader.info.frames_exact
    assert reader.info.decoder == backend


def test_frames_keep_order_and_rgb(video_factory):
    path = video_factory(frames=20)
    frames = list(VideoReader(path, backend="pyav").frames())
    means = [f[24:, 16:].mean() for f in frames]
    assert np.all(np.diff(means[:15]) > 0)            # brightness encodes the index
    corner = frames[0][:8, :8].reshape(-1, 3).mean(0)
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60   # red stays red (RGB, not BGR)


def test_decord_and_pyav_agree(video_factory):
    path = video_factory(frames=24, width=96, height=64)
    a = np.stack(list(VideoReader(path, backend="decord").frames())).astype(int)
    b = np.stack(list(VideoReader(path, backend="pyav").frames())).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 2.0


def test_short_side_resize_keeps_aspect(video_factory):
    path = video_factory(frames=16, width=128, height=64)
    snippet = next(VideoReader(path, short_side=32).snippets())
    assert snippet.frames.shape[1:] == (32, 64, 3)
    assert short_side_size(640, 360, 256) == (455, 256)
    assert short_side_size(360, 640, 256) == (256, 455)


def test_clip_shorter_than_a_snippet_is_padded(video_factory):
    path = video_factory(frames=5)
    snippets = list(VideoReader(path).snippets())
    assert len(snippets) == 1 and snippets[0].valid == 5 and snippets[0].frames.shape[0] == 16


def test_overlapping_stride(video_factory):
    path = video_factory(frames=37)
    snippets = list(VideoReader(path).snippets(16, 8))
    assert [(s.start_frame, s.valid) for s in snippets] == [(0, 16), (8, 16), (16, 16), (24, 13)]


def test_fps_resampling(video_factory):
    path = video_factory(frames=50, fps=25)
    reader = VideoReader(path, fps=10)
    frames = list(reader.frames())
    assert len(frames) == 20 and reader.info.fps == 10


def test_probe_counts_and_packets(video_factory):
    path = video_factory(frames=33)
    assert probe(path).frames == 33
    assert probe(path, count="packets").frames == 33


def test_bad_inputs_give_one_line_errors(tmp_path, video_factory):
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = video_factory(frames=64, width=160, height=120)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:200])
    for path, cause in [(missing, "no such file"), (text, "cannot open"), (empty, "empty file"),
                        (truncated, "")]:
        with pytest.raises(VideoDecodeError) as err:
            VideoReader(path).count_frames()
        message = str(err.value)
        assert str(path) in message and "\n" not in message and cause in message


def test_truncated_tail_keeps_decoded_frames(tmp_path, video_factory):
    good = video_factory(frames=60, width=160, height=120)
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # moov atom first? if not, opening fails cleanly
    try:
        reader = VideoReader(cut)
        n = sum(1 for _ in reader.frames())
    except VideoDecodeError as exc:
        assert str(cut) in str(exc)
    else:
        assert 0 < n <= 60


def test_find_videos_is_recursive_and_sorted(tmp_path):
    make_video(tmp_path / "b" / "x.mp4", 4)
    make_video(tmp_path / "a.mp4", 4)
    (tmp_path / "readme.txt").write_text("hi")
    assert [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)] == ["a.mp4", "b/x.mp4"]


def test_sample_media(media_dir):
    bikes = probe(media_dir / "bikes.mp4")
    assert (bikes.frames, bikes.width, bikes.height, bikes.fps, bikes.codec) == (250, 640, 272, 25.0, "h264")
    vtest = probe(media_dir / "vtest.avi")
    assert (vtest.frames, vtest.width, vtest.height, vtest.fps) == (795, 768, 576, 10.0)
    reader = VideoReader(media_dir / "bikes.mp4", short_side=128)
    assert sum(1 for _ in reader.snippets()) == 16   # ceil(250 / 16)
