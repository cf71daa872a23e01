"""Issue 19 end to end: personal data stored once and encrypted, nowhere else in clear, readable by staff
with the right to it, re-encrypted by a key rotation while intake serves.

A thousand petitions with generated names, phones, street addresses and ID-card numbers, written into
their text as well as their contact fields, go through intake, routing, sla and stats. Then a raw dump of
every database of the namespace (pymongo), FerretDB's SQLite files on disk with their WAL, and every
message of every topic must contain none of those values; staff read each one back through intake.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient

from services.intake.contacts import ContactCipher, ContactKeys, KeyUnavailable, generate_key_spec
from tests.e2e.privacy_dump import database_dump, found_in, sqlite_files, topic_dump
from tests.personal_data import Person, people, petition_text
from tests.support import MONGO, diagnosis, eventually

N = 1000
STAFF = {"Authorization": "Bearer dev-dispatcher"}  # config/staff-tokens.yaml: the county dispatcher
OLD, NEW = generate_key_spec("old"), generate_key_spec("new")


def body_of(person: Person, rng: random.Random) -> dict:
    return {
        "channel": rng.choice(["hotline", "web", "miniprogram"]),
        "category": rng.choice(["drainage", "roads", "utilities", "social_security"]),
        "content": petition_text(person, rng),
        "location": {"town": "城关街道", "village": "下龙河新村", "address": person.address},
        "citizen": {"name": person.name, "phone": person.phone},
    }


def submit_all(intake: str, bodies: list[dict]) -> list[str]:
    """The bodies submitted by 8 client threads back to back (a hotline centre's burst); petition ids."""
    local = threading.local()

    def one(body: dict) -> str:
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        r = http.post(f"{intake}/v1/petitions", json=body, timeout=60)
        assert r.status_code == 201, r.text
        return r.json()["petition_id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, bodies))


def staff_reads(intake: str, pids: list[str], persons: list[Person]) -> None:
    http = requests.Session()
    for pid, person in zip(pids, persons, strict=True):
        seen = http.get(f"{intake}/v1/petitions/{pid}", headers=STAFF, timeout=30)
        assert seen.status_code == 200, seen.text
        view = seen.json()
        assert view["citizen"] == {"name": person.name, "phone": person.phone}, pid
        assert view["location"]["address"] == person.address, pid
        assert person.id_number in view["content"] and person.phone[-4:] in view["content"], pid


def keys_cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("petitions-keys")
    return subprocess.run(
        [str(script), command], env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.timeout(1200)
def test_a_thousand_petitions_leave_no_personal_data_in_clear_and_keys_rotate(fleet):
    env = {"CONTACT_KEYS": OLD, "RATE_LIMITS": "off"}  # one address submits a thousand: not what is tested here
    intake = fleet.start("intake", extra_env=env).url
    for name in ("routing", "sla", "stats"):
        fleet.start(name)
    fleet.wait_ready(timeout_s=120)

    persons = people(N + 1, seed=19)
    canary, persons = persons[0], persons[1:]
    rng = random.Random(19)
    pids = submit_all(intake, [body_of(p, rng) for p in persons])
    assert len(set(pids)) == N

    # every event consumed: the stats count all of them, so routing's and sla's topics are written too
    stats = fleet.processes["stats"].url

    def all_counted() -> None:
        summary = requests.get(f"{stats}/v1/stats/summary", headers=STAFF, timeout=30).json()
        assert summary["accepted"] == N, summary

    try:
        eventually(all_counted, timeout_s=300, interval_s=2)
    except AssertionError as exc:  # say where the events stopped, read once, when the wait is over
        raise AssertionError(f"{exc}\n{diagnosis(fleet, ('stats',))}") from exc

    prefix = fleet.env["MONGO_DB_PREFIX"]
    # the search finds what is there: a canary written in clear into the namespace shows up in both dumps
    with MongoClient(MONGO) as client:
        client[f"{prefix}canary"]["canary"].insert_one(canary.values())
    assert set(found_in(database_dump(prefix), canary.values().values())) == set(canary.values().values())
    assert set(found_in(sqlite_files(prefix), canary.values().values())) == set(canary.values().values())
    with MongoClient(MONGO) as client:
        client.drop_database(f"{prefix}canary")

    secrets = [v for p in persons for v in p.values().values()]
    dumps = database_dump(prefix)
    assert {f"{prefix}{s}" for s in ("intake", "routing", "sla", "stats")} <= set(dumps)
    files = sqlite_files(prefix)
    assert any(name.endswith("-wal") for name in files) and any(name.endswith(".sqlite") for name in files)
    topics = topic_dump(fleet.env["KAFKA_TOPIC_PREFIX"])
    topic = fleet.env["KAFKA_TOPIC_PREFIX"]
    assert topics[f"{topic}petitions.intake.v1"] and topics[f"{topic}petitions.routing.v1"]
    assert len(topics) == 5  # and the sla, alerts and dead-letter topics, whatever they hold
    for where, blobs in (("databases", dumps), ("SQLite files", files), ("topics", topics)):
        leaked = found_in(blobs, secrets)
        assert not leaked, f"{len(leaked)} values in clear in the {where}, e.g. {list(leaked.items())[:5]}"

    # staff with the right to contact details read them back (every one of them at the end, below)
    staff_reads(intake, pids[:100], persons[:100])

    # ---- rotation while intake serves: the new key first, the old one still readable, then re-encrypt
    fleet.stop("intake")
    intake = fleet.start("intake", extra_env={**env, "CONTACT_KEYS": f"{NEW},{OLD}"}).url
    fleet.wait_ready(["intake"])
    cli_env = {"CONTACT_KEYS": f"{NEW},{OLD}", "PETITIONS_ENV": "development", **fleet.env}
    with ThreadPoolExecutor(1) as pool:
        rotation = pool.submit(keys_cli, "rotate", cli_env)
        staff_reads(intake, pids[100:200], persons[100:200])  # read through intake while the rotation runs
        more = submit_all(intake, [body_of(p, rng) for p in people(20, seed=1919)])
        done = rotation.result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rotate: done" in done.stdout and "under other keys: none" in done.stdout, done.stdout
    assert "checked" in done.stdout  # its progress

    with MongoClient(MONGO, tz_aware=True) as client:
        records = list(client[f"{prefix}intake"]["contacts"].find({}))
    assert len(records) == N + len(more)
    new_only = ContactCipher(ContactKeys.parse([NEW]))
    old_only = ContactCipher(ContactKeys.parse([OLD]))
    assert {r["kid"] for r in records} == {"new"}
    assert all(new_only.open(r)["phone"] for r in records)
    for record in records:
        with pytest.raises(KeyUnavailable):
            old_only.open(record)
        with pytest.raises(KeyUnavailable):  # not even with the old key's bytes under the new key's name
            old_only.open({**record, "kid": "old"})

    # intake without the old key at all: every citizen is still there for staff
    fleet.stop("intake")
    intake = fleet.start("intake", extra_env={**env, "CONTACT_KEYS": NEW}).url
    fleet.wait_ready(["intake"])
    staff_reads(intake, pids, persons)
    status = keys_cli("status", {**cli_env, "CONTACT_KEYS": NEW})
    assert status.returncode == 0 and status.stdout.split() == ["new", str(N + len(more)), "(current)"], status
