"""Progress bars that suit where stderr goes: tqdm's live bar on a terminal (or a notebook's widget), and in
a log file or a pipe one plain line at the start, every ``LOG_INTERVAL_S`` seconds and at the end.

tqdm redraws its bar in place with carriage returns and cursor moves: written to a file, a run's redraws
pile up into one line of thousands of characters (``vadpipe extract videos/ 2> log``, a CI log, nohup), which
neither ``tail`` nor a log viewer shows. Every bar of the package comes from :func:`progress_bar`.
"""
from __future__ import annotations

import re
import sys
from typing import Any, Iterable, Optional, TextIO

LOG_INTERVAL_S = 30.0      # a log line at most this often (tqdm's own default redraws 10 times a second)
LOG_WIDTH = 100            # the bar's width in a log, where there is no terminal to measure
_CONTROL = re.compile(r"\r|\x1b\[[0-9;]*[A-Za-z]")    # carriage returns and cursor moves


class LineStream:
    """A stream for tqdm that writes each redraw as one line of its own; blank redraws (a bar cleared
    with ``leave=False``) are dropped."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        line = _CONTROL.sub("", text).rstrip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_live(stream: TextIO) -> bool:
    """True where a bar can redraw in place: a terminal, or a Jupyter kernel (tqdm.auto draws a widget)."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):     # no isatty, or a closed stream
        return False


def progress_bar(iterable: Optional[Iterable] = None, enabled: bool = True, file: Optional[TextIO] = None,
                 **options: Any):
    """A tqdm bar over ``iterable`` (or with ``total=`` and ``update``) on ``file`` (default stderr),
    shown when ``enabled``; ``options`` are tqdm's (desc, unit, total, leave, position ...)."""
    stream = file if file is not None else sys.stderr
    if is_live(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not enabled, file=stream, dynamic_ncols=True, **options)
    from tqdm import tqdm

    options.pop("position", None)            # stacked bars need cursor moves; log lines need none
    options.update(mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, miniters=1, ncols=LOG_WIDTH,
                   leave=True)
    return tqdm(iterable, disable=not enabled, file=LineStream(stream), **options)


def write_line(message: str, file: Optional[TextIO] = None) -> None:
    """Print a line without breaking a live bar on the same stream."""
    from tqdm import tqdm

    tqdm.write(message, file=file if file is not None else sys.stderr)
