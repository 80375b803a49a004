import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from vadpipe.errors import VideoDecodeError
from vadpipe.features import expected_snippets
from vadpipe.video import VideoReader, find_videos, frame_times, probe, short_side_size, write_video
from vadpipe.video_checks import clockwise_rotation, damage_reason, frame_index_to_time, upright, variable_rate

from conftest import make_video, synthetic_frames


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
    assert expected_snippets(37, 16, 8) == len(snippets)


class _Frames:
    """Stands in for a VideoReader: ``snippets`` only reads ``frames()``."""

    def __init__(self, n: int):
        self.n = n

    def frames(self):
        return (np.full((2, 2, 3), i, dtype=np.uint8) for i in range(self.n))


def test_expected_snippets_follows_the_readers_rule_at_every_stride():
    for length in (8, 16):
        for stride in range(1, length + 1):
            for n in range(1, 3 * length + 2):
                got = sum(1 for _ in VideoReader.snippets(_Frames(n), length, stride))
                assert expected_snippets(n, length, stride) == got, (n, length, stride)


def test_fps_resampling(video_factory):
    path = video_factory(frames=50, fps=25)
    reader = VideoReader(path, fps=10)
    frames = list(reader.frames())
    assert len(frames) == 20 and reader.info.fps == 10
    # the source's own count and rate stay known (scores are put back on its frames), absent when not resampling
    assert (reader.info.source_frames, reader.info.source_fps) == (50, 25.0)
    assert reader.info.to_dict()["source_frames"] == 50
    native = VideoReader(path)
    list(native.frames())
    assert native.info.source_frames is None and "source_frames" not in native.info.to_dict()


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


# --- damage, timing, rotation ----------------------------------------------------------------------

def truncated_mp4(path, frames=80, keep=0.3, width=160, height=120):
    """An MP4 with its index at the front (faststart) and only the first ``keep`` of its bytes:
    it opens and claims every frame, but the data of most frames is gone."""
    whole = path.with_name(path.stem + "_whole.mp4")
    write_video(whole, synthetic_frames(frames, width, height), fps=25, crf=12,
                container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[:4096]          # the index really is first
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_timed(path, pts_ms, rotation=None, width=64, height=48):
    """A clip whose frame i has timestamp ``pts_ms[i]`` (ms); ``rotation``: display matrix, degrees ccw."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image, pts in zip(synthetic_frames(len(pts_ms), width, height), pts_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_truncated_faststart_mp4_is_damaged_and_ffmpeg_stays_quiet(tmp_path, backend, capfd):
    cut = truncated_mp4(tmp_path / "cut.mp4")
    reader = VideoReader(cut, backend=backend)
    snippets = list(reader.snippets())
    assert 0 < reader.info.frames < 40 and len(snippets) >= 1
    assert reader.info.damaged and "of the 80 frames the container claims" in reader.info.damage
    assert "FFmpeg: [" in reader.info.damage and "\n" not in reader.info.damage   # FFmpeg's words, one line
    quick = probe(cut, count="packets")
    assert quick.damaged and "claims 80 frames" in quick.damage
    assert probe(cut).damaged
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""           # nothing printed by FFmpeg or decord


def test_intact_clip_is_not_damaged(video_factory, media_dir):
    reader = VideoReader(video_factory(frames=40))
    list(reader.frames())
    assert not reader.info.damaged and reader.info.damage == "" and not reader.info.vfr
    for name in ("bikes.mp4", "vtest.avi"):
        info = probe(media_dir / name)
        assert not info.damaged and not info.vfr, info.damage


def test_variable_frame_rate_times_come_from_timestamps(tmp_path):
    pts_ms = [0, 40, 80, 120, 600, 640, 680, 1400, 1440, 1480, 1520, 1560, 1600, 1640, 1680, 1720, 4800]
    path = write_timed(tmp_path / "vfr.mp4", pts_ms)
    expected = np.array(pts_ms) / 1000
    for backend in ("pyav", "decord"):
        reader = VideoReader(path, backend=backend)
        snippets = list(reader.snippets())
        assert np.allclose(reader.frame_times, expected, atol=1e-6)
        assert reader.info.vfr and any(n.startswith("variable frame rate") for n in reader.info.notes)
        assert np.allclose(snippets[0].times, expected[:16]) and np.allclose(snippets[1].times, expected[16:])
        # frame 16 is at 4.8 s, not 16 / average fps; padded frames continue at 1 / fps after the last
        assert reader.time_of(16) == pytest.approx(4.8)
        assert np.allclose(reader.time_of(np.array([0, 17])), [0.0, 4.8 + 1 / reader.info.fps])
    assert np.allclose(frame_times(path), expected)
    assert probe(path, count="packets").vfr and probe(path).vfr


def test_constant_rate_times_are_frame_over_fps(video_factory):
    path = video_factory(frames=30, fps=20)
    reader = VideoReader(path, fps=10)            # resampled: each output frame keeps its source's time
    list(reader.frames())
    assert np.allclose(reader.frame_times, np.arange(15) / 10) and not reader.info.vfr
    assert np.allclose(frame_times(path), np.arange(30) / 20)
    assert frame_index_to_time([], np.array([0, 5]), 20.0).tolist() == [0.0, 0.25]


def test_display_matrix_rotation_is_applied_before_features(tmp_path):
    path = write_timed(tmp_path / "phone.mp4", [40 * i for i in range(20)], rotation=90)   # 90 ccw
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (270, 48, 64) and info.frames == 20
    reader = VideoReader(path, short_side=24, backend="auto")     # decord ignores the matrix: PyAV decodes
    frame = next(reader.frames())
    assert frame.shape == (32, 24, 3) and reader.info.decoder == "pyav"
    full = next(VideoReader(path).frames())
    assert full.shape == (64, 48, 3)
    # turned 90 degrees counter-clockwise: the coded top-left red corner is now bottom-left
    assert full[-8:, :8, 0].mean() > 200 and full[-8:, :8, 1].mean() < 60
    assert full[:8, :8, 0].mean() < 200


def test_rotation_rules():
    assert clockwise_rotation(-90, None) == 90           # a phone's portrait clip: matrix reads -90
    assert clockwise_rotation(90, None) == 270
    assert clockwise_rotation(0, "90") == 90             # legacy tag, clockwise
    assert clockwise_rotation(0, "junk") == 0 and clockwise_rotation(180.0, "90") == 180
    frame = np.arange(6).reshape(2, 3, 1).repeat(3, axis=2)
    turned = upright(frame, 90)
    assert turned.shape == (3, 2, 3) and turned.flags.c_contiguous
    assert turned[0, :, 0].tolist() == [3, 0]            # clockwise: the bottom-left comes to the top-left
    assert upright(frame, 0) is frame


def test_damage_and_rate_rules():
    assert damage_reason(80, 80) == "" and damage_reason(79, 80) == ""
    assert "decoded 11 of the 80" in damage_reason(11, 80)
    assert "holds 27 packets" in damage_reason(None, 80, packets=27)
    assert "stopped after 50" in damage_reason(50, 52, stop_error="Invalid data")
    reason = damage_reason(80, 80, mid_errors=["[h264] a", "[h264] a", "[h264] b"])
    assert reason.startswith("3 decoder error(s) mid-stream") and "[h264] a | [h264] b" in reason
    assert variable_rate([0, 0.04, 0.08, 0.121, 0.16]) == ""     # jitter is not VFR
    assert variable_rate([0, 0.04, 0.08, 0.2]).startswith("variable frame rate")



FORKED_DECODE = """
import os, signal, sys, av
from vadpipe.video import VideoReader
path = sys.argv[1]
with av.open(path) as c:                  # the parent's main thread converts as PyAV does by default
    for i, f in enumerate(c.decode(video=0)):
        f.to_ndarray(format="rgb24")
        if i == 3:
            break
pid = os.fork()
if pid == 0:                              # a decode worker forked from it, as extract's are
    signal.alarm(20)
    frames = sum(1 for _ in VideoReader(path, backend="pyav").frames())
    os._exit(0 if frames == 40 else 3)
print(os.waitpid(pid, 0)[1])
"""


def test_a_forked_decode_worker_converts_frames_with_a_context_of_its_own(tmp_path):
    """PyAV 18.1.1 keeps one swscale context per thread, with a pool of slice threads by default; a worker
    forked from a process that had converted a frame inherited it without its threads and hung for ever on
    its first conversion (twice in a fresh clone's suite). rgb_array converts with a context the worker
    makes, with no pool; the child is killed by an alarm after 20 s if it hangs."""
    clip = make_video(tmp_path / "clip.mp4", 40)
    done = subprocess.run([sys.executable, "-c", FORKED_DECODE, str(clip)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["0"], done.stdout + done.stderr      # exited 0: decoded all 40 frames


def test_frames_convert_to_rgb_on_the_calling_thread():
    """rgb_array makes no swscale threads (counted in a fresh process) and gives PyAV's default pixels."""
    code = ("import os, av, numpy as np\n"
            "from vadpipe.video import rgb_array\n"
            "f = av.VideoFrame.from_ndarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3), "
            "format='rgb24').reformat(format='yuv420p', threads=1)\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "ours = rgb_array(f, (32, 24))\n"
            "after = len(os.listdir('/proc/self/task'))\n"
            "default = f.to_ndarray(format='rgb24', width=32, height=24)\n"
            "print(before, after, len(os.listdir('/proc/self/task')), ours.shape, (ours == default).all())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    before, after, with_default = map(int, out[:3])
    assert after == before                          # no swscale threads made for our conversion
    assert with_default > before                     # (PyAV's default does make them: the test sees the pool)
    assert out[3:] == ["(24,", "32,", "3)", "True"]  # and the pixels are the default conversion's
