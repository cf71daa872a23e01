"""Issue #16, part 1: 1,000 generated hostile submissions (seeded, so a failure reproduces). Every one is
either refused with a 4xx and the contract's error shape, or stored whole: readable back by the
citizen, by staff with exactly what was accepted, and published once on the intake topic. Never a 5xx."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
import requests

from tests.e2e.test_submission_event import BODY
from tests.support import read_topic

SEED = 16
N = 1000
STAFF = {"Authorization": "Bearer dev-dispatcher"}  # config/staff-tokens.yaml, the default token file

TEXT_PIECES = [
    "1号楼",
    "007",
    "３号",
    "🚰💩",
    "👨‍👩‍👧",
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\ufeff",
    "\u0301",  # a combining accent with nothing before it
    "\x00",
    "\x07",
    "\x1b[31m",
    "\r\n",
    "\t",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE petitions; --",
    '{"$gt": ""}',
    "$where",
    "a.b",
    "*",
    "**",
    " ",
    "刘洋",
    "欧阳娜娜",
    "下水道堵了",
    "\\",
    "%s%n",
    "\U0010fffd",
    "\uffff",
]
WRONG_TYPES: list[Any] = [None, 0, -1, 1.5, True, [], ["x"], {}, {"$ne": None}, "", 10**30]


def _text(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(WRONG_TYPES)
    if roll < 0.14:  # very long, around the limits
        return rng.choice(["堵", "a", "🚰", "1"]) * rng.choice([31, 51, 101, 201, 501, 1001, 5000, 5001, 20000])
    return "".join(rng.choice(TEXT_PIECES) for _ in range(rng.randint(0, 6)))


def _number(rng: random.Random) -> Any:
    return rng.choice([*WRONG_TYPES, "36.2", 1e308, -1e308, -0.0, 90.0, 90.0001, -180, 180.5, 36.2, 120.05])


FIELDS = {
    "citizen.name": _text,
    "content": _text,
    "location.town": _text,
    "location.village": _text,
    "location.address": _text,
    "location.grid_id": _text,
    "location.lat": _number,
    "location.lon": _number,
    "citizen.phone": lambda rng: rng.choice(["13812341234", "0532-88881234", "+86 138 1234 1234", *WRONG_TYPES]),
}


def hostile_bodies(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = copy.deepcopy(BODY)
        for path in rng.sample(sorted(FIELDS), rng.randint(1, 3)):
            parent, _, key = path.rpartition(".")
            target = body[parent] if parent else body
            target[key] = FIELDS[path](rng)
        if rng.random() < 0.05:  # a whole object of the wrong type
            body[rng.choice(["location", "citizen"])] = rng.choice(WRONG_TYPES)
        out.append(body)
    return out


@pytest.mark.timeout(900)
def test_a_thousand_hostile_submissions_are_stored_whole_or_refused_with_a_4xx(fleet):
    # a thousand submissions from one address and three phones, as fast as intake takes them: far past
    # any rate limit, which is not what this test is about (test_rate_limits.py is)
    intake = fleet.start("intake", extra_env={"RATE_LIMITS": "off"}).url
    fleet.wait_ready()
    http = requests.Session()
    accepted: dict[str, tuple[str, dict[str, Any]]] = {}
    refused = 0
    for i, body in enumerate(hostile_bodies(SEED, N)):
        raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as \ud800 escapes
        resp = http.post(f"{intake}/v1/petitions", data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code < 500, (i, raw[:300], resp.status_code, resp.text[:300])
        if resp.status_code == 201:
            accepted[resp.json()["petition_id"]] = (resp.json()["tracking_code"], body)
            continue
        refused += 1
        assert 400 <= resp.status_code < 500 and resp.json()["error"]["code"], (i, resp.text[:300])

    assert accepted and refused  # the generator makes both kinds
    for pid, (code, body) in accepted.items():
        mine = http.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10)
        assert mine.status_code == 200, (pid, mine.text)
        staff = http.get(f"{intake}/v1/petitions/{pid}", headers=STAFF, timeout=10).json()
        assert staff["content"] == body["content"].strip(), pid
        assert staff["citizen"]["name"] == body["citizen"]["name"].strip(), pid
        for key in ("town", "village", "grid_id"):
            if body["location"].get(key) is not None:
                assert staff["location"][key] == body["location"][key].strip(), (pid, key)

    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    events = read_topic(topic, lambda ms: len(ms) >= len(accepted), timeout_s=60)
    assert sorted(m["key"] for m in events) == sorted(accepted)
