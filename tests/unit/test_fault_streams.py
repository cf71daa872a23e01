"""The fault suite's citizens (tests/faults/support.py) against a server that dies mid-answer.

A kill -9 can land after intake committed a petition and while its 201 is on the wire: the client
then reads a cut-off answer (requests' ChunkedEncodingError, not a ConnectionError). A citizen must
send the petition again with its key, as the mini-program does, not stop submitting.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from tests.faults.support import ActionCrowd, BatchStream, CrowdStream, Stream


@contextmanager
def answering_server(cut_first: int):
    """An HTTP server whose first `cut_first` answers promise a longer body than they send and close;
    later answers are whole: 201 with a petition id for a single petition, 200 for a staff action,
    200 with every item 201 for a batch."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    answered, stop = [0], threading.Event()

    def body_for(path: str, request_body: bytes) -> tuple[int, bytes]:
        if path.endswith("/batch"):
            items = json.loads(request_body)["items"]
            results = [
                {"index": i, "status": 201, "petition": {"petition_id": f"JZ{i:04d}"}} for i in range(len(items))
            ]
            return 200, json.dumps({"results": results}).encode()
        if "/workorders/" in path:
            return 200, b"{}"
        return 201, json.dumps({"petition_id": "JZ0001"}).encode()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        (h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), b"0"
                    )
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                path = head.split(b" ")[1].decode()
                status, body = body_for(path, rest)
                cut = answered[0] < cut_first
                answered[0] += 1
                declared = len(body) + (100 if cut else 0)
                sent = body[: len(body) // 2] if cut else body
                conn.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n"
                    f"Connection: close\r\n\r\n".encode()
                    + sent
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", answered
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _petition(key: str) -> SimpleNamespace:
    return SimpleNamespace(body={"category": "drainage"}, idempotency_key=key)


@pytest.mark.parametrize("stream_class", [Stream, CrowdStream])
def test_a_citizen_whose_answer_is_cut_off_sends_again_and_goes_on(stream_class):
    with answering_server(cut_first=1) as (url, answered):
        stream = stream_class(url, [_petition("k1"), _petition("k2")], rate_per_s=100)
        if stream_class is CrowdStream:
            stream.clients = 1
        stream.start()
        stream.join()
    assert stream.failures == []
    assert stream.accepted == ["JZ0001", "JZ0001"]
    assert stream.submitted == 2
    assert stream.retries == 1
    assert answered[0] == 3


def test_a_hotline_batch_whose_answer_is_cut_off_is_sent_again():
    with answering_server(cut_first=1) as (url, answered):
        stream = BatchStream(url, [_petition("k1"), _petition("k2")], size=2)
        stream.start()
        stream.join()
    assert stream.failures == []
    assert stream.accepted == ["JZ0000", "JZ0001"]
    assert stream.retries == 1
    assert answered[0] == 2


def test_a_staff_action_whose_answer_is_cut_off_is_sent_again():
    with answering_server(cut_first=1) as (url, answered):
        crowd = ActionCrowd(url, ["JZ0001"], clients=1, rate_per_s=100)
        crowd.start()
        crowd.join()
    assert crowd.failures == []
    assert crowd.accepted == ["JZ0001"]
    assert answered[0] == 2


def test_a_citizen_that_crashes_is_reported_by_join():
    """A citizen stopped by an error no fault explains fails the scenario at `join`, with its cause,
    instead of leaving its petitions unsent for the reconciliation to puzzle over."""
    stream = Stream("http://127.0.0.1:1", [SimpleNamespace(body=object(), idempotency_key="k")])
    stream.start()
    with pytest.raises(AssertionError, match="TypeError"):
        stream.join()
