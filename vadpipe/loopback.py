"""A paced HTTP server on 127.0.0.1: a recorded clip served like a live camera (tests and benchmarks).

Each route serves bytes over a given number of seconds (the clip's duration:
real-time pace, so a reader decodes it as it "happens"), optionally dropping
the connection part-way (a camera that dies mid-stream). Loopback only; the
server runs in a daemon thread and stops when the context exits.
"""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, Optional


@dataclass(frozen=True)
class Route:
    data: bytes
    seconds: float = 0.0              # time over which the bytes are sent (0: as fast as possible)
    cut: Optional[float] = None       # drop the connection after this share of the bytes
    content_type: str = "video/mp2t"


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
                n = min(4096, limit - sent)
                self.wfile.write(data[sent:sent + n])
                sent += n
                ahead = start + route.seconds * sent / max(1, len(data)) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
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
