"""Progress bars: a live bar on a terminal, plain lines in a log (vadpipe/progress.py)."""
import io
import subprocess
import sys

from vadpipe import progress
from vadpipe.progress import LineStream, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_without_carriage_returns(monkeypatch):
    clock = iter(range(0, 10_000, 7))       # each of tqdm's time readings 7 s after the last
    monkeypatch.setattr("tqdm.std.time", lambda: float(next(clock)))
    log = io.StringIO()
    with progress_bar(total=40, desc="extract", unit="video", file=log, leave=False, position=1) as bar:
        for _ in range(40):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("extract:   0%") and lines[-1].startswith("extract: 100%")
    assert "40/40" in lines[-1]                       # leave=False would have cleared the last line
    # one line at the start, one at most every LOG_INTERVAL_S (30 s: every 5th update here), one at the end
    assert 40 // 5 - 1 <= len(lines) <= 40 // 4 + 2
    assert all(len(line) <= progress.LOG_WIDTH for line in lines)


def test_a_terminal_gets_tqdm_redrawing_in_place():
    term = Terminal()
    with progress_bar(range(3), desc="score", file=term, mininterval=0) as bar:
        for _ in bar:
            pass
    assert term.getvalue().count("\r") >= 3


def test_disabled_writes_nothing():
    log = io.StringIO()
    for _ in progress_bar(range(5), enabled=False, file=log):
        pass
    assert log.getvalue() == ""


def test_line_stream_drops_blank_redraws_and_cursor_moves():
    out = io.StringIO()
    stream = LineStream(out)
    stream.write("\r")
    stream.write("\x1b[A\rtrain:  50%|#####     | 5/10\x1b[A")
    stream.write("\r" + " " * 40 + "\r")
    assert out.getvalue() == "train:  50%|#####     | 5/10\n"


def test_vadpipe_info_in_a_pipe_logs_lines(tmp_path):
    """The CLI end to end: stderr to a pipe (as in a CI log) carries no carriage return."""
    for i in range(5):
        (tmp_path / f"clip{i}.mp4").write_bytes(b"not a video")
    run = subprocess.run([sys.executable, "-m", "vadpipe", "info", str(tmp_path)], capture_output=True, text=True)
    assert "probing" in run.stderr and "\r" not in run.stderr
    assert run.stderr.count("clip0.mp4") == 1            # the bad file named once, on a line of its own
