"""`vadpipe score` on the single-clip path: decoding in a thread ahead of the backbone, and `--window`
streaming the backbone's features into the windowed head (flat memory in clip length).

Same small world as test_score.py: a seeded LTGS head on the ``tiny`` recipe with random Inception
weights, generated H.264 clips of a few hundred frames. Backbone passes have a fixed size
(``clips_per_forward``): the CPU tuning picks it on timing, and another pass size changes float rounding.
"""
from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest

import vadpipe.encode as encode
from conftest import make_video
from test_score import save_head
from vadpipe.checkpoint import score_features
from vadpipe.encode import PREFETCH_BATCHES, backbone_for_recipe, encode_clip
from vadpipe.extractors.presets import make_recipe
from vadpipe.prefetch import prefetched
from vadpipe.score import ScoreOptions, Scorer, run_score
from vadpipe.window import WindowScorer, score_windowed

BATCH, PASS = 2, 2        # snippets per encoder call, clips per backbone pass


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def recipe():
    return make_recipe("i3d-inception", "tiny", weights_sha256=None)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, recipe):
    return save_head(tmp_path_factory.mktemp("run") / "best.pt", recipe)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """120 frames: 8 snippets, the last one partial."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 120, width=80, height=60, fps=25.0)


def scorer(ckpt, **options) -> Scorer:
    return Scorer(ckpt, ScoreOptions(device="cpu", progress=False, batch_size=BATCH, clips_per_forward=PASS,
                                     **options))


def test_threaded_decoding_gives_the_sequential_features(clip, recipe):
    backbone = backbone_for_recipe(recipe, None, "cpu")
    sequential, reader0 = encode_clip(clip, recipe, backbone, batch_size=BATCH, clips_per_forward=PASS, prefetch=0)
    threaded, reader2 = encode_clip(clip, recipe, backbone, batch_size=BATCH, clips_per_forward=PASS, prefetch=2)
    assert sequential.shape[0] == 8 and np.array_equal(threaded, sequential)
    assert reader2.info.frames == reader0.info.frames == 120
    assert np.array_equal(reader2.frame_times, reader0.frame_times)


def test_score_window_streams_the_same_numbers_as_encoding_the_whole_clip_first(clip, recipe, ckpt):
    windowed = scorer(ckpt, window=4)
    # what `score --window` did before streaming: every feature first, one after the other, then the head
    feats, _ = encode_clip(clip, recipe, windowed.backbone, batch_size=BATCH, clips_per_forward=PASS, prefetch=0)
    expected = score_windowed(windowed.model, feats, window=4)
    got = windowed.scores_from_video(clip)
    assert np.array_equal(got.snippet_scores, expected)
    assert got.frame_scores.size == 120 and np.array_equal(got.frame_scores[::16], expected)
    # the window bounds what a score sees: a change to the last snippet moves the first snippet's
    # whole-clip score, never its windowed one (snippet 0 is scored in the window [0, 4)). (Comparing the
    # two scorings of the clip itself was flaky: random features barely differ, the numbers once tied.)
    changed = np.array(feats, copy=True)
    changed[-1] += 1.0
    assert np.array_equal(score_windowed(windowed.model, changed, window=4)[:4], expected[:4])
    assert score_features(windowed.model, changed)[0] != score_features(windowed.model, feats)[0]
    assert set(got.timings) == {"extract_s", "head_s"} and min(got.timings.values()) >= 0


def test_streaming_holds_a_window_of_features_and_a_few_decoded_batches(tmp_path, ckpt, monkeypatch):
    """At every snippet the window scorer takes: the decoded batches and feature arrays still alive, and
    how far the backbone is ahead of the head (features made but not yet scored must be held somewhere)."""
    long_clip = make_video(tmp_path / "long.mp4", 16 * 16, width=64, height=48)
    frames, features, seen = [], [], []
    to_model_size, encoder_call, push = encode.to_model_size, encode.SnippetEncoder.__call__, WindowScorer.push

    def track(made, registry):
        registry.append(weakref.ref(made))
        return made

    def alive(registry) -> int:
        return sum(ref().shape[0] for ref in registry if ref() is not None)

    def counting_push(self, feats, tag=None):
        out = push(self, feats, tag)
        encoded = sum(ref().shape[0] if ref() is not None else BATCH for ref in features)
        seen.append((alive(frames), alive(features), encoded - self.count, len(self._feats)))
        return out

    monkeypatch.setattr(encode, "to_model_size", lambda *a: track(to_model_size(*a), frames))
    monkeypatch.setattr(encode.SnippetEncoder, "__call__", lambda self, g: track(encoder_call(self, g), features))
    monkeypatch.setattr(WindowScorer, "push", counting_push)
    window = 3
    scores = scorer(ckpt, window=window).scores_from_video(long_clip)
    assert scores.snippet_scores.size == len(seen) == 16
    held_frames, held_features, ahead, held_window = (max(column) for column in zip(*seen))
    assert held_window == window
    assert held_frames <= (PREFETCH_BATCHES + 2) * BATCH      # queued, being handed over, being encoded
    assert ahead < BATCH                                      # the rest of the batch being pushed
    assert held_features <= window + 2 * BATCH                # the window's rows keep their batches alive


def test_a_decode_error_mid_clip_is_one_line_naming_the_file(clip, ckpt, tmp_path, monkeypatch, capsys):
    to_model_size, calls = encode.to_model_size, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("decoder fell over\nsecond line")
        return to_model_size(*args)

    monkeypatch.setattr(encode, "to_model_size", failing)
    code = run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path, device="cpu", progress=False, batch_size=BATCH,
                                          clips_per_forward=PASS, window=4, threshold="0.5"))
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {clip}: RuntimeError: decoder fell over"]
    assert not [t for t in threading.enumerate() if t.name == "decode"]    # the decode thread has ended


def _score_two(clip, tmp_path, **options):
    """run_score on ``clip`` and a copy of it named again.mp4: (exit code, error lines, seconds)."""
    import io
    import contextlib

    again = tmp_path / "again.mp4"
    again.write_bytes(clip.read_bytes())
    err, start = io.StringIO(), time.monotonic()
    with contextlib.redirect_stderr(err):
        code = run_score([str(clip), str(again)], checkpoint=str(options.pop("ckpt")), echo=lambda s: None,
                         options=ScoreOptions(out_dir=tmp_path / "s", device="cpu", progress=False, batch_size=BATCH,
                                              clips_per_forward=PASS, threshold="0.5", **options))
    return code, [line for line in err.getvalue().splitlines() if line.startswith("error:")], time.monotonic() - start


def _decoder_that(monkeypatch, name: str, act) -> None:
    """encode.reader_for, which the decode process calls, runs ``act`` first for the clip called ``name``."""
    real = encode.reader_for

    def reader_for(path, recipe):
        if str(path).endswith(name):
            act()
        return real(path, recipe)

    monkeypatch.setattr(encode, "reader_for", reader_for)


def test_a_decoder_that_hangs_costs_its_clip_and_the_next_is_scored(clip, ckpt, tmp_path, monkeypatch):
    """The first clip's decoder never returns: after --decode-timeout that clip is one error line, the next
    clip is scored, the exit code is 1, and the hung decoder's process is gone."""
    _decoder_that(monkeypatch, "/clip.mp4", lambda: time.sleep(120))
    # 5 s: the other clip's fork, open and first batch come within it on a loaded machine
    code, errors, seconds = _score_two(clip, tmp_path, ckpt=ckpt, decode_timeout=5.0)
    assert code == 1 and seconds < 60
    assert errors == [f"error: {clip}: decoding stalled: no frames from its decoder in 5 s (--decode-timeout)"]
    assert (tmp_path / "s" / "again.json").is_file() and not (tmp_path / "s" / "clip.json").exists()
    import multiprocessing

    assert not multiprocessing.active_children()               # terminated, not left hanging


def test_a_decoder_that_crashes_costs_its_clip_and_the_next_is_scored(clip, ckpt, tmp_path, monkeypatch):
    """The first clip's decoder dies of a segfault (decord or FFmpeg on a corrupt file): that clip is one error
    line naming it, the next clip is scored, the exit code is 1."""
    import os
    import signal

    _decoder_that(monkeypatch, "/clip.mp4", lambda: os.kill(os.getpid(), signal.SIGSEGV))
    code, errors, _ = _score_two(clip, tmp_path, ckpt=ckpt)
    assert code == 1 and len(errors) == 1, errors
    assert errors[0] == f"error: {clip}: the decoder crashed its process (killed by SIGSEGV)"
    assert (tmp_path / "s" / "again.json").is_file() and not (tmp_path / "s" / "clip.json").exists()


def test_the_decode_process_gives_the_threads_features_and_the_readers_account(clip, recipe):
    """isolate=True (score's path): the same features to the bit, and the same info and frame times."""
    backbone = backbone_for_recipe(recipe, None, "cpu")
    threaded = encode.ClipFeatures(clip, recipe, backbone, batch_size=BATCH, clips_per_forward=PASS)
    isolated = encode.ClipFeatures(clip, recipe, backbone, batch_size=BATCH, clips_per_forward=PASS, isolate=True)
    assert isolated.reader is None
    assert np.array_equal(isolated.all(), threaded.all())
    assert isolated.reader.info == threaded.reader.info
    assert np.array_equal(isolated.reader.frame_times, threaded.reader.frame_times)


def test_prefetched_raises_stalled_past_its_limit_and_leaves_the_producer():
    from vadpipe.prefetch import Stalled

    release = threading.Event()

    def slow():
        yield 1
        release.wait(30)
        yield 2

    stream = prefetched(slow(), depth=1, name="slow", stall_s=0.3)
    assert next(stream) == 1
    start = time.monotonic()
    with pytest.raises(Stalled, match="nothing from the slow thread in 0.3 s"):
        next(stream)
    assert time.monotonic() - start < 5                        # not held by the producer's wait
    release.set()


def test_prefetched_keeps_order_raises_after_the_items_and_stops_when_closed():
    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield from (1, 2)
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in prefetched(failing(), depth=1):
            got.append(item)
    assert got == [1, 2]

    produced, finished = [], threading.Event()

    def endless():
        try:
            while True:
                produced.append(len(produced))
                yield produced[-1]
        finally:
            finished.set()

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert finished.wait(5) and len(produced) <= 3 + 2 + 1    # bounded ahead, and the producer ended
    with pytest.raises(ValueError):
        next(prefetched(iter(()), depth=0))


@pytest.mark.parametrize("command,target", [("score", "vadpipe.score.run_score"),
                                            ("calibrate", "vadpipe.site_calibration.site_calibrate")])
def test_decode_timeout_reaches_score_and_calibrate(clip, ckpt, monkeypatch, command, target):
    from click.testing import CliRunner

    from vadpipe.cli import main

    seen = []

    def capture(*args, **kwargs):
        seen.append(next(a for a in (*args, *kwargs.values()) if isinstance(a, ScoreOptions)))
        raise SystemExit(0)

    monkeypatch.setattr(target, capture)
    result = CliRunner().invoke(main, [command, str(clip), "--checkpoint", str(ckpt), "--decode-timeout", "42"])
    assert result.exit_code == 0, result.output
    assert seen[0].decode_timeout == 42.0


def test_a_decode_process_that_leaves_early_or_exits_is_the_clips_error(clip, recipe, monkeypatch):
    """A child that stops without its closing item, or exits with a status, is a VideoDecodeError naming the clip."""
    import os

    from vadpipe import decode_process
    from vadpipe.errors import VideoDecodeError

    monkeypatch.setattr(decode_process._ClipBatches, "__iter__", lambda self: iter(()))
    with pytest.raises(VideoDecodeError, match=r"clip.mp4: the decode process ended before the clip did"):
        list(decode_process.DecodeProcess(str(clip), recipe, BATCH))

    def exits(self):
        os._exit(3)
        yield

    monkeypatch.setattr(decode_process._ClipBatches, "__iter__", exits)
    with pytest.raises(VideoDecodeError, match=r"clip.mp4: the decoder crashed its process \(exit status 3\)"):
        list(decode_process.DecodeProcess(str(clip), recipe, BATCH))


DECODER_OF_A_KILLED_PROCESS = """
import os, sys, time
from vadpipe import decode_process
from vadpipe.extractors.presets import make_recipe

def stuck(self):                      # a decoder stuck where torch's check of its parent never runs
    with open(sys.argv[1] + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(120)
    yield

decode_process._ClipBatches.__iter__ = stuck
list(decode_process.DecodeProcess("clip.mp4", make_recipe("i3d-inception", "tiny", weights_sha256=None), 2))
"""


def _gone(pid: int) -> bool:
    """No such process, or a zombie (a container's init may not reap the orphans it adopts)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_decode_child_dies_with_a_process_killed_by_sigkill(tmp_path):
    """`kill -9` of the scoring process while its decode child is stuck: the child goes too (the kernel's
    parent-death signal), not 120 s later; extract's decode workers start the same way."""
    import os
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", DECODER_OF_A_KILLED_PROCESS, str(pid_file)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert parent.poll() is None and time.monotonic() < deadline, "the decode child never started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert not _gone(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the decode child outlived its killed parent")
