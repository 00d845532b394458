"""A scripted HTTP server on 127.0.0.1 (ephemeral port) for the url collector tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer: a status, a body, optionally cut short (the connection drops)."""

    status: int = 200
    body: bytes = b""
    truncate_at: int | None = None  # send Content-Length of the full body but only this many bytes


@dataclass
class ScriptedServer:
    """Serves `routes[path]` replies in order; the last one repeats. Records every request path."""

    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def start(self) -> ScriptedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                replies = server.routes.get(self.path)
                if not replies:
                    reply = Reply(404, b"not found")
                else:
                    reply = replies.pop(0) if len(replies) > 1 else replies[0]
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(reply.body)))
                if reply.truncate_at is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if reply.truncate_at is not None:
                    self.wfile.write(reply.body[: reply.truncate_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(reply.body)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
