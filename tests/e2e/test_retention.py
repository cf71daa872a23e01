"""Retention end to end, on intake's test clock: petitions whose retention period after their end has
passed lose their contact details everywhere (submitter and followers), open ones and recent ones keep
them, the statistics do not change by one figure, and each erasure is recorded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pymongo import MongoClient

from countysim import generate_county
from petition_common.due import DueQueue
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from tests.e2e.test_personal_data import body_of
from tests.personal_data import people
from tests.support import MONGO, eventually

RETENTION_DAYS = 30
STATS_QUERIES = [
    ("/v1/stats/summary", {"from": "2000-01-01", "to": "2999-12-31"}),
    ("/v1/stats/breakdown", {"by": "category", "from": "2000-01-01", "to": "2999-12-31"}),
    ("/v1/stats/breakdown", {"by": "channel", "from": "2000-01-01", "to": "2999-12-31"}),
    ("/v1/stats/timeseries", {"interval": "month", "from": "2020-01-01", "to": "2029-12-31"}),
]


@pytest.mark.timeout(600)
def test_contact_details_are_erased_after_the_retention_period_and_statistics_stay_exact(fleet, tmp_path):
    county = generate_county(seed=7)
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    clock = tmp_path / "intake-clock"
    clock.write_text("offset:0")
    env = {
        "STAFF_TOKENS_FILE": str(write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
    }
    intake_env = {
        **env,
        "INTAKE_FAKE_CLOCK_FILE": str(clock),
        "INTAKE_RETENTION_DAYS": str(RETENTION_DAYS),
        "INTAKE_RETENTION_INTERVAL_S": "1",
    }
    intake = fleet.start("intake", extra_env=intake_env).url
    routing = fleet.start("routing", extra_env=env).url
    stats = fleet.start("stats", extra_env=env).url
    fleet.wait_ready(timeout_s=120)
    staff = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    http = requests.Session()

    persons = people(16, seed=20)
    rng = random.Random(20)
    receipts = []
    for person in persons[:12]:
        r = http.post(f"{intake}/v1/petitions", json=body_of(person, rng), timeout=30)
        assert r.status_code == 201, r.text
        receipts.append((r.json()["petition_id"], r.json()["tracking_code"], person))
    withdrawn, closed, still_open = receipts[:4], receipts[4:8], receipts[8:]
    followers = dict(zip((closed[0][0], still_open[0][0]), persons[12:14], strict=True))
    for pid, follower in followers.items():
        joined = http.post(
            f"{intake}/v1/petitions/{pid}/join",
            json={"channel": "web", "citizen": {"name": follower.name, "phone": follower.phone}},
            timeout=30,
        )
        assert joined.status_code == 201, joined.text

    for pid, code, _ in withdrawn:
        r = http.post(f"{intake}/v1/petitions/{pid}/withdraw", json={"tracking_code": code}, timeout=30)
        assert r.status_code == 200, r.text

    def act(pid: str, action: str, body: dict | None = None) -> None:
        def attempt() -> None:  # the work order exists once routing has consumed the submission
            r = http.post(f"{routing}/v1/workorders/{pid}/{action}", json=body or {}, headers=staff, timeout=30)
            assert r.status_code == 200, (action, pid, r.text)

        eventually(attempt, timeout_s=60, interval_s=0.5)

    for pid, _, _ in closed:
        act(pid, "contact")
        act(pid, "reply", {"resolution": "resolved", "summary": "已处理"})
        act(pid, "close")

    def status(pid: str, code: str) -> str:
        return http.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=30).json()["status"]

    def ended() -> None:
        assert [status(pid, code) for pid, code, _ in closed] == ["closed"] * 4
        summary = http.get(f"{stats}/v1/stats/summary", headers=staff, timeout=30).json()
        assert (summary["accepted"], summary["closed"]) == (12, 4), summary

    eventually(ended, timeout_s=120, interval_s=1)
    before = stats_figures(stats, staff)
    for pid, _, person in receipts:  # all contact details there, for staff, before the period
        assert staff_view(intake, staff, pid)["citizen"] == {"name": person.name, "phone": person.phone}

    # ---- a day short of the period nothing goes; past it, the ended petitions lose their contacts
    prefix = fleet.env["MONGO_DB_PREFIX"]
    move_clock(clock, days=RETENTION_DAYS - 1)
    moved_to = datetime.now(UTC) + timedelta(days=RETENTION_DAYS - 1)
    with MongoClient(MONGO, tz_aware=True) as client:
        db = client[f"{prefix}intake"]
        assert _notes(db) == 8  # noted when they ended
        eventually(lambda: _scanned(intake, since=moved_to), timeout_s=60)
        assert db["erasures"].count_documents({}) == 0 and db["contacts"].count_documents({}) == 14

        move_clock(clock, days=RETENTION_DAYS + 1)
        eventually(lambda: _count(db["erasures"], 8), timeout_s=120, interval_s=0.5)
        erasures = {e["petition_id"]: e for e in db["erasures"].find({})}
        contacts_left = db["contacts"].count_documents({})
        followers_left = {f["petition_id"] for f in db["followers"].find({})}
        notes_left = _notes(db)
        trail = [r for r in db["audit"].find({}) if r["action"] == "contact.erased"]

    ended_ids = {pid for pid, _, _ in withdrawn + closed}
    assert set(erasures) == ended_ids
    assert all(e["reason"] == "retention" and e["retention_days"] == RETENTION_DAYS for e in erasures.values())
    assert erasures[closed[0][0]]["contacts_erased"] == 2 and erasures[closed[0][0]]["followers"] == 1
    assert all(e["contacts_erased"] == 1 for pid, e in erasures.items() if pid != closed[0][0])
    # each erasure is in intake's audit trail too, by the retention job
    assert {r["petition_id"] for r in trail} == ended_ids
    assert all(r["staff_id"] == "retention-job" and "citizen.phone" in r["fields"] for r in trail)
    assert contacts_left == 5 and followers_left == {still_open[0][0]} and notes_left == 0

    for pid, _, person in withdrawn + closed:
        view = staff_view(intake, staff, pid)
        assert view["citizen"]["name"] == view["citizen"]["phone"] == "" and view["citizen"]["erased_at"], view
        text = str(view)
        assert all(value not in text for value in person.values().values()), (pid, text)
    for pid, _, person in still_open:
        assert staff_view(intake, staff, pid)["citizen"] == {"name": person.name, "phone": person.phone}

    # the statistics never held contact details: every figure the same
    assert stats_figures(stats, staff) == before


def move_clock(path, days: float) -> None:
    path.write_text(f"offset:{timedelta(days=days).total_seconds()}")


def staff_view(intake: str, staff: dict, pid: str) -> dict:
    r = requests.get(f"{intake}/v1/petitions/{pid}", headers=staff, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def stats_figures(stats: str, staff: dict) -> list[dict]:
    out = []
    for path, params in STATS_QUERIES:
        r = requests.get(f"{stats}{path}", params=params, headers=staff, timeout=30)
        assert r.status_code == 200, r.text
        out.append({k: v for k, v in r.json().items() if k not in ("generated_at", "as_of")})
    return out


def _notes(db) -> int:
    """The ended petitions waiting in intake's retention queue (petition_common.due); a change retried
    after a lost race notes its petition again, which the job erases once."""
    return len({note["petition_id"] for note in DueQueue(db["retention_queue"]).waiting()})


def _count(collection, n: int) -> None:
    assert collection.count_documents({}) == n


def _scanned(intake: str, since: datetime) -> None:
    """The erasure job has run on intake's clock at `since` or later."""
    text = requests.get(f"{intake}/metrics", timeout=10).text
    runs = [line for line in text.splitlines() if line.startswith("petitions_retention_last_run_timestamp_seconds")]
    assert runs and float(runs[0].split()[-1]) >= since.timestamp(), runs
