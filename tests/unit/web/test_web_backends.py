"""The web's clients of the services: a page's several reads run at once and carry the page's headers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask

from services.web.backends import Backends


@pytest.fixture
def service() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A service whose every answer waits until three requests are in flight at once (or 10 s pass)."""
    together = threading.Barrier(3, timeout=10)
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            try:
                together.wait()
                status, body = 200, {"path": self.path}
            except threading.BrokenBarrierError:
                status, body = 409, {"error": "not at once"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_pages_reads_run_at_once_with_the_pages_client_headers(service) -> None:  # type: ignore[no-untyped-def]
    url, seen = service
    backends = Backends(
        {"intake": url, "routing": url, "sla": url}, client_headers=lambda: {"X-Petitions-Client": "page-1"}
    )
    with Flask(__name__).test_request_context():
        answers = backends.get_all([("routing", "/a"), ("intake", "/b"), ("sla", "/c")], token="t0ken")
    assert [a.status for a in answers] == [200, 200, 200]  # all three were in flight together
    assert [a.body["path"] for a in answers] == ["/a", "/b", "/c"]  # in the order asked
    assert {s["x-petitions-client"] for s in seen} == {"page-1"}
    assert {s["authorization"] for s in seen} == {"Bearer t0ken"}
