"""``vadpipe watch SOURCE``: live scoring of a camera stream, a growing file or a finished one.

Pipeline: ``stream.SnippetStream`` decodes SOURCE in a thread into the
checkpoint recipe's snippets (bounded queue; on a live source whole snippets
are dropped when the model cannot keep up) -> ``encode.SnippetEncoder`` (the
backbone, exactly as ``vadpipe score`` extracts; ``--workers`` snippets at once, each
on its own thread: ``backbone_pool``) -> ``window.WindowScorer``
(the head on the last W snippets, rule ``window.RULE``) -> per-snippet lines,
and ``live_events.OnlineIntervals`` -> start/end events under the same
threshold / merge-gap / min-duration rule as ``vadpipe score``.

Outputs, each appended and flushed line by line (a live log must survive a
crash; nothing already written is rewritten):

- a line per scored snippet on stdout, or ``--csv FILE``
  (``snippet,start_frame,end_frame,start_s,end_s,score,above,lag_s``);
- ``--events FILE``: JSON lines ``{"event": "start"|"end", "id", ...}``; an
  end carries the interval as ``vadpipe score`` describes it (frames are the
  recipe-rate frames of the stream, 0-based, end exclusive, time = frame / fps;
  a start's time too, so both records of an event are on one clock even when
  frames were lost; the per-snippet lines keep the stream's own times);
- ``--on-event CMD``: run through the shell for each event, not waited for,
  with ``VADPIPE_EVENT`` (the JSON line), ``VADPIPE_EVENT_KIND``,
  ``VADPIPE_EVENT_ID``, ``VADPIPE_SCORE``, ``VADPIPE_TIME_S``,
  ``VADPIPE_SOURCE`` and ``VADPIPE_SNAPSHOT`` in its environment;
- ``--snapshots DIR``: ``event-NNNN.jpg``, the middle frame of the event's
  highest-scoring snippet, written at its start and replaced at its end (one
  that cannot be written is a warning; the event goes on with ``snapshot`` null).

Lag: monotonic time when a snippet's features are ready minus the time its
last frame was live (``stream`` module). It does not include the window's
warm-up (the first W - 1 snippets are scored together once the W-th arrives).
SIGINT / SIGTERM stop cleanly: the pending snippets are scored, an open event
is closed, a summary is printed. Exit code 0 when the stream ended or was
stopped, 1 when the source failed (unreachable, lost for good, not a video). An
event still open at the end is closed by "stop", "source lost", "end of stream",
or "error" when the session itself failed (a broken pipe, a failed write).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import numpy as np

from . import atomic
from .backbone_pool import BackbonePool, split_threads
from .device import torch_threads
from .errors import ConfigError, RecipeMismatchError, VadpipeError
from .live_events import OnlineIntervals, Transition
from .stream import SnippetStream, StreamOptions, classify
from .threshold import StreamCheck
from .window import DEFAULT_WINDOW, RULE, Scored, WindowScorer

CSV_HEADER = "snippet,start_frame,end_frame,start_s,end_s,score,above,lag_s\n"
STDERR_FD = 2      # the process's own stderr, whatever sys.stderr has been replaced with


@dataclass
class WatchOptions:
    window: int = DEFAULT_WINDOW
    lookahead: int = 0
    threshold: str = "auto"
    merge_gap_s: float = 1.0
    min_duration_s: float = 0.5
    csv: Optional[Path] = None
    events: Optional[Path] = None
    on_event: Optional[str] = None
    snapshots: Optional[Path] = None
    device: str = "auto"
    weights: Optional[str] = None
    crops: Optional[int] = None
    compile: str = "off"                 # backbone through TorchInductor: auto|on|off (extractors/inference.py)
    workers: Optional[int] = None        # snippets through the backbone at once (backbone_pool.py); None: auto
    stream: StreamOptions = StreamOptions()
    hook_wait_s: float = 10.0            # at exit, how long running --on-event commands are waited for


@dataclass
class Tag:
    """What a snippet carries through the window until it is scored."""
    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    lag_s: float
    middle: Optional[np.ndarray]


@dataclass
class WatchSummary:
    source: str
    scored: int = 0
    decoded: int = 0
    dropped: int = 0
    events: int = 0
    max_lag_s: float = 0.0
    lag_total_s: float = 0.0
    stream_s: float = 0.0
    wall_s: float = 0.0
    reconnects: int = 0
    decoder_errors: int = 0               # FFmpeg error lines while decoding (warned as they come)
    capacity: Optional[float] = None      # stream seconds the backbone could take per wall second if never
                                          # idle (backbone_pool.BackbonePool.capacity): > 1 keeps up
    stopped: bool = False                 # by SIGINT / SIGTERM
    error: Optional[str] = None
    window: int = DEFAULT_WINDOW

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0

    @property
    def real_time_factor(self) -> Optional[float]:
        return self.stream_s / self.wall_s if self.wall_s > 0 else None

    def format(self) -> str:
        rtf = self.real_time_factor
        how = "stopped" if self.stopped else ("failed" if self.error else "ended")
        mean = self.lag_total_s / self.scored if self.scored else 0.0
        return (f"watch {how}: {self.scored} snippets scored ({self.stream_s:.1f} s of stream in {self.wall_s:.1f} s"
                + (f", {rtf:.2f}x real time" if rtf else "")
                + (f"; backbone capacity {self.capacity:.2f}x real time" if self.capacity else "")
                + f"), {self.dropped} dropped, "
                f"lag max {self.max_lag_s:.2f} s mean {mean:.2f} s, {self.events} event"
                f"{'s' if self.events != 1 else ''}, window {self.window} snippets ({RULE})"
                + (f", {self.reconnects} reconnect attempt{'s' if self.reconnects != 1 else ''}"
                   if self.reconnects else "")
                + (f", {self.decoder_errors} decoder error line{'s' if self.decoder_errors != 1 else ''}"
                   if self.decoder_errors else ""))


def make_parent(path: Path) -> None:
    """The folder of an output file, made when missing; a file in its place is one line that says so
    (mkdir's own words, "File exists", point the other way)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path.parent}: not a folder (for {path.name})") from None


class LineLog:
    """Appends a line per scored snippet to a CSV file, or prints it."""

    def __init__(self, csv: Optional[Path], echo: Callable[[str], None]):
        self.echo = echo
        self.fh = None
        if csv is not None:
            make_parent(csv)
            self.fh = open(csv, "a", encoding="utf-8")
            if self.fh.tell() == 0:
                self.fh.write(CSV_HEADER)
                self.fh.flush()

    def write(self, tag: Tag, score: float, above: bool) -> None:
        if self.fh is not None:
            self.fh.write(f"{tag.index},{tag.start_frame},{tag.end_frame},{tag.start_s:.3f},{tag.end_s:.3f},"
                          f"{score:.6f},{int(above)},{tag.lag_s:.3f}\n")
            self.fh.flush()
        else:
            self.echo(f"{tag.start_s:9.2f}-{tag.end_s:<9.2f}s  frames {tag.start_frame}-{tag.end_frame - 1}  "
                      f"score {score:.3f}{' *' if above else '  '}  lag {tag.lag_s:.2f} s")

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


class EventSink:
    """Event JSON lines, the --on-event command and the peak snapshots."""

    def __init__(self, options: WatchOptions, source: str, threshold: float, warn: Callable[[str], None]):
        self.options, self.source, self.threshold, self.warn = options, source, threshold, warn
        self.fh = None
        if options.events is not None:
            make_parent(options.events)
            self.fh = open(options.events, "a", encoding="utf-8")
        if options.snapshots is not None:
            options.snapshots.mkdir(parents=True, exist_ok=True)
        self.hooks: List[subprocess.Popen] = []
        self._snapshot_failed: set = set()     # events whose snapshot failure was reported

    def emit(self, transition: Transition, closed_by: str, fps: float) -> dict:
        event = transition.event
        snapshot = self._snapshot(event.id, event.peak_tag)
        record = {"event": transition.kind, "id": event.id, "source": self.source, "threshold": self.threshold,
                  "wall_time": round(time.time(), 3)}
        if transition.kind == "start":
            # frame / fps, as the end's interval: the stream's own times part from it when frames are lost
            record.update(start_frame=event.start_frame, start_s=event.start_frame / fps, score=event.peak_score,
                          lag_s=round(event.first_tag.lag_s, 3))
        else:
            record.update(event.interval.to_dict(), closed_by=closed_by)
        record["snapshot"] = snapshot
        line = json.dumps(record)
        if self.fh is not None:
            self.fh.write(line + "\n")
            self.fh.flush()
        self._run_hook(record, line)
        return record

    def _snapshot(self, event_id: int, tag: Optional[Tag]) -> Optional[str]:
        if self.options.snapshots is None or tag is None or tag.middle is None:
            return None
        from PIL import Image

        path = self.options.snapshots / f"event-{event_id:04d}.jpg"
        try:
            with atomic.atomic_path(path, suffix=".jpg") as tmp:
                Image.fromarray(tag.middle).save(tmp, format="JPEG", quality=90)
        except (VadpipeError, OSError) as exc:     # an optional picture: the event, its hook and the watch go on
            if event_id not in self._snapshot_failed:
                self._snapshot_failed.add(event_id)
                self.warn(f"warning: {exc if isinstance(exc, VadpipeError) else f'{path}: {exc}'}; "
                          "the event goes on without a snapshot")
            return None
        return str(path)

    def _run_hook(self, record: dict, line: str) -> None:
        if not self.options.on_event:
            return
        score = record.get("score", record.get("peak_score"))
        env = {**os.environ, "VADPIPE_EVENT": line, "VADPIPE_EVENT_KIND": record["event"],
               "VADPIPE_EVENT_ID": str(record["id"]), "VADPIPE_SCORE": f"{score:.6f}",
               "VADPIPE_TIME_S": f"{record['start_s'] if record['event'] == 'start' else record['end_s']:.3f}",
               "VADPIPE_SOURCE": self.source, "VADPIPE_SNAPSHOT": record["snapshot"] or ""}
        try:
            # the hook's output goes to watch's stderr: stdout carries one score line per snippet, which a
            # pipe reads as data, and a hook's lines there would be read as scores
            self.hooks.append(subprocess.Popen(self.options.on_event, shell=True, env=env,
                                               stdin=subprocess.DEVNULL, stdout=STDERR_FD))
        except OSError as exc:
            self.warn(f"warning: --on-event {shlex.quote(self.options.on_event)}: {exc}")
        self.reap()

    def reap(self) -> None:
        for proc in [p for p in self.hooks if p.poll() is not None]:
            self.hooks.remove(proc)
            if proc.returncode:
                self.warn(f"warning: --on-event command exited with status {proc.returncode}")

    def close(self) -> None:
        deadline = time.monotonic() + self.options.hook_wait_s
        for proc in list(self.hooks):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.warn(f"warning: an --on-event command is still running after "
                          f"{self.options.hook_wait_s:g} s; left running (pid {proc.pid})")
        self.reap()
        if self.fh is not None:
            self.fh.close()


@contextmanager
def stop_on_signals(stop: threading.Event, stopped: List[bool]) -> Iterator[None]:
    """SIGINT / SIGTERM set ``stop`` (a clean stop) instead of raising; restored afterwards. A second Ctrl-C
    raises KeyboardInterrupt (stop now: a clean stop waits for what is running, such as a backbone still
    compiling). Outside the main thread (signals cannot be caught there) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if stopped and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopped.append(True)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wants_compiled_backbone(choice: str, recipe, device) -> bool:
    """``--compile`` for this recipe and device (whole frames take the stream's size: no fixed shape)."""
    from .extractors.inference import compile_wanted
    from .extractors.transforms import WHOLE_FRAME_MODES

    return compile_wanted(choice, device, fixed_shape=recipe.crop not in WHOLE_FRAME_MODES and not recipe.region_grid)


def backbone_workers(choice: Optional[int]) -> int:
    """Snippets through the backbone at once: ``choice``, else 1. Two 1-thread passes at once measured
    slower than one 2-thread pass on the quiet 2-core CPU (tools/bench_workers.py; README "watch")."""
    if choice is not None and choice < 1:
        raise ConfigError(f"--workers must be >= 1, got {choice}")
    return choice or 1


def warm_up(encoder, recipe) -> None:
    """One pass on a blank snippet before the stream opens: the first real snippet is not late."""
    import torch

    side = recipe.resize_short_side
    encoder([torch.zeros((1, recipe.snippet_len, side, side, 3), dtype=torch.uint8)])


class Watcher:
    """One watch session: model, outputs and the loop. Use ``run_watch``."""

    def __init__(self, source: str, scorer, options: WatchOptions, echo: Callable[[str], None],
                 warn: Callable[[str], None]):
        from .encode import SnippetEncoder

        if scorer.recipe is None:
            raise RecipeMismatchError(f"checkpoint {scorer.checkpoint_file} was trained on features without a "
                                      "recipe (list files): it cannot extract video")
        self.spec = classify(source)
        self.scorer, self.options, self.warn = scorer, options, warn
        self.recipe = scorer.recipe
        self.compiled = wants_compiled_backbone(options.compile, self.recipe, scorer.device)
        import torch

        threads = torch.get_num_threads()
        self.workers = backbone_workers(options.workers)
        self.threads_each = split_threads(threads, self.workers)
        # one snippet a call, so the encoder never tries pass sizes (its timing record is not shared state)
        self.encoder = SnippetEncoder(scorer.backbone, self.recipe, scorer.device, clips_per_forward=1,
                                      compiled=self.compiled, warn=warn)
        self.window = WindowScorer(scorer.model, options.window, options.lookahead, scorer.device)
        self.threshold = scorer.threshold.value
        self.summary = WatchSummary(source, window=options.window)
        self.intervals: Optional[OnlineIntervals] = None
        self.lines = LineLog(options.csv, echo)
        self.sink = EventSink(options, source, self.threshold, warn)
        # judged every two windows: is the camera's scene new to the head, or has it changed?
        self.scene_check = StreamCheck(scorer.threshold, str(scorer.checkpoint_file), 2 * options.window,
                                       getattr(scorer, "scene", None))

    def run(self) -> WatchSummary:
        stream = SnippetStream(self.spec, self.recipe, self.options.stream, log=self.warn)
        stopped: List[bool] = []
        started = time.monotonic()
        pool: Optional[BackbonePool] = None
        failed = False                      # the session itself raised (a broken pipe, a failed write)
        # Torch's threads are split between the concurrent passes for the whole session: the compiled
        # kernels are generated for that count, and the decoding thread started inside inherits it.
        with torch_threads(self.threads_each):
            try:
                with stop_on_signals(stream.stop_event, stopped):   # from here on Ctrl-C is a clean stop
                    o = self.options
                    self.warn(f"watching {self.spec.source}: {self.scorer.threshold.label()}, window {o.window} "
                              f"snippets ({RULE}, lookahead {o.lookahead}), {self.workers} snippet"
                              f"{'s' if self.workers > 1 else ''} through the backbone at once "
                              f"({self.threads_each} thread{'s' if self.threads_each > 1 else ''} each); the "
                              f"first scores come once {o.window} snippets have arrived")
                    if self.compiled:
                        self.warn("compiling the backbone for this input shape (35-45 s on a 2-core CPU; "
                                  "--compile off skips it; a second Ctrl-C stops during it)")
                    warm_up(self.encoder, self.recipe)
                    pool = BackbonePool(lambda snippet: self.encoder([snippet.pixels])[0], self.workers,
                                        self.threads_each)
                    started = time.monotonic()
                    self._loop(stream, pool)
            except BaseException:
                failed = True
                raise
            finally:
                stream.stop()
                if pool is not None:
                    pool.close()
                    self.summary.capacity = pool.capacity(pool.handed * self.recipe.stride / self._fps(stream))
                self.summary.stopped = bool(stopped)
                error = stream.error
                self.summary.error = str(error) if error is not None else None
                closed_by = ("error" if failed else "stop" if stopped else
                             "source lost" if error is not None else "end of stream")
                if not failed:              # a failed session's outputs may be what failed: no more lines
                    self._scored(self.window.finish(), stream)
                if self.intervals is not None:
                    self._emit(self.intervals.finish(), closed_by)
                self.summary.decoded, self.summary.dropped = stream.decoded, stream.dropped
                self.summary.reconnects = stream.source.stats.reconnects
                self.summary.decoder_errors = stream.source.stats.decoder_errors
                self.summary.wall_s = time.monotonic() - started
                self.lines.close()
                self.sink.close()
        return self.summary

    def _loop(self, stream: SnippetStream, pool: BackbonePool) -> None:
        """Snippets into the pool as they arrive (at most ``workers`` in flight), features out in stream
        order; at the end (or a stop) the snippets in flight are still scored."""
        while True:
            if pool.full:
                self._take(pool.ready(wait=True), stream)
            snippet = stream.next_snippet(0.02 if pool.busy else 0.2)
            if snippet is not None:
                pool.submit(snippet)
            self._take(pool.ready(), stream)
            if snippet is None and stream.finished:
                while pool.busy:
                    self._take(pool.ready(wait=True), stream)
                return

    def _take(self, encoded, stream: SnippetStream) -> None:
        keep_frame = self.options.snapshots is not None
        for snippet, feats, ready_at in encoded:
            lag = max(0.0, ready_at - snippet.due)
            tag = Tag(snippet.index, snippet.start_frame, snippet.end_frame, snippet.start_s, snippet.end_s, lag,
                      snippet.middle if keep_frame else None)
            self.scene_check.observe(feats)
            self._scored(self.window.push(feats, tag), stream)

    def _scored(self, scored: List[Scored], stream: SnippetStream) -> None:
        for item in scored:
            tag: Tag = item.tag
            s = self.summary
            s.scored += 1
            s.max_lag_s = max(s.max_lag_s, tag.lag_s)
            s.lag_total_s += tag.lag_s
            s.stream_s = max(s.stream_s, tag.end_s)
            self.lines.write(tag, item.score, item.score >= self.threshold)
            note = self.scene_check.add(item.score, tag.end_s)
            if note is not None:
                self.warn(f"note: {note}")
            if self.intervals is None:
                self.intervals = OnlineIntervals(self.threshold, self._fps(stream), self.options.merge_gap_s,
                                                 self.options.min_duration_s)
            self._emit(self.intervals.add(tag.start_frame, tag.end_frame, item.score, tag), "score")
        self.sink.reap()

    @staticmethod
    def _fps(stream: SnippetStream) -> float:
        return stream.source.target_fps or stream.source.stats.native_fps or 25.0

    def _emit(self, transitions: List[Transition], closed_by: str) -> None:
        for transition in transitions:
            if transition.kind == "start":
                self.summary.events += 1
            self.sink.emit(transition, closed_by, self.intervals.fps)


def run_watch(source: str, checkpoint: Optional[str] = None, run: Optional[str] = None,
              options: WatchOptions = WatchOptions(), echo: Callable[[str], None] = print,
              warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> WatchSummary:
    """Watch ``source`` until it ends, fails or a signal stops it; print the summary (and the source's
    error as one line) through ``warn``. Raises VadpipeError for problems found before the stream opens."""
    from .score import ScoreOptions, Scorer, find_checkpoint

    classify(source)                      # a bad SOURCE fails before the model loads
    scorer = Scorer(find_checkpoint(checkpoint, run),
                    ScoreOptions(threshold=options.threshold, device=options.device, weights=options.weights,
                                 crops=options.crops, progress=False))
    if scorer.threshold.optimistic:
        warn(f"warning: the auto threshold ({scorer.threshold.value:.3g}) was calibrated on the training videos "
             "themselves (none held out), so expect false alarms; pass --threshold X")
    summary = Watcher(source, scorer, options, echo, warn).run()
    if summary.error:
        warn(f"error: {summary.error}")
    warn(summary.format())
    return summary
