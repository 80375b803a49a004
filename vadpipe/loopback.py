"""A paced HTTP server on 127.0.0.1: a recorded clip served like a live camera (tests and benchmarks).

Each route serves bytes over a given number of seconds (the clip's duration:
real-time pace, so a reader decodes it as it "happens"), evenly or, with a
``schedule`` (``packet_schedule``), each video packet at its own decode time
as a camera sends it; optionally dropping the connection part-way (a camera
that dies mid-stream). Loopback only; the
server runs in a daemon thread and stops when the context exits.
"""
from __future__ import annotations

import bisect
import math
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, Optional, Tuple


@dataclass(frozen=True)
class Route:
    data: bytes
    seconds: float = 0.0              # time over which the bytes are sent (0: as fast as possible)
    cut: Optional[float] = None       # drop the connection after this share of the bytes
    content_type: str = "video/mp2t"
    # (byte offset, seconds) in increasing order: the bytes from each offset on are sent at its time
    # (instead of evenly over ``seconds``); see packet_schedule
    schedule: Optional[Tuple[Tuple[int, float], ...]] = None

    def due(self, sent: int) -> float:
        """Seconds after the start at which the byte at offset ``sent`` may go out."""
        if self.schedule is None:
            return self.seconds * sent / max(1, len(self.data))
        i = bisect.bisect_right(self.schedule, (sent, math.inf))     # entries at or before ``sent``
        return self.schedule[i - 1][1] if i else 0.0

    def boundary(self, sent: int) -> int:
        """The next scheduled offset after ``sent`` (a chunk never runs into a later packet's bytes)."""
        i = bisect.bisect_right(self.schedule or (), (sent, math.inf))
        return self.schedule[i][0] if self.schedule and i < len(self.schedule) else len(self.data)


def packet_schedule(data: bytes) -> Tuple[Tuple[int, float], ...]:
    """(byte offset, decode time from the first packet) of each video packet of a container in
    ``data``: sent on this schedule, each frame leaves when a camera would send it (an even byte pace
    delays the big key frames and sends the small frames early)."""
    import io

    import av

    entries = []
    with av.open(io.BytesIO(data)) as container:
        for packet in container.demux(video=0):
            if packet.pos is not None and packet.pos >= 0 and packet.dts is not None:
                entries.append((int(packet.pos), float(packet.dts * packet.time_base)))
    if not entries:
        return ()
    first = entries[0][1]
    out, last_offset = [], -1
    for offset, at in sorted(entries):
        if offset > last_offset:
            out.append((offset, max(0.0, at - first)))
            last_offset = offset
    return tuple(out)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:   # quiet: tests and benchmarks print their own lines
        pass

    def do_GET(self) -> None:
        route: Optional[Route] = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        data = route.data
        self.send_response(200)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        limit = int(len(data) * route.cut) if route.cut is not None else len(data)
        start, sent = time.monotonic(), 0
        self.server.started.setdefault(self.path, time.time())
        try:
            while sent < limit:
                ahead = start + route.due(sent) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                n = min(4096, limit - sent, route.boundary(sent) - sent)
                self.wfile.write(data[sent:sent + n])
                sent += n
            self.wfile.flush()
            if route.cut is not None:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:       # the reader went away: nothing to do
            pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: Dict[str, Route]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = dict(routes)
        self.started: Dict[str, float] = {}       # path -> wall time its first request began

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve(routes: Dict[str, Route]) -> Iterator[LoopbackServer]:
    server = LoopbackServer(routes)
    thread = threading.Thread(target=server.serve_forever, name="vadpipe-loopback", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
