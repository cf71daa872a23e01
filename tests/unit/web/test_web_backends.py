"""The web's clients of the services: a page's several reads run at once and carry the page's headers."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask

from services.web.backends import Backends, BackendUnavailable


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


@pytest.fixture
def resets_first() -> Iterator[str]:
    """A service that resets the first connection as the request arrives (a kept-alive connection it
    closed as it was reused), then answers every later one."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        first = True
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if first:
                    first = False
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                    continue
                body = b'{"ok": true}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_read_on_a_reset_connection_is_sent_once_more(resets_first: str) -> None:
    answer = Backends({"sla": resets_first}).get("sla", "/v1/sla/petitions/P1")
    assert answer.status == 200 and answer.body == {"ok": True}


def test_a_write_on_a_reset_connection_is_not_sent_again(resets_first: str) -> None:
    with pytest.raises(BackendUnavailable):
        Backends({"intake": resets_first}).post("intake", "/v1/petitions", json={})
