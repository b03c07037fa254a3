"""Fixtures of the alert tests; the helpers they share are in ``_alerts_helpers.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from _alerts_helpers import HttpReceiver

from gridwatch._services import free_port


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    recv = HttpReceiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with recv.lock:
                recv.attempts += 1
                failing = recv.attempts <= recv.fail_first
                if not failing:
                    recv.accepted.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", recv.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recv
    server.shutdown()
    server.server_close()
