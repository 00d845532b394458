"""A loopback HTTP server that sends its body slowly, and stops itself.

`TrickleServer(piece=1, every=0.5)` answers every GET with a large Content-Length, then sends
`piece` bytes every `every` seconds. Each answer ends after `answer_for` seconds (the connection
drops) and the whole server shuts down `lifetime` seconds after it started, so a client that never
gives up still ends, and a test never hangs.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TrickleServer:
    def __init__(
        self,
        piece: int = 1,
        every: float = 0.5,
        size: int = 10_000_000,
        answer_for: float = 10.0,
        lifetime: float = 20.0,
    ):
        self.piece, self.every, self.size = piece, every, size
        self.answer_for, self.lifetime = answer_for, lifetime
        self.requests = 0
        self._stop = threading.Event()

    def start(self) -> TrickleServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(server.size))
                self.send_header("Connection", "close")
                self.end_headers()
                ends = time.monotonic() + server.answer_for
                sent = 0
                try:
                    while sent < server.size and time.monotonic() < ends:
                        if server._stop.wait(server.every):
                            break
                        self.wfile.write(b"x" * server.piece)
                        self.wfile.flush()
                        sent += server.piece
                except OSError:
                    pass  # the client gave up
                self.close_connection = True

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/data/slow.jsonl"

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
