"""A small local HTTP server for the model-download tests (no internet needed).

``FileServer`` serves registered byte strings with optional Range support and can misbehave on
purpose: drop the connection after N bytes, ignore Range, trickle slowly, send HTML or a 404.
It runs ``ThreadingHTTPServer`` in a daemon thread; ``stop()`` shuts it down.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Resource:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    ranges: bool = True  # honour Range requests (206) or ignore them (200)
    drop_after: int | None = None  # close the connection after this many body bytes...
    drops_left: int = 0  # ...this many times
    chunk: int = 1 << 16
    delay_s: float = 0.0  # pause between chunks (to make a download slow)


@dataclass
class Seen:
    path: str
    range: str | None
    user_agent: str | None


@dataclass
class FileServer:
    resources: dict[str, Resource] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        self.stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(Seen(self.path, self.headers.get("Range"), self.headers.get("User-Agent")))
                res = server.resources.get(self.path)
                if res is None:
                    return self._simple(404, b"not found")
                if res.status != 200:
                    return self._simple(res.status, b"error")
                body, start, status = res.body, 0, 200
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m and res.ranges:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", res.content_type)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes" if res.ranges else "none")
                self.send_header("ETag", '"v1"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                limit = len(body)
                if res.drop_after is not None and res.drops_left > 0:
                    res.drops_left -= 1
                    limit = min(limit, start + res.drop_after)
                pos = start
                try:
                    while pos < limit and not server.stopping.is_set():
                        end = min(limit, pos + res.chunk)
                        self.wfile.write(body[pos:end])
                        self.wfile.flush()
                        pos = end
                        if res.delay_s:
                            time.sleep(res.delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if pos < len(body):  # dropped on purpose: hang up mid-body
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            def _simple(self, code: int, text: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, **kw) -> str:
        self.resources[path] = Resource(body, **kw)
        return self.url(path)

    def ranges_seen(self, path: str) -> list[str | None]:
        return [r.range for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
