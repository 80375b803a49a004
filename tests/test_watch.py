"""`vadpipe watch`: windowed head scoring, online intervals, live sources over loopback, failures.

Streams are served by ``vadpipe.loopback`` on 127.0.0.1 (paced: the file takes
about its own duration to arrive, like a camera); the model is a small seeded
head on the ``tiny`` recipe with random Inception weights. Every loop here is
bounded in count and time.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vadpipe.checkpoint import Checkpoint, build_model, score_features
from vadpipe.cli import main
from vadpipe.config import ModelConfig
from vadpipe.errors import ConfigError
from vadpipe.extractors.presets import make_recipe
from vadpipe.intervals import find_intervals
from vadpipe.live_events import OnlineIntervals
from vadpipe.loopback import Route, closed_port, serve
from vadpipe.score import ScoreOptions, run_score
from vadpipe.snippet_queue import SnippetQueue
from conftest import make_video
from vadpipe.encode import reader_for
from vadpipe.stream import FrameSource, SnippetStream, StreamError, StreamOptions, classify
from vadpipe.video import write_video
from vadpipe.watch import EventSink, LineLog, Tag, WatchOptions, run_watch, stop_on_signals
from vadpipe.window import WindowScorer, score_windowed, window_start

FAST = dict(open_timeout_s=5.0, read_timeout_s=5.0, backoff_s=0.05, follow_timeout_s=0.3)


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    yield


# --- windowed scoring ----------------------------------------------------------------------------

def small_head(name: str, dim: int = 24) -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model(ModelConfig(name=name, feature_dim=dim, heads=4, ffn_dim=16, hidden=(8, 4))).eval()


@pytest.mark.parametrize("name", ["ltgs", "rtfm", "mil"])
def test_a_clip_shorter_than_the_window_scores_as_a_whole(name):
    model = small_head(name)
    rng = np.random.default_rng(0)
    for t, crops in ((1, 1), (5, 2), (8, 1)):
        feats = rng.normal(size=(t, crops, 24)).astype(np.float32)
        whole = score_features(model, feats)
        for window, lookahead in ((8, 0), (8, 3), (40, 0)):
            assert np.array_equal(score_windowed(model, feats, window, lookahead), whole)


@pytest.mark.parametrize("name", ["ltgs", "rtfm", "mil"])
def test_a_longer_clip_follows_the_window_rule(name):
    model = small_head(name)
    feats = np.random.default_rng(1).normal(size=(13, 1, 24)).astype(np.float32)
    for window, lookahead in ((4, 0), (4, 2), (1, 0)):
        got = score_windowed(model, iter(feats), window, lookahead)      # a generator: streamed
        assert got.shape == (13,)
        for i in range(13):
            a = window_start(i, 13, window, lookahead)
            assert got[i] == score_features(model, feats[a:a + window])[i - a]
    if name != "mil":     # the window changes what a context-using head sees
        assert not np.allclose(score_windowed(model, feats, 4), score_features(model, feats))
    else:                 # a per-snippet head does not care
        assert np.allclose(score_windowed(model, feats, 4), score_features(model, feats), atol=1e-6)


def test_window_scorer_is_online_and_holds_one_window():
    model = small_head("ltgs")
    scorer = WindowScorer(model, window=3)
    feats = np.random.default_rng(2).normal(size=(6, 24)).astype(np.float32)
    ready = [[s.index for s in scorer.push(f, tag=i)] for i, f in enumerate(feats)]
    assert ready == [[], [], [0, 1, 2], [3], [4], [5]]      # the first window waits to be full
    assert len(scorer._feats) == 3 and scorer.finish() == []
    with pytest.raises(ConfigError):
        WindowScorer(model, window=2, lookahead=2)


# --- online intervals ----------------------------------------------------------------------------

def test_online_intervals_equal_find_intervals():
    rng = np.random.default_rng(0)
    for _ in range(300):
        t, length = int(rng.integers(1, 25)), 16
        scores = rng.random(t) ** rng.choice([0.3, 1.0, 3.0])
        frames = t * length - int(rng.integers(0, length))
        fps = float(rng.choice([10, 25, 30]))
        gap, min_s = float(rng.choice([0, 0.3, 1.0, 2.5])), float(rng.choice([0, 0.5, 1.0, 3.0]))
        expected = find_intervals(np.repeat(scores, length)[:frames], 0.5, fps, gap, min_s)
        online = OnlineIntervals(0.5, fps, gap, min_s)
        events = []
        for i, s in enumerate(scores):
            events += online.add(i * length, min((i + 1) * length, frames), float(s))
        events += online.finish()
        assert [e.kind for e in events] == ["start", "end"] * len(expected)
        assert [e.event.interval for e in events if e.kind == "end"] == expected


# --- loopback sources ----------------------------------------------------------------------------

PATTERN = "..##.#."     # per snippet: "." a still grey frame, "#" noise (the head below scores them apart)


def pattern_frames(n: int = 100):
    rng = np.random.default_rng(0)
    for i in range(n):
        if PATTERN[i // 16] == "#":
            yield rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
        else:
            yield np.full((72, 96, 3), 40 + i, dtype=np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An MPEG-TS clip of 100 frames at 50 fps (7 snippets, the last partial): 2 s of stream."""
    path = tmp_path_factory.mktemp("clip") / "clip.ts"
    write_video(path, pattern_frames(), fps=50.0, crf=12)
    return path


@pytest.fixture(scope="module")
def server(clip):
    data = clip.read_bytes()
    routes = {"/clip.ts": Route(data, 2.0), "/cut.ts": Route(data, 1.0, cut=0.5),
              "/text": Route(b"not a video\n" * 2000, content_type="text/plain")}
    with serve(routes) as httpd:
        yield httpd.url


@pytest.fixture(scope="module")
def recipe():
    return make_recipe("i3d-inception", "tiny", weights_sha256=None)


def save_scaled_mil(path: Path, recipe) -> Path:
    """A seeded MIL head whose first layer is scaled up, saved for ``recipe``: random Inception features
    differ by ~1e-5 between a still and a noisy snippet, and this head turns that into a visible score
    change."""
    torch.manual_seed(3)
    config = ModelConfig(name="mil", feature_dim=1024, hidden=(32, 16))
    model = build_model(config)
    with torch.no_grad():
        model.classifier.net[0].weight.mul_(1e7)
    Checkpoint.of(model, config, recipe=recipe).save(path)
    return path


def widest_gap(scores: np.ndarray):
    """(a threshold in the widest gap between ``scores``, that gap's width)."""
    ordered = np.sort(scores)
    k = int(np.argmax(np.diff(ordered)))
    return float(ordered[k] + ordered[k + 1]) / 2, float(ordered[k + 1] - ordered[k])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, recipe):
    return save_scaled_mil(tmp_path_factory.mktemp("run") / "best.pt", recipe)


@pytest.fixture(scope="module")
def offline(tmp_path_factory, clip, ckpt):
    """`vadpipe score` of the clip file: (snippet scores, frame scores, a threshold that finds something)."""
    out = tmp_path_factory.mktemp("score")
    assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=out, threshold="0.5", device="cpu", progress=False)) == 0
    report = json.loads((out / "clip.json").read_text())
    frame_scores = np.loadtxt(out / "clip.scores.csv", delimiter=",", skiprows=1)[:, 2]
    snippet_scores = frame_scores[::16]
    assert snippet_scores.size == 7 and report["frames"] == 100
    # a threshold in the widest gap between the clip's own scores (the CSV keeps 6 decimals)
    threshold, gap = widest_gap(snippet_scores)
    assert gap > 1e-3
    return snippet_scores, frame_scores, threshold


def read_csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def read_events(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("decode_process", [True, False])     # the child process (default) or a thread
def test_watching_a_loopback_stream_matches_score(server, ckpt, offline, tmp_path, decode_process):
    snippet_scores, frame_scores, threshold = offline
    opts = WatchOptions(threshold=str(threshold), merge_gap_s=0.2, min_duration_s=0.1, device="cpu",
                        csv=tmp_path / "live.csv", events=tmp_path / "events.jsonl", snapshots=tmp_path / "snaps",
                        on_event=f"echo \"$VADPIPE_EVENT_KIND $VADPIPE_EVENT_ID\" >> {tmp_path / 'hook.txt'}",
                        stream=StreamOptions(queue_snippets=16, max_reconnects=0, decode_process=decode_process,
                                             **FAST),
                        workers=3)            # snippets through the backbone concurrently: still in order
    started = time.monotonic()
    summary = run_watch(f"{server}/clip.ts", checkpoint=str(ckpt), options=opts, warn=lambda s: None)
    assert time.monotonic() - started < 60                    # it stopped by itself at the end of the stream
    assert summary.exit_code == 0 and summary.error is None and summary.dropped == 0
    rows = read_csv(tmp_path / "live.csv")
    assert rows[:, 0].tolist() == list(range(7)) and rows[-1, 2] == 100     # every frame, the tail included
    np.testing.assert_allclose(rows[:, 5], snippet_scores, atol=1e-5)       # a clip shorter than the window
    expected = find_intervals(frame_scores, threshold, 50.0, 0.2, 0.1)
    ends = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "end"]
    starts = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "start"]
    assert expected and len(ends) == len(starts) == len(expected) == summary.events
    for got, want in zip(ends, expected):
        assert abs(got["start_frame"] - want.start_frame) <= 16 and abs(got["end_frame"] - want.end_frame) <= 16
        assert Path(got["snapshot"]).is_file()
    hooks = (tmp_path / "hook.txt").read_text().split("\n")
    assert sorted(h for h in hooks if h) == sorted(f"{e['event']} {e['id']}" for e in starts + ends)


def grow_in_background(source: Path, grown: Path) -> threading.Thread:
    """``grown`` written from ``source``'s bytes as a recorder writes: 4 KB now, then 8 KB every 50 ms."""
    data = source.read_bytes()
    grown.write_bytes(data[:4096])

    def writer():
        with open(grown, "ab") as fh:
            for start in range(4096, len(data), 8192):
                time.sleep(0.05)
                fh.write(data[start:start + 8192])
                fh.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    return thread


def test_a_growing_file_is_followed_until_it_stops_growing(clip, ckpt, offline, tmp_path):
    snippet_scores = offline[0]
    grown = tmp_path / "grow.ts"
    thread = grow_in_background(clip, grown)
    opts = WatchOptions(threshold="0.5", device="cpu", csv=tmp_path / "g.csv",
                        stream=StreamOptions(**{**FAST, "follow_timeout_s": 1.0}))
    summary = run_watch(str(grown), checkpoint=str(ckpt), options=opts, warn=lambda s: None)
    thread.join(10)
    assert summary.exit_code == 0
    np.testing.assert_allclose(read_csv(tmp_path / "g.csv")[:, 5], snippet_scores, atol=1e-5)


def test_a_source_that_dies_mid_stream(server, ckpt, tmp_path):
    lines = []
    opts = WatchOptions(threshold="0.5", device="cpu", csv=tmp_path / "cut.csv", events=tmp_path / "ev.jsonl",
                        stream=StreamOptions(max_reconnects=1, **FAST))
    started = time.monotonic()
    summary = run_watch(f"{server}/cut.ts", checkpoint=str(ckpt), options=opts, warn=lines.append)
    assert time.monotonic() - started < 60
    assert summary.exit_code == 1 and summary.reconnects == 1
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "stream lost" in errors[0] and "gave up after 1 reconnect" in errors[0]
    rows = read_csv(tmp_path / "cut.csv")
    assert 1 <= len(rows) == summary.scored          # what arrived before the loss was scored and kept


@pytest.mark.parametrize("drop,expected", [("auto", None), ("on", True), ("off", False)])
def test_drop_option_reaches_the_stream(clip, ckpt, monkeypatch, drop, expected):
    """A file is scored whole unless --drop on (a growing recording watched for live alerts); URLs and
    devices drop when behind unless --drop off."""
    seen = []
    monkeypatch.setattr("vadpipe.watch.run_watch", lambda source, options, **kw: seen.append(options.stream)
                        or SimpleNamespace(exit_code=0))
    result = CliRunner().invoke(main, ["watch", str(clip), "--checkpoint", str(ckpt), "--drop", drop])
    assert result.exit_code == 0, result.output
    assert seen[0].drop is expected


@pytest.mark.parametrize("decode,expected", [(None, True), ("process", True), ("thread", False)])
def test_decode_option_reaches_the_stream(clip, ckpt, monkeypatch, decode, expected):
    seen = []
    monkeypatch.setattr("vadpipe.watch.run_watch", lambda source, options, **kw: seen.append(options.stream)
                        or SimpleNamespace(exit_code=0))
    args = ["watch", str(clip), "--checkpoint", str(ckpt)] + (["--decode", decode] if decode else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert seen[0].decode_process is expected


def test_a_file_with_drop_on_drops_whole_snippets_when_behind(clip, recipe):
    stream = SnippetStream(classify(str(clip)), recipe, StreamOptions(queue_snippets=1, drop=True, **FAST))
    got = []
    for snippet in stream:                 # the file is all there: decoding runs far ahead of a 0.3-s consumer
        got.append(snippet.index)
        time.sleep(0.3)
    assert stream.error is None and stream.dropped > 0 and len(got) + stream.dropped == stream.decoded
    whole = SnippetStream(classify(str(clip)), recipe, StreamOptions(queue_snippets=1, **FAST))
    assert [s.index for s in whole] == list(range(whole.decoded)) and whole.dropped == 0


def test_unreachable_url_and_non_video_are_one_line(server, ckpt, tmp_path):
    closed = closed_port()
    runner = CliRunner()
    for source, reason in ((f"http://127.0.0.1:{closed}/x.ts", "cannot open"),
                           (f"{server}/text", "not a readable video stream")):
        started = time.monotonic()
        result = runner.invoke(main, ["watch", source, "--checkpoint", str(ckpt), "--threshold", "0.5",
                                      "--device", "cpu", "--max-reconnects", "1", "--csv", str(tmp_path / "x.csv"),
                                      "--compile", "off"])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and reason in errors[0] and source in errors[0]
        assert time.monotonic() - started < 30
    result = runner.invoke(main, ["watch", "ftp://example.org/x", "--checkpoint", str(ckpt)])
    assert result.exit_code == 1 and "unsupported scheme" in result.output


def test_a_second_ctrl_c_stops_at_once():
    """The first SIGINT asks for a clean stop; the second (a user tired of waiting for a compile) raises."""
    stop, stopped = threading.Event(), []
    before = signal.getsignal(signal.SIGINT)      # SIG_IGN where the suite was started in the background
    with stop_on_signals(stop, stopped):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)                    # a service manager's repeat: still a clean stop
        assert stop.is_set() and len(stopped) == 2
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)                                       # the handler runs between bytecodes
    assert signal.getsignal(signal.SIGINT) is before           # restored, whatever it was


def test_sigint_stops_cleanly_with_a_summary(server, ckpt):
    lines, printed = [], []

    def echo(line: str) -> None:      # Ctrl-C as soon as the first score is printed
        printed.append(line)
        if len(printed) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    summary = run_watch(f"{server}/clip.ts", checkpoint=str(ckpt), echo=echo, warn=lines.append,
                        options=WatchOptions(threshold="0.5", device="cpu", window=2,
                                             stream=StreamOptions(**FAST)))
    assert summary.stopped and summary.exit_code == 0 and summary.error is None
    assert lines[-1].startswith("watch stopped:")
    assert 2 <= summary.scored == len(printed)       # what had arrived was scored, nothing raised


def test_a_slow_consumer_drops_whole_snippets_and_stays_close(server, recipe):
    stream = SnippetStream(classify(f"{server}/clip.ts"), recipe, StreamOptions(queue_snippets=1, **FAST))
    got = []
    for snippet in stream:                 # 7 snippets arrive over 2 s; each takes 0.6 s to "process"
        got.append(snippet.index)
        time.sleep(0.6)
    assert stream.error is None and stream.dropped > 0
    assert len(got) + stream.dropped == stream.decoded == 7
    assert got == sorted(got) and got[-1] >= 4     # it keeps up with new content instead of queueing the old


def test_snippet_queue_drops_oldest_or_waits():
    stop = threading.Event()
    q = SnippetQueue(2, drop=True, stop=stop)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and [q.get(0), q.get(0)] == [3, 4]
    q.close()
    assert q.get(0) is None and q.done
    blocking = SnippetQueue(1, drop=False, stop=stop)
    blocking.put(0)
    threading.Timer(0.2, blocking.get, (0,)).start()
    started = time.monotonic()
    blocking.put(1)                        # waits for room instead of dropping
    assert time.monotonic() - started >= 0.15 and blocking.dropped == 0
    stop.set()                             # a stop while it waits: the stream ends there, nothing counted dropped
    blocking.put(2)
    assert blocking.dropped == 0 and blocking.get(0) == 1 and blocking.get(0) is None


def test_classify_sources(tmp_path):
    assert classify("rtsp://cam/stream").kind == "url" and classify("udp://127.0.0.1:5000").live
    assert classify("/dev/video0").av_format == "v4l2"
    with pytest.raises(StreamError, match="no such file"):
        classify(str(tmp_path / "missing.ts"))


def test_score_window_option_matches_whole_clip_when_the_clip_fits(clip, ckpt, offline, tmp_path):
    """`vadpipe score --window N`: the windowed head gives the whole-clip scores for a clip of <= N snippets."""
    for window in (7, 64):
        out = tmp_path / f"w{window}"
        assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                         options=ScoreOptions(out_dir=out, threshold="0.5", device="cpu", progress=False,
                                              window=window)) == 0
        frame_scores = np.loadtxt(out / "clip.scores.csv", delimiter=",", skiprows=1)[:, 2]
        assert np.array_equal(frame_scores, offline[1])


def test_a_scheduled_route_sends_each_packet_at_its_time(clip):
    """loopback.packet_schedule: each video packet leaves at its decode time (a camera's pace)."""
    import urllib.request

    from vadpipe.loopback import Route, packet_schedule, serve

    data = clip.read_bytes()
    schedule = packet_schedule(data)
    assert len(schedule) == 100 and schedule[0][1] == 0.0          # one packet a frame, from time 0
    offsets, times = zip(*schedule)
    assert list(offsets) == sorted(offsets) and list(times) == sorted(times)
    assert abs(times[-1] - 99 / 50) < 0.05                          # the clip is 100 frames at 50 fps
    watched = schedule[len(schedule) // 2]
    with serve({"/c.ts": Route(data, schedule=schedule)}) as server:
        started = time.monotonic()
        with urllib.request.urlopen(f"{server.url}/c.ts") as response:
            got = b""
            while len(got) <= watched[0]:
                got += response.read1(65536)
            reached = time.monotonic() - started
            got += response.read()
    assert got == data and reached >= watched[1] - 0.05


def test_watching_with_overlapping_snippets_follows_the_recipes_stride(clip, tmp_path):
    """A head trained on `extract --stride 8` features: the live CSV has a row every 8 frames (12 for
    100 frames: 11 whole snippets and a padded tail), and each live event lies within a snippet of the
    interval `vadpipe score` finds offline with the same threshold."""
    from vadpipe.features import expected_snippets

    ckpt = save_scaled_mil(tmp_path / "best.pt", make_recipe("i3d-inception", "tiny", weights_sha256=None, stride=8))
    assert run_score([str(clip)], checkpoint=str(ckpt), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "score", threshold="0.5", device="cpu",
                                          progress=False)) == 0
    frame_scores = np.loadtxt(tmp_path / "score" / "clip.scores.csv", delimiter=",", skiprows=1)[:, 2]
    threshold, _ = widest_gap(frame_scores)
    opts = WatchOptions(threshold=str(threshold), merge_gap_s=0.2, min_duration_s=0.1, device="cpu",
                        csv=tmp_path / "live.csv", events=tmp_path / "events.jsonl",
                        stream=StreamOptions(max_reconnects=0, **FAST))
    summary = run_watch(str(clip), checkpoint=str(ckpt), options=opts, warn=lambda s: None)
    assert summary.exit_code == 0 and summary.dropped == 0
    rows = read_csv(tmp_path / "live.csv")
    assert len(rows) == expected_snippets(100, 16, 8) == 12
    assert rows[:, 1].tolist() == [8 * i for i in range(12)] and rows[-1, 2] == 100
    expected = find_intervals(frame_scores, threshold, 50.0, 0.2, 0.1)
    ends = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "end"]
    assert expected and len(ends) == len(expected)
    for got, want in zip(ends, expected):
        assert abs(got["start_frame"] - want.start_frame) <= 16 and abs(got["end_frame"] - want.end_frame) <= 16


def test_a_stream_flagged_from_its_start_gets_the_score_note_once(clip, ckpt, tmp_path):
    """After two windows (4 snippets at window 2) a stream whose every snippet is at or above the
    threshold is named as `vadpipe score` names such a clip, once; a threshold it never reaches, silence."""
    for threshold, notes in (("0", 1), ("1e9", 0)):
        said = []
        opts = WatchOptions(threshold=threshold, device="cpu", window=2, stream=StreamOptions(**FAST))
        summary = run_watch(str(clip), checkpoint=str(ckpt), options=opts, warn=said.append, echo=lambda s: None)
        assert summary.exit_code == 0 and summary.scored == 7
        found = [line for line in said if line.startswith("note: ")]
        assert len(found) == notes
        if notes:
            assert found[0].startswith("note: 100% of the stream's first 4 snippets (1 s) at or above the threshold")
            assert f"vadpipe calibrate NORMAL_CLIPS --checkpoint {ckpt}" in found[0]


def test_a_stream_is_lit_as_a_file_is_with_the_running_light(clip):
    """``light`` "running" is applied where a stream is cut into snippets, as extract and score cut a file:
    `vadpipe watch` hands the backbone the pixels `vadpipe extract` would."""
    from vadpipe.encode import snippet_batches

    lit = make_recipe("i3d-inception", "tiny", weights_sha256=None, light="running")

    def streamed(recipe):
        stream = SnippetStream(classify(str(clip)), recipe, StreamOptions(queue_snippets=16, **FAST))
        pixels = torch.cat([s.pixels for s in stream])
        assert stream.error is None and stream.dropped == 0
        return pixels

    live = streamed(lit)
    assert live.shape[0] == 7 and torch.equal(live, torch.cat(list(snippet_batches(reader_for(clip, lit), lit, 4))))
    plain = streamed(lit.replace(light=""))
    assert (live.float().mean() - plain.float().mean()).abs() > 10       # the pattern's dim snippets brought up


# --- review s62: frames as score decodes them; what must not end a watch ---------------------------------------

def stream_frames(path: Path, recipe, log=lambda line: None) -> list:
    source = FrameSource(classify(str(path)), recipe, StreamOptions(**FAST), log=log)
    return [frame for frame, _, _ in source.frames()]


def test_a_rotated_clip_reaches_the_backbone_upright_as_score_decodes_it(tmp_path, recipe):
    from test_video import write_timed

    clip = write_timed(tmp_path / "phone.mp4", [40 * i for i in range(20)], rotation=90, width=64, height=48)
    reader = reader_for(str(clip), recipe)               # what score and extract decode
    want = list(reader.frames())
    got = stream_frames(clip, recipe)
    assert reader.info.rotation == 270 and want[0].shape == (64, 48, 3)
    assert len(got) == len(want) == 20 and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_frame_size_change_mid_stream_is_decoded_at_the_first_size_as_score_does(tmp_path, recipe):
    first = make_video(tmp_path / "a.ts", 24, width=96, height=72)
    second = make_video(tmp_path / "b.ts", 24, width=160, height=120, seed=1)
    clip = tmp_path / "switch.ts"
    clip.write_bytes(first.read_bytes() + second.read_bytes())
    said = []
    got = stream_frames(clip, recipe, said.append)
    want = list(reader_for(str(clip), recipe).frames())
    assert len(got) == len(want) == 48 and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert said == [f"warning: {clip}: frame size changed 96x72 -> 160x120 at frame 24; every frame decoded at 96x72"]
    stream = SnippetStream(classify(str(clip)), recipe, StreamOptions(**FAST))
    assert len(list(stream)) == 3 and stream.error is None


def test_a_sliver_of_a_frame_is_one_line_in_score_and_in_watch(tmp_path, clip, ckpt, recipe):
    """256x2 at the tiny recipe's 128-px short side would be 16384x128 frames: refused before decoding."""
    sliver = make_video(tmp_path / "sliver.ts", 4, width=256, height=2)
    why = "sliver.ts: 256x2 frames resized to a short side of 128 would be 16384x128 (over 8192 px)"
    printed = []
    code = run_score([str(sliver), str(clip)], checkpoint=str(ckpt), echo=printed.append,
                     options=ScoreOptions(out_dir=tmp_path / "s", threshold="0.5", device="cpu", progress=False))
    assert code == 1 and (tmp_path / "s" / "clip.json").is_file() and not (tmp_path / "s" / "sliver.json").exists()
    stream = SnippetStream(classify(str(sliver)), recipe, StreamOptions(**FAST))
    assert list(stream) == [] and why in str(stream.error)


def test_a_growing_mp4_gets_a_message_that_says_why(tmp_path, recipe):
    full = tmp_path / "full.mp4"
    write_video(full, pattern_frames(), fps=50.0, crf=12)            # the index ('moov') written last
    grown = tmp_path / "grow.mp4"
    grown.write_bytes(full.read_bytes()[:20000])                      # just written: still being written
    options = StreamOptions(**{**FAST, "follow_timeout_s": 2.0})
    stream = SnippetStream(classify(str(grown)), recipe, options)
    assert list(stream) == []
    assert str(stream.error).startswith(f"{grown}: an MP4 still being written (no index yet) cannot be read until "
                                        "it is finished: record fragmented MP4 (-movflags frag_keyframe+empty_moov), "
                                        "MPEG-TS (.ts) or MKV to watch it live")
    os.utime(grown, (time.time() - 60, time.time() - 60))             # long finished: a truncated MP4
    stream = SnippetStream(classify(str(grown)), recipe, options)
    assert list(stream) == [] and "not a readable video stream" in str(stream.error)


# a recorder's fragmented MP4: the index first, then a fragment from each key frame (one every 10 frames)
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


@pytest.mark.parametrize("container", ["ts", "mkv", "fragmented.mp4"])
def test_a_growing_ts_mkv_or_fragmented_mp4_is_followed_to_its_last_frame(tmp_path, recipe, container):
    """A fragmented MP4 read as a seekable file stopped where the file ended when it was opened (36 of these
    100 frames); it is read front to back while it grows."""
    full = tmp_path / f"full.{container}"
    fragmented = container.endswith("mp4")
    write_video(full, pattern_frames(), fps=50.0, crf=12, options={"g": "10"} if fragmented else None,
                container_options=FRAGMENTED if fragmented else None)
    grown = tmp_path / f"grow.{container}"
    thread = grow_in_background(full, grown)
    got = [frame for frame, _, _ in FrameSource(classify(str(grown)), recipe,
                                                 StreamOptions(**{**FAST, "follow_timeout_s": 1.0})).frames()]
    thread.join(10)
    want = list(reader_for(str(full), recipe).frames())
    assert len(got) == len(want) == 100 and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_snapshot_that_cannot_be_written_is_a_warning_and_the_event_goes_on(clip, ckpt, tmp_path):
    snaps = tmp_path / "snaps"
    (snaps / "event-0001.jpg").mkdir(parents=True)                    # stands in for a full or read-only disk
    said = []
    opts = WatchOptions(threshold="0", device="cpu", events=tmp_path / "ev.jsonl", snapshots=snaps,
                        on_event=f"echo $VADPIPE_EVENT_KIND >> {tmp_path / 'hook.txt'}", stream=StreamOptions(**FAST))
    summary = run_watch(str(clip), checkpoint=str(ckpt), options=opts, warn=said.append, echo=lambda s: None)
    assert summary.exit_code == 0 and summary.scored == 7 and summary.events == 1
    events = read_events(tmp_path / "ev.jsonl")
    assert [(e["event"], e["snapshot"]) for e in events] == [("start", None), ("end", None)]
    assert (tmp_path / "hook.txt").read_text().split() == ["start", "end"]
    warned = [line for line in said if "snapshot" in line]
    assert len(warned) == 1 and warned[0].startswith(f"warning: {snaps / 'event-0001.jpg'}: cannot write it")


def test_an_on_event_commands_output_goes_to_stderr_not_among_the_score_lines(clip, ckpt, tmp_path, capfd):
    """stdout is one line per snippet (a pipe reads it as data): a hook that prints must not add lines there."""
    lines = []
    opts = WatchOptions(threshold="0", device="cpu", on_event="echo HOOK-$VADPIPE_EVENT_KIND",
                        stream=StreamOptions(**FAST))
    summary = run_watch(str(clip), checkpoint=str(ckpt), options=opts, warn=lambda s: None, echo=lines.append)
    assert summary.exit_code == 0 and summary.events == 1
    out, err = capfd.readouterr()
    assert "HOOK" not in out and "HOOK" not in "".join(lines)
    assert sorted(line for line in err.split() if line.startswith("HOOK")) == ["HOOK-end", "HOOK-start"]


def test_an_events_start_and_end_records_are_on_one_clock(tmp_path):
    """Frames lost before snippet 8 put its stream time (3.28 s) ahead of frame / fps (2.56 s): both records
    of the event must say the same start."""
    sink = EventSink(WatchOptions(events=tmp_path / "ev.jsonl"), "cam", 0.5, warn=lambda line: None)
    live = OnlineIntervals(0.5, 50.0, 0.2, 0.1)
    tag = Tag(8, 128, 144, 3.28, 3.60, 0.0, None)
    records = [sink.emit(t, "score", live.fps) for t in live.add(128, 144, 0.9, tag) + live.finish()]
    sink.close()
    assert [r["event"] for r in records] == ["start", "end"]
    assert records[0]["start_s"] == records[1]["start_s"] == 128 / 50


def test_an_event_open_when_the_session_fails_is_closed_by_error(clip, ckpt, tmp_path):
    printed = []

    def echo(line: str) -> None:          # a reader that went away (`watch ... | head -1`)
        printed.append(line)
        if len(printed) == 2:
            raise BrokenPipeError(32, "Broken pipe")

    opts = WatchOptions(threshold="0", device="cpu", window=2, events=tmp_path / "ev.jsonl",
                        stream=StreamOptions(**FAST))
    with pytest.raises(BrokenPipeError):
        run_watch(str(clip), checkpoint=str(ckpt), options=opts, echo=echo, warn=lambda line: None)
    events = read_events(tmp_path / "ev.jsonl")
    assert [e["event"] for e in events] == ["start", "end"] and events[1]["closed_by"] == "error"


def test_a_decoder_that_crashes_ends_the_source_not_the_watch(clip, ckpt, tmp_path, monkeypatch):
    """FFmpeg segfaults on the stream after 40 frames: the watch (decoding in a child process) scores what
    arrived, closes the open event as "source lost", prints one error line naming the signal and its
    summary, and exits 1; the child is gone."""
    import faulthandler
    import multiprocessing

    frames = FrameSource.frames

    def crashes_after_40(self):
        for n, frame in enumerate(frames(self)):
            if n == 40:
                faulthandler.disable()       # pytest's, inherited by the child: no dump of its stack
                os.kill(os.getpid(), signal.SIGSEGV)
            yield frame

    monkeypatch.setattr(FrameSource, "frames", crashes_after_40)
    lines = []
    opts = WatchOptions(threshold="0", device="cpu", window=2, csv=tmp_path / "c.csv", events=tmp_path / "ev.jsonl",
                        stream=StreamOptions(**FAST))
    summary = run_watch(str(clip), checkpoint=str(ckpt), options=opts, warn=lines.append)
    assert summary.exit_code == 1 and summary.scored == 2 == len(read_csv(tmp_path / "c.csv"))   # frames 0-31
    assert [line for line in lines if line.startswith("error:")] == [
        f"error: {clip}: the decoder crashed its process (killed by SIGSEGV)"]
    assert lines[-1].startswith("watch failed: 2 snippets scored")
    events = read_events(tmp_path / "ev.jsonl")
    assert [e["event"] for e in events] == ["start", "end"] and events[1]["closed_by"] == "source lost"
    assert not multiprocessing.active_children()


def test_an_output_folder_that_is_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match=r"afile: not a folder \(for x\.csv\)"):
        LineLog(tmp_path / "afile" / "x.csv", echo=print)
    with pytest.raises(ConfigError, match=r"afile: not a folder \(for x\.jsonl\)"):
        EventSink(WatchOptions(events=tmp_path / "afile" / "x.jsonl"), "cam", 0.5, warn=print)


@pytest.mark.parametrize("args", [["watch", "--threads", "0"], ["watch", "--threads", "-2"],
                                  ["score", "--threads", "0"], ["calibrate", "--threads", "-1"], ["watch", "--merge-gap", "-5"],
                                  ["watch", "--min-duration", "-5"], ["watch", "--follow-timeout", "-1"],
                                  ["watch", "--max-reconnects", "-3"]])
def test_threads_below_one_and_negative_watch_durations_are_usage_errors(args, clip):
    result = CliRunner().invoke(main, [args[0], str(clip), *args[1:]])
    assert result.exit_code == 2 and f"Invalid value for '{args[1]}'" in result.output, result.output


def test_only_an_mp4_whose_index_comes_first_and_announces_fragments_reads_as_fragmented(tmp_path):
    from vadpipe.stream import _fragmented_mp4

    frames = list(pattern_frames(20))
    kinds = {"plain.mp4": None, "faststart.mp4": {"movflags": "faststart"}, "frag.mp4": FRAGMENTED,
             "frag.mkv": None}
    for name, flags in kinds.items():
        write_video(tmp_path / name, frames, options={"g": "10"}, container_options=flags)
    assert {name: _fragmented_mp4(str(tmp_path / name)) for name in kinds} == {
        "plain.mp4": False, "faststart.mp4": False, "frag.mp4": True, "frag.mkv": False}
    (tmp_path / "short.mp4").write_bytes((tmp_path / "frag.mp4").read_bytes()[:30])   # cut inside its index
    assert _fragmented_mp4(str(tmp_path / "short.mp4")) is False


def corrupted_ts(path: Path) -> Path:
    """An MPEG-TS clip (a key frame every 10 frames) with 3,000 random bytes over its middle: the decoder
    logs errors there and decodes on, as a camera's stream with lost packets does."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (72, 96, 3), dtype=np.uint8) for _ in range(100)]
    clean = path.with_name("clean.ts")
    write_video(clean, frames, crf=12, options={"g": "10"})
    data = bytearray(clean.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = rng.integers(0, 255, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_decoder_errors_mid_stream_are_a_warning_and_a_count_and_ffmpeg_stays_quiet(tmp_path, recipe, capfd):
    bad = corrupted_ts(tmp_path / "bad.ts")
    said = []
    source = FrameSource(classify(str(bad)), recipe, StreamOptions(**FAST), log=said.append)
    frames = list(source.frames())
    assert len(frames) >= 90 and source.stats.decoder_errors >= 1
    assert len(said) == 1 and said[0].startswith(f"warning: {bad}: decoder errors at "), said
    assert "FFmpeg: [h264]" in said[0] and said[0].endswith("frames there may be damaged and score high")
    clean = FrameSource(classify(str(tmp_path / "clean.ts")), recipe, StreamOptions(**FAST), log=said.append)
    assert len(list(clean.frames())) == 100 and clean.stats.decoder_errors == 0 and len(said) == 1
    assert capfd.readouterr().err == ""                       # FFmpeg's own lines are not printed


def test_decoder_errors_are_summarised_at_most_once_a_minute_of_stream():
    from vadpipe.stream import DecoderErrors, FrameStats

    class Capture:                        # stands in for FFmpegLog: error lines waiting to be taken
        def __init__(self):
            self.waiting = []

        def take_errors(self):
            taken, self.waiting = self.waiting, []
            return taken

    said, stats, ffmpeg = [], FrameStats(), Capture()
    errors = DecoderErrors("cam", stats, said.append)
    for t in np.arange(0.0, 150.0, 0.5):
        if 10 <= t < 20 or 100 <= t < 101:
            ffmpeg.waiting = ["[h264] error while decoding MB 5 4"]
        errors.read(ffmpeg, float(t))
    errors.flush()
    assert stats.decoder_errors == 22
    assert [line.split(" of the stream")[0] for line in said] == [
        "warning: cam: decoder errors at 10.0 s", "warning: cam: decoder errors at 10.5-19.5 s",
        "warning: cam: decoder errors at 100.0-100.5 s"]
    assert "(19 lines, FFmpeg: [h264] error while decoding MB 5 4)" in said[1]
