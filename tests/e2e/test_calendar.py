"""Next year's holiday notice arrives late: supervision goes on, and importing it fixes every deadline.

intake, routing, two sla instances and stats as real processes, their clocks in late December 2026
(routing's and intake's shifted, sla's set by the test). Two petitions are submitted on Monday 28
December, when no 2027 calendar file exists: their reply deadlines are provisional (weekends and the
statutory holidays), and warnings and breaches run on them. Then the operator imports a (made-up) 2027
notice with `petitions-calendar import`, which makes Saturday 2 January a working day, inside both
reply windows: both deadlines move a day earlier, the change is published once for each petition
although two sla instances take it up, and stats' replied-on-time figure follows (the one petition
replied on 5 January was on time by the provisional calendar and is late by the notice, so its breach,
found late, follows too).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests

from countysim import generate_county
from petition_common.config import REPO_ROOT
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from petition_kernel.times import format_time
from tests.e2e.test_sla import FakeNow
from tests.support import eventually, read_topic

NOTICE_2027 = """国务院办公厅关于2027年部分节假日安排的通知（测试用，虚构）
各省、自治区、直辖市人民政府，国务院各部委、各直属机构：
经国务院批准，现将2027年元旦、春节放假调休日期的具体安排通知如下。
一、元旦：1月1日（周五）放假调休，共1天。1月2日（周六）上班。
二、春节：2月5日（农历除夕、周五）至11日（农历正月初七、周四）放假调休，共7天。2月20日（周六）上班。
国务院办公厅
2026年12月30日
"""


def cst(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+08:00").astimezone(UTC)


class Shifted:
    """A clock file `offset:<seconds>` that puts a service's now at a chosen instant (and runs on)."""

    def __init__(self, path):
        self.path = path

    def at(self, moment: datetime) -> None:
        self.path.write_text(f"offset:{(moment - datetime.now(UTC)).total_seconds()}")


@pytest.mark.timeout(300)
def test_a_late_notice_moves_provisional_deadlines_once_and_stats_follows(fleet, tmp_path):
    county = generate_county(seed=7)
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    for file in (REPO_ROOT / "config" / "calendar").glob("*.yaml"):  # the shipped files: up to 2026
        shutil.copy(file, calendar_dir)
    shifted = Shifted(tmp_path / "shifted-clock")
    shifted.at(cst("2026-12-28T10:00"))
    sla_now = FakeNow(tmp_path / "sla-now")
    sla_now.set(cst("2026-12-28T10:00"))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    env = {
        "STAFF_TOKENS_FILE": str(write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
        "INTAKE_FAKE_CLOCK_FILE": str(shifted.path),
        "ROUTING_FAKE_CLOCK_FILE": str(shifted.path),
        "CALENDAR_DIR": str(calendar_dir),
    }
    sla_env = {
        **env,
        "SLA_FAKE_CLOCK_FILE": str(sla_now.path),
        "SLA_SCAN_INTERVAL_S": "0.3",
        "SLA_CALENDAR_CHECK_S": "0.5",
    }
    intake = fleet.start("intake", extra_env=env).url
    routing = fleet.start("routing", extra_env=env).url
    slas = [fleet.start("sla", instance=name, extra_env=sla_env).url for name in ("sla", "sla-2")]
    stats = fleet.start("stats", extra_env=env).url
    fleet.wait_ready()
    http = requests.Session()
    auth = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    features = [f for f in county.to_geojson()["features"] if f["properties"]["town_id"] == "T01"]
    r = http.post(f"{routing}/v1/grids/import", json={"type": "FeatureCollection", "features": features}, headers=auth)
    assert r.status_code == 200, r.text

    # ---- Monday 28 December, no 2027 file: two petitions, both contacted at once
    grid = county.grids_in("town", "T01")[0]
    pids = []
    for i in range(2):
        body = {
            "channel": "hotline",
            "category": "roads",
            "content": f"路面塌陷，第{i}处",
            "location": {
                "town": county.towns_by_id["T01"].name,
                "village": county.villages_by_id[grid.village_id].name,
                "grid_id": grid.grid_id,
            },
            "citizen": {"name": "王五", "phone": f"1390013{i:04d}"},
        }
        r = http.post(f"{intake}/v1/petitions", json=body, timeout=30)
        assert r.status_code == 201, r.text
        pids.append(r.json()["petition_id"])
    replied_pid, open_pid = pids

    def act(pid: str, action: str, body: dict | None = None) -> None:
        def attempt() -> None:  # the work order exists once routing has consumed the submission
            r = http.post(f"{routing}/v1/workorders/{pid}/{action}", json=body or {}, headers=auth, timeout=10)
            assert r.status_code == 200, (action, r.text)

        eventually(attempt, timeout_s=30)

    for pid in pids:
        act(pid, "contact")

    def reply_clock(pid: str, sla: str = slas[0]) -> dict:
        r = http.get(f"{sla}/v1/sla/petitions/{pid}", headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["clocks"][1]

    # provisional: 29, 30, 31 December, (1 January off, then the weekend) 4 and 5 January
    provisional_deadline = format_time(cst("2027-01-06T00:00"))
    for pid in pids:
        clock = eventually(lambda pid=pid: _checked(reply_clock(pid), provisional=True))
        assert clock["deadline"] == provisional_deadline and clock["state"] == "on_track"

    # ---- the warnings fall due on 4 January, the handler replies to one on the 5th, the other's breach
    sla_now.set(cst("2027-01-04T12:00"))
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    sla_topic = f"{prefix}petitions.sla.v1"
    _wait_for(sla_topic, {(pid, "sla.warning") for pid in pids})
    shifted.at(cst("2027-01-05T12:00"))
    act(replied_pid, "reply", {"resolution": "resolved", "summary": "已修复"})
    sla_now.set(cst("2027-01-06T01:00"))
    messages = _wait_for(sla_topic, {(open_pid, "sla.breached")})
    notices = [m["value"] for m in messages if m["value"]["type"] in ("sla.warning", "sla.breached")]
    assert all(n["data"]["provisional"] is True for n in notices if n["data"]["clock"] == "reply")

    def stats_sla() -> dict:
        r = http.get(f"{stats}/v1/stats/summary", headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    # stats reads each partition on its own: the open petition's warning may be counted after the reply
    eventually(lambda: _stats(stats_sla(), replied=1, replied_on_time=1, replied_provisional=1, warned=2))

    # ---- the operator imports the notice: one command, no restart
    done = subprocess.run(
        [sys.executable, "-m", "services.sla.calendar_cli", "import", "-", "--dir", str(calendar_dir)],
        input=NOTICE_2027,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2027-01-02 周六" in done.stdout  # it says what it understood
    changed = _wait_for(sla_topic, {(pid, "sla.deadline_changed") for pid in pids})
    # 29, 30, 31 December, 2 January (a working day now) and 4 January: a day earlier, for both
    validator = ContractValidator(REPO_ROOT / "contract")
    official_deadline = format_time(cst("2027-01-05T00:00"))
    for pid in pids:
        clock = eventually(lambda pid=pid: _checked(reply_clock(pid, slas[1]), provisional=False))
        assert clock["deadline"] == official_deadline
    stats_after = eventually(lambda: _stats(stats_sla(), replied=1, replied_on_time=0, replied_provisional=0))
    assert stats_after["rates"]["replied_on_time_rate"] == 0

    # published once per petition although both instances took the notice up; nothing else changed
    messages = read_topic(sla_topic, lambda ms: False, timeout_s=3)
    changes = [m["value"] for m in messages if m["value"]["type"] == "sla.deadline_changed"]
    assert sorted(c["data"]["petition_id"] for c in changes) == sorted(pids), changes
    first_read = [m["value"] for m in changed if m["value"]["type"] == "sla.deadline_changed"]
    assert sorted(c["id"] for c in changes) == sorted(c["id"] for c in first_read)  # none came later
    for change in changes:
        validator.validate(Event.from_dict(change, key=change["subject"]))
        data = change["data"]
        assert (data["previous_deadline"], data["deadline"]) == (provisional_deadline, official_deadline)
        assert (data["previous_provisional"], data["provisional"], data["corrected"]) == (True, False, [])
    # sent stays sent, each once; the earlier deadline brings what it calls for by now (Wednesday 01:00):
    # the replied one was replied 12 hours late, the open one is past level 2 (24 hours after it)
    breaches = Counter(
        (m["value"]["data"]["petition_id"], m["value"]["data"]["level"])
        for m in messages
        if m["value"]["type"] == "sla.breached" and m["value"]["data"]["clock"] == "reply"
    )
    assert breaches == Counter([(open_pid, 1), (open_pid, 2), (replied_pid, 1)])
    moved = sum(_metric(http, sla, "petitions_sla_deadline_changes_total") for sla in slas)
    assert moved == 2
    assert all(_metric(http, sla, "petitions_sla_calendar_last_covered_year") == 2027 for sla in slas)


def _checked(clock: dict, *, provisional: bool) -> dict:
    assert clock.get("provisional") is provisional, clock
    return clock


def _stats(summary: dict, **want: int) -> dict:
    got = {
        "replied": summary["replied"],
        "replied_on_time": summary["replied_on_time"],
        "replied_provisional": summary["sla"]["replied_provisional"],
    }
    if "warned" in want:
        got["warned"] = summary["sla"]["warned"]
    assert got == want, got
    return summary


def _wait_for(topic: str, wanted: set[tuple[str, str]]) -> list[dict]:
    """Read the topic until an event of each (petition, type) wanted is there."""

    def seen(messages: list[dict]) -> set[tuple[str, str]]:
        return {(m["value"]["data"]["petition_id"], m["value"]["type"]) for m in messages if m["value"]}

    messages = read_topic(topic, lambda ms: seen(ms) >= wanted, timeout_s=30)
    assert seen(messages) >= wanted, wanted - seen(messages)
    return messages


def _metric(http: requests.Session, url: str, name: str) -> float:
    text = http.get(f"{url}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, name
    return values[0]
