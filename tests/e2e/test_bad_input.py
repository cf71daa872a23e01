"""Bad input of every kind answers a 4xx with the contract's JSON error (field-level where a field is
wrong), and nothing is stored or published: checked in intake's database and on its topic."""

from __future__ import annotations

import copy

import pytest
import requests
from pymongo import MongoClient

from tests.e2e.test_submission_event import BODY
from tests.support import MONGO, read_topic


def _with(path: str, value: object) -> dict:
    body = copy.deepcopy(BODY)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()

# (name, body or raw bytes, content type, expected status, field expected in error.fields or None)
SUBMISSIONS = [
    ("not json", b"{not json", "application/json", 400, None),
    ("json array", b"[1, 2]", "application/json", 400, None),
    ("wrong content type", b"channel=web", "text/plain", 415, None),
    ("invalid utf-8", b'{"content": "\xff\xfe"}', "application/json", 400, None),
    ("huge body", b'{"content": "' + b"x" * 70_000 + b'"}', "application/json", 413, None),
    ("content too long", _with("content", "堵" * 5001), None, 400, "content"),
    ("content empty", _with("content", "   "), None, 400, "content"),
    ("content not a string", _with("content", 42), None, 400, "content"),
    ("content with control characters", _with("content", "下水道\x00堵了"), None, 400, "content"),
    ("unknown category", _with("category", "ufo_sighting"), None, 422, "category"),
    ("bad channel", _with("channel", "fax"), None, 400, "channel"),
    ("bad phone", _with("citizen.phone", "12345"), None, 400, "citizen.phone"),
    ("phone not a string", _with("citizen.phone", 13812341234), None, 400, "citizen.phone"),
    ("name too long", _with("citizen.name", "张" * 31), None, 400, "citizen.name"),
    ("citizen missing", _with("citizen", _DELETE), None, 400, "citizen"),
    ("location not an object", _with("location", "王台镇"), None, 400, "location"),
    ("town missing", _with("location.town", _DELETE), None, 400, "location.town"),
    ("lat without lon", _with("location.lat", 36.2), None, 400, "location.lon"),
    (
        "lat out of range",
        {**_with("location.lat", 136.2), "location": {**BODY["location"], "lat": 136.2, "lon": 120.0}},
        None,
        400,
        "location.lat",
    ),
    (
        "lat a string",
        {**BODY, "location": {**BODY["location"], "lat": "36.2", "lon": 120.0}},
        None,
        400,
        "location.lat",
    ),
    ("bad grid id", _with("location.grid_id", "T01/../G1"), None, 400, "location.grid_id"),
    ("unknown field", {**BODY, "priority": "urgent"}, None, 400, "priority"),
    ("unknown location field", _with("location.room", "3"), None, 400, "location.room"),
]


@pytest.fixture
def intake(fleet):
    proc = fleet.start("intake")
    fleet.wait_ready()
    return proc.url


def test_bad_input_is_refused_with_field_errors_and_nothing_is_kept(intake, fleet):
    http = requests.Session()
    for name, body, content_type, status, field in SUBMISSIONS:
        if isinstance(body, bytes):
            resp = http.post(f"{intake}/v1/petitions", data=body, headers={"Content-Type": content_type}, timeout=10)
        else:
            resp = http.post(f"{intake}/v1/petitions", json=body, timeout=10)
        assert resp.status_code == status, (name, resp.status_code, resp.text)
        error = resp.json()["error"]
        assert error["code"] and error["message"], name
        if field is not None:
            assert field in error["fields"], (name, error)

    resp = http.post(f"{intake}/v1/petitions", json=BODY, headers={"Idempotency-Key": "k" * 201}, timeout=10)
    assert resp.status_code == 400 and "Idempotency-Key" in resp.json()["error"]["fields"]

    # one valid petition, for the cases that need one
    resp = http.post(f"{intake}/v1/petitions", json=BODY, headers={"Idempotency-Key": "same-key"}, timeout=10)
    assert resp.status_code == 201
    pid, code = resp.json()["petition_id"], resp.json()["tracking_code"]
    # the same key with another body: refused, and no second petition
    resp = http.post(
        f"{intake}/v1/petitions", json=_with("content", "另一件事"), timeout=10, headers={"Idempotency-Key": "same-key"}
    )
    assert resp.status_code == 422 and "Idempotency-Key" in resp.json()["error"]["fields"]
    # the same key with the same body: the same petition
    resp = http.post(f"{intake}/v1/petitions", json=BODY, headers={"Idempotency-Key": "same-key"}, timeout=10)
    assert resp.status_code == 201 and resp.json() == {
        "petition_id": pid,
        "tracking_code": code,
        "status": "submitted",
        "duplicate_of": None,
    }

    reads = [
        ("unknown petition", f"/v1/petitions/JZ20990101000001?tracking_code={code}", {}, 404),
        ("wrong tracking code", f"/v1/petitions/{pid}?tracking_code=wrong", {}, 404),
        ("no tracking code", f"/v1/petitions/{pid}", {}, 401),
        ("invalid staff token", f"/v1/petitions/{pid}", {"Authorization": "Bearer nope"}, 401),
    ]
    for name, path, headers, status in reads:
        resp = http.get(f"{intake}{path}", headers=headers, timeout=10)
        assert resp.status_code == status, (name, resp.text)
        assert resp.json()["error"]["code"], name

    actions = [
        (
            "feedback on unknown petition",
            "JZ20990101000001",
            "feedback",
            {"tracking_code": code, "satisfaction": "satisfied"},
            404,
            None,
        ),
        (
            "feedback with wrong code",
            pid,
            "feedback",
            {"tracking_code": "wrong-code-0000", "satisfaction": "satisfied"},
            404,
            None,
        ),
        (
            "feedback with a code too short to be one",
            pid,
            "feedback",
            {"tracking_code": "wrong", "satisfaction": "satisfied"},
            400,
            "tracking_code",
        ),
        ("feedback before a reply", pid, "feedback", {"tracking_code": code, "satisfaction": "satisfied"}, 409, None),
        (
            "feedback with bad rating",
            pid,
            "feedback",
            {"tracking_code": code, "satisfaction": "meh"},
            400,
            "satisfaction",
        ),
        (
            "feedback with unknown field",
            pid,
            "feedback",
            {"tracking_code": code, "satisfaction": "satisfied", "stars": 5},
            400,
            "stars",
        ),
        ("withdraw without code", pid, "withdraw", {}, 400, "tracking_code"),
        ("withdraw with wrong code", pid, "withdraw", {"tracking_code": "wrong-code-0000"}, 404, None),
        ("withdraw with a code of the wrong type", pid, "withdraw", {"tracking_code": ["x"]}, 400, "tracking_code"),
    ]
    for name, target, action, body, status, field in actions:
        resp = http.post(f"{intake}/v1/petitions/{target}/{action}", json=body, timeout=10)
        assert resp.status_code == status, (name, resp.text)
        if field is not None:
            assert field in resp.json()["error"]["fields"], (name, resp.text)

    # nothing but the one valid petition was stored or published
    with MongoClient(MONGO) as client:
        db = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]
        commits = list(db["petitions_commits"].find({}, {"_id": 1}))
    assert [c["_id"] for c in commits] == [f"{pid}:000001"]
    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    messages = read_topic(topic, lambda ms: len(ms) >= 1, timeout_s=15)
    read_more = read_topic(topic, lambda ms: len(ms) > 1, timeout_s=3)
    assert [m["key"] for m in messages] == [pid] and len(read_more) == 1
