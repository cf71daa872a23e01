"""The sla service end to end: intake, routing and sla as real processes, time moved by the sla's fake
clock file, one sla restart (with notices falling due while it is down) and then two sla instances at
once. Every warning and breach the rules call for must be on `petitions.sla.v1` exactly once, at the
phase it fell due, with the true deadline and overdue time; none may be there that the rules do not
call for. The staff API and the metrics are checked along the way.

Kinds of petition (two of each), and the notices they must get:
  met       contacted and replied at once ................................. none
  near_c    contacted only after its contact warning ........................ contact warning
  missed    never contacted nor replied ..................................... contact warning and
                                                                               breaches 1-3, reply
                                                                               warning and breaches 1-3
  late_r    contacted at once, never replied ................................ reply warning, breaches 1-3
  near_r    contacted at once, replied after its reply warning .............. reply warning
  withdrawn withdrawn at once ............................................... none
  paused    contacted, reply clock paused and never resumed ................. reply breaches 1-3 only, from
                                                                               a deadline moved by the 5-day
                                                                               cap (found late: no warning)
plus one petition published straight onto the intake topic with a submission in a year whose holiday
notice is not imported (none is, after the shipped files): its contact warning is emitted, and its
reply clock runs on the provisional calendar and says so.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

from petition_common.config import REPO_ROOT, Settings
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher
from petition_devtools.kafka_access import admin_settings
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.deadlines import reply_deadline
from petition_kernel.times import format_time, parse_time, utc_now
from tests.support import KAFKA, eventually, read_topic
from tests.unit.contract.test_contract_documents import OPENAPI, errors, validator

KINDS = ("met", "near_c", "missed", "late_r", "near_r", "withdrawn", "paused")
LEVELS = (1, 2, 3)
CALENDAR = WorkCalendar.load(REPO_ROOT / "config" / "calendar")


# Every service of this test runs on a clock shifted by whole days to a date well inside the years the
# working-day calendar covers, so the test does not depend on today's date (near the end of the last
# covered year, reply deadlines would fall into a year without a calendar). Whole days keep the
# time of day, which _avoid_midnight_in_beijing relies on.
SHIFT = timedelta(days=(date(2026, 6, 2) - utc_now().date()).days)


def _now() -> datetime:
    return utc_now() + SHIFT


class FakeNow:
    """The sla processes' clock: an instant in a file, rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.value = _now()

    def set(self, moment: datetime) -> datetime:
        """Move the sla's time to `moment` (to the millisecond, as events carry it); returns it."""
        text = format_time(moment)
        self.value = parse_time(text)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        return self.value


def test_warnings_and_breaches_exactly_once_across_a_restart_and_two_instances(fleet, county, tmp_path):
    started = time.monotonic()
    _avoid_midnight_in_beijing()
    now = FakeNow(tmp_path / "now")
    now.set(_now())
    shifted = tmp_path / "shifted-clock"
    shifted.write_text(f"offset:{SHIFT.total_seconds()}")
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    env = {
        "STAFF_TOKENS_FILE": str(write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
        "INTAKE_FAKE_CLOCK_FILE": str(shifted),
        "ROUTING_FAKE_CLOCK_FILE": str(shifted),
    }
    sla_env = {**env, "SLA_FAKE_CLOCK_FILE": str(now.path), "SLA_SCAN_INTERVAL_S": "0.3"}
    intake = fleet.start("intake", extra_env=env).url
    routing = fleet.start("routing", extra_env=env).url
    sla = fleet.start("sla", extra_env=sla_env).url
    fleet.wait_ready()
    http = requests.Session()
    auth = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    # a tiny county: the registry of two towns
    towns = ("T01", "T02")
    features = [f for f in county.to_geojson()["features"] if f["properties"]["town_id"] in towns]
    r = http.post(f"{routing}/v1/grids/import", json={"type": "FeatureCollection", "features": features}, headers=auth)
    assert r.status_code == 200, r.text

    # ---- phase 0: submit, and handle what is handled at once
    grids = {t: county.grids_in("town", t) for t in towns}
    petitions: dict[str, dict] = {}  # pid -> {kind, grid, town_id, code}
    for i, kind in enumerate(k for k in KINDS for _ in range(2)):
        town_id = towns[i % 2]
        grid = grids[town_id][i]
        body = {
            "channel": "hotline",
            "category": "roads",
            "content": f"路灯不亮，第{i}号",
            "location": {
                "town": county.towns_by_id[town_id].name,
                "village": county.villages_by_id[grid.village_id].name,
                "grid_id": grid.grid_id,
            },
            "citizen": {"name": "张三", "phone": f"1380013{i:04d}"},
        }
        r = http.post(f"{intake}/v1/petitions", json=body, timeout=30)
        assert r.status_code == 201, r.text
        petitions[r.json()["petition_id"]] = {
            "kind": kind,
            "grid": grid.grid_id,
            "town_id": town_id,
            "code": r.json()["tracking_code"],
        }
    of = lambda *kinds: [p for p, v in petitions.items() if v["kind"] in kinds]  # noqa: E731

    def staff(action: str, pid: str, body: dict | None = None) -> None:
        r = http.post(f"{routing}/v1/workorders/{pid}/{action}", json=body or {}, headers=auth, timeout=10)
        assert r.status_code == 200, (action, pid, r.text)

    reply_body = {"resolution": "resolved", "summary": "已修复"}
    _wait_routed(http, intake, petitions)
    for pid in of("withdrawn"):
        r = http.post(f"{intake}/v1/petitions/{pid}/withdraw", json={"tracking_code": petitions[pid]["code"]})
        assert r.status_code == 200, r.text
    for pid in of("met", "late_r", "near_r", "paused"):
        staff("contact", pid)
    for pid in of("met"):
        staff("reply", pid, reply_body)
    for pid in of("paused"):
        staff("pause", pid, {"reason": "third_party"})

    now.set(_now() + timedelta(seconds=5))  # the sla clock never runs behind the facts
    views = _wait_views(
        http,
        sla,
        auth,
        {
            **{p: {"contact": "met", "reply": "met"} for p in of("met")},
            **{p: {"contact": "met", "reply": "on_track"} for p in of("late_r", "near_r", "paused")},
            **{p: {"contact": "stopped", "reply": "stopped"} for p in of("withdrawn")},
            **{p: {"contact": "on_track", "reply": "on_track"} for p in of("near_c", "missed")},
        },
    )
    # a pause leaves the clock's state as it was: wait for the pause itself
    views |= _wait_paused(http, sla, auth, of("paused"))
    deadline = {(pid, c["clock"]): parse_time(c["deadline"]) for pid, v in views.items() for c in v["clocks"]}
    warning = {(pid, c["clock"]): parse_time(c["warning_at"]) for pid, v in views.items() for c in v["clocks"]}
    base_reply = {  # the reply deadline before pauses, by the domain's own rule
        pid: reply_deadline(parse_time(views[pid]["submitted_at"]), 5, CALENDAR) for pid in petitions
    }
    latest = lambda clock, which, kinds: max(which[(p, clock)] for p in of(*kinds))  # noqa: E731
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    expected: set[tuple[str, str]] = set()
    emitted_at_phase: dict[tuple[str, str], datetime] = {}

    def phase(moment: datetime, new: set[tuple[str, str]]) -> None:
        moment = now.set(moment)
        expected.update(new)
        for key in new:
            emitted_at_phase[key] = moment
        _wait_notices(f"{prefix}petitions.sla.v1", expected)

    keys = lambda pids, clock, kinds: {(p, f"{clock}.0:{k}") for p in pids for k in kinds}  # noqa: E731
    breaches = [f"breached:{n}" for n in LEVELS]

    # ---- phase 1: the contact warning point passes for the two kinds not contacted yet
    phase(
        latest("contact", warning, KINDS) + timedelta(minutes=1), keys(of("near_c", "missed"), "contact", ["warning:1"])
    )
    for pid in of("near_c"):
        staff("contact", pid)
        staff("reply", pid, reply_body)
    _wait_views(http, sla, auth, {p: {"contact": "met", "reply": "met"} for p in of("near_c")})

    # ---- phase 2: the contact deadline passes
    phase(latest("contact", deadline, KINDS) + timedelta(minutes=1), keys(of("missed"), "contact", ["breached:1"]))

    # ---- phase 3: sla is down while levels 2 and 3 fall due; after the restart two instances run
    assert fleet.stop("sla") == 0
    late = latest("contact", deadline, KINDS) + timedelta(hours=72, minutes=1)
    now.set(late)
    sla = fleet.start("sla", extra_env=sla_env).url
    sla2 = fleet.start("sla", instance="sla-2", extra_env=sla_env).url
    fleet.wait_ready(["sla", "sla-2"])
    restart_phase_start = len(expected)
    phase(late, keys(of("missed"), "contact", ["breached:2", "breached:3"]))

    # ---- phase 4: the reply warning point passes (the paused ones are not there yet)
    phase(
        latest("reply", warning, ("missed", "late_r", "near_r")) + timedelta(minutes=1),
        keys(of("missed", "late_r", "near_r"), "reply", ["warning:1"]),
    )
    for pid in of("near_r"):
        staff("reply", pid, reply_body)
    _wait_views(http, sla2, auth, {p: {"contact": "met", "reply": "met"} for p in of("near_r")})

    # ---- phase 5: the reply deadline passes
    reply_due = max(base_reply.values())
    phase(reply_due + timedelta(minutes=1), keys(of("missed", "late_r"), "reply", ["breached:1"]))
    _check_overdue_api(http, sla, county, petitions, of, auth)
    _check_petition_access(http, sla2, county, petitions, of("missed")[0])

    # ---- phase 6: levels 2 and 3 of the reply clock; the paused ones' deadline moved by the whole cap
    phase(reply_due + timedelta(hours=72, minutes=1), keys(of("missed", "late_r"), "reply", breaches[1:]))
    for pid in of("paused"):
        view = http.get(f"{sla}/v1/sla/petitions/{pid}", headers=auth).json()
        reply = view["clocks"][1]
        assert parse_time(reply["deadline"]) == base_reply[pid] + timedelta(days=5), view
        assert reply["paused_seconds"] == 5 * 86400 and reply["state"] == "on_track"

    # ---- phase 7: a petition in a year without a notice; the paused ones' breaches found late
    year = min(CALENDAR.provisional_years)
    gap_pid = f"ZZ{year}0301000001"
    gap_submitted = datetime(year, 3, 1, 2, 0, tzinfo=UTC)
    gap_grid = grids["T01"][0]
    _publish_submission(prefix, gap_pid, gap_submitted, county, gap_grid)
    eventually(lambda: _status(http, sla, auth, gap_pid, 200), timeout_s=30)
    phase(
        gap_submitted + timedelta(hours=5),
        keys([gap_pid], "contact", ["warning:1"]) | keys(of("paused"), "reply", breaches),
    )
    view = http.get(f"{sla}/v1/sla/petitions/{gap_pid}", headers=auth).json()
    assert errors(validator(OPENAPI / "sla.yaml", "/components/schemas/PetitionSla"), view) == []
    assert [(c["state"], c["provisional"]) for c in view["clocks"]] == [("warned", False), ("on_track", True)], view

    # ---- the end: both scanners complete a few more scans (a duplicate would be out by then), then
    # everything exactly once
    _wait_scans(http, (sla, sla2), more=3)
    messages = read_topic(f"{prefix}petitions.sla.v1", lambda ms: False, timeout_s=4)
    _check_messages(messages, expected, emitted_at_phase, deadline, base_reply, petitions, gap_pid, gap_grid)
    emitted_since_restart = len(expected) - restart_phase_start
    total = sum(_metric(http, url, "petitions_sla_notices_total") for url in (sla, sla2))
    assert total == emitted_since_restart
    assert _metric(http, sla, "petitions_sla_calendar_provisional_open_clocks") == 1
    # running reply clocks past their deadline: the missed, late_r and paused ones
    assert _metric(http, sla, "petitions_sla_open_clocks", 'clock="reply",state="breached"') == 6
    assert _metric(http, sla, "petitions_sla_open_clocks", 'clock="contact",state="warned"') == 1
    assert _metric(http, sla, "petitions_sla_oldest_open_clock_age_seconds") > 0
    print(f"\nsla e2e: {len(expected)} notices exactly once in {time.monotonic() - started:.1f}s")


# ------------------------------------------------------------------------------------------ helpers


def _avoid_midnight_in_beijing() -> None:
    """The reply deadline counts from the submission's Beijing date; keep all submissions on one date."""

    def clear_of_midnight() -> None:
        utc = utc_now()
        to_midnight = (utc.replace(hour=16, minute=0, second=0, microsecond=0) - utc).total_seconds()
        assert not 0 < to_midnight < 20, "a Beijing midnight is less than 20 s away"

    eventually(clear_of_midnight, timeout_s=25, interval_s=0.5)


def _wait_scans(http: requests.Session, urls: tuple[str, ...], more: int) -> None:
    """Wait until every SLA instance has completed `more` scans since now."""
    done = {url: _metric(http, url, "petitions_sla_scan_seconds_count") for url in urls}

    def scanned() -> None:
        for url in urls:
            assert _metric(http, url, "petitions_sla_scan_seconds_count") >= done[url] + more, url

    eventually(scanned, timeout_s=30)


def _wait_routed(http: requests.Session, intake: str, petitions: dict[str, dict]) -> None:
    def check() -> None:
        for pid, v in petitions.items():
            got = http.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": v["code"]}).json()
            assert got["status"] == "assigned", (pid, got["status"])

    eventually(check, timeout_s=30)


def _status(http: requests.Session, sla: str, auth: dict, pid: str, status: int) -> None:
    r = http.get(f"{sla}/v1/sla/petitions/{pid}", headers=auth)
    assert r.status_code == status, r.text


def _wait_views(http: requests.Session, sla: str, auth: dict, want: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Poll GET /v1/sla/petitions/{id} until each petition's clocks are in the wanted states."""
    views: dict[str, dict] = {}

    def check() -> None:
        for pid, states in want.items():
            r = http.get(f"{sla}/v1/sla/petitions/{pid}", headers=auth)
            assert r.status_code == 200, (pid, r.text)
            view = r.json()
            got = {c["clock"]: c["state"] for c in view["clocks"]}
            assert got == states, (pid, got, states)
            views[pid] = view

    eventually(check, timeout_s=30, interval_s=0.3)
    return views


def _wait_paused(http: requests.Session, sla: str, auth: dict, pids: list[str]) -> dict[str, dict]:
    views: dict[str, dict] = {}

    def check() -> None:
        for pid in pids:
            view = http.get(f"{sla}/v1/sla/petitions/{pid}", headers=auth).json()
            assert view["paused"] and view["pause_reason"] == "third_party", view
            views[pid] = view

    eventually(check, timeout_s=30, interval_s=0.3)
    return views


def _notice_key(event: dict) -> tuple[str, str]:
    data = event["data"]
    return data["petition_id"], f"{data['clock']}.{data['generation']}:{event['type'].split('.')[1]}:{data['level']}"


def _wait_notices(topic: str, expected: set[tuple[str, str]]) -> None:
    """Read the topic until every expected notice is there; fail at once on one that is not expected."""
    unexpected: set[tuple[str, str]] = set()

    def done(messages: list[dict]) -> bool:
        seen = {_notice_key(m["value"]) for m in messages}
        unexpected.update(seen - expected)
        return bool(unexpected) or seen >= expected

    messages = read_topic(topic, done, timeout_s=30)
    seen = {_notice_key(m["value"]) for m in messages}
    assert not unexpected, f"notices the rules do not call for: {sorted(unexpected)}"
    assert seen == expected, f"missing notices: {sorted(expected - seen)}"


def _check_messages(messages, expected, emitted_at_phase, deadline, base_reply, petitions, gap_pid, gap_grid):
    validator = ContractValidator(REPO_ROOT / "contract")
    by_key: dict[tuple[str, str], set[str]] = {}
    for m in messages:
        event = Event.from_dict(m["value"], key=m["key"])
        validator.validate(event)
        assert event.source == "petitions/sla" and m["key"] == event.subject == event.data["petition_id"]
        by_key.setdefault(_notice_key(m["value"]), set()).add(event.id)
        raised = parse_time(event.time)
        key = _notice_key(m["value"])
        assert raised == emitted_at_phase[key], (key, event.time)  # raised at the phase it fell due
        data = event.data
        pid, clock = key[0], data["clock"]
        if pid == gap_pid:
            assert data["grid_id"] == gap_grid.grid_id
            continue
        assert data["grid_id"] == petitions[pid]["grid"]
        true_deadline = deadline[(pid, clock)]
        if petitions[pid]["kind"] == "paused":
            true_deadline = base_reply[pid] + timedelta(days=5)
        assert parse_time(data["deadline"]) == true_deadline, (key, data)
        assert parse_time(data["due_at"]) <= raised
        if event.type == "sla.breached":
            # the true overdue time, also when found late (after the restart, or phase 7)
            assert data["overdue_seconds"] == int((raised - true_deadline).total_seconds()), (key, data)
        else:
            assert data["remaining_seconds"] == int((true_deadline - raised).total_seconds()), (key, data)
    assert set(by_key) == expected, (sorted(set(by_key) - expected), sorted(expected - set(by_key)))
    twice = {k: ids for k, ids in by_key.items() if len(ids) != 1}
    assert not twice, f"notices emitted more than once: {twice}"
    per_petition = Counter(pid for pid, _ in expected)
    kinds = {pid: v["kind"] for pid, v in petitions.items()}
    assert all(kinds.get(p) not in ("met", "withdrawn") for p in per_petition)
    assert {per_petition[p] for p in petitions if kinds[p] == "missed"} == {8}
    assert {per_petition[p] for p in petitions if kinds[p] == "late_r"} == {4}


def _check_overdue_api(http, sla, county, petitions, of, auth) -> None:
    def overdue(headers=auth, **params):
        r = http.get(f"{sla}/v1/sla/overdue", params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert errors(validator(OPENAPI / "sla.yaml", "/components/schemas/OverduePage"), r.json()) == []
        return r.json()

    every = overdue()
    got = {(i["petition_id"], i["clock"]) for i in every["items"]}
    assert got == {(p, "contact") for p in of("missed")} | {(p, "reply") for p in of("missed", "late_r")}
    assert every["next_cursor"] is None
    assert {(i["petition_id"], i["level"]) for i in overdue(level=3)["items"]} == {(p, 3) for p in of("missed")}
    assert {i["clock"] for i in overdue(clock="reply")["items"]} == {"reply"}
    assert all(i["open"] for i in every["items"]) and overdue(open="false")["items"] == []
    # most overdue first, page by page
    deadlines = [i["deadline"] for i in every["items"]]
    assert deadlines == sorted(deadlines, key=parse_time)
    paged, cursor = [], None
    while True:
        page = overdue(limit=2, **({"cursor": cursor} if cursor else {}))
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == every["items"]
    # a town supervisor sees the town's, by town name or id; a grid leader the grid's
    t01 = {p for p, v in petitions.items() if v["town_id"] == "T01"}
    supervisor = next(s for s in county.staff if s.role == "town_supervisor" and s.town_id == "T01")
    mine = overdue({"Authorization": f"Bearer {token_for(supervisor.staff_id)}"})["items"]
    assert {i["petition_id"] for i in mine} == {p for p, _ in got if p in t01}
    by_name = overdue(town=county.towns_by_id["T01"].name)["items"]
    assert by_name == overdue(town="T01")["items"] == [i for i in every["items"] if i["petition_id"] in t01]
    missed = of("missed")[0]
    assert {i["petition_id"] for i in overdue(grid_id=petitions[missed]["grid"])["items"]} == {missed}
    # errors
    for params in ({"clock": "answer"}, {"level": "4"}, {"limit": "0"}, {"cursor": "zz"}, {"colour": "red"}):
        r = http.get(f"{sla}/v1/sla/overdue", params=params, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter", (params, r.text)
    assert http.get(f"{sla}/v1/sla/overdue").status_code == 401


def _check_petition_access(http, sla, county, petitions, pid) -> None:
    grid = county.grids_by_id[petitions[pid]["grid"]]
    other_grid = next(g for g in county.grids if g.village_id != grid.village_id and g.leader_id != grid.leader_id)
    town = petitions[pid]["town_id"]
    supervisors = {s.town_id: s for s in county.staff if s.role == "town_supervisor"}
    other_town = next(t for t in supervisors if t != town)

    def get(token: str | None, petition: str = pid) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http.get(f"{sla}/v1/sla/petitions/{petition}", headers=headers).status_code

    assert get(None) == 401 and get("not-a-token") == 401
    assert get(token_for(grid.leader_id)) == 200
    assert get(token_for(grid.cadre_id)) == 200
    assert get(token_for(supervisors[town].staff_id)) == 200
    assert get("tok-auditor") == 200
    assert get(token_for(other_grid.leader_id)) == 404
    assert get(token_for(supervisors[other_town].staff_id)) == 404
    assert get("tok-auditor", "JZ20000101000001") == 404
    view = http.get(f"{sla}/v1/sla/petitions/{pid}", headers={"Authorization": "Bearer tok-auditor"}).json()
    assert errors(validator(OPENAPI / "sla.yaml", "/components/schemas/PetitionSla"), view) == []
    assert [(c["clock"], c["state"], c["level"]) for c in view["clocks"]] == [
        ("contact", "breached", 3),
        ("reply", "breached", 1),
    ]
    assert [n["key"] for n in view["notices"]] == [
        "contact.0:warning:1",
        "contact.0:breached:1",
        "contact.0:breached:2",
        "contact.0:breached:3",
        "reply.0:warning:1",
        "reply.0:breached:1",
    ]


def _publish_submission(prefix: str, pid: str, at: datetime, county, grid) -> None:
    settings = Settings(service="e2e", kafka_bootstrap=KAFKA, topic_prefix=prefix, **admin_settings())
    publisher = EventPublisher(settings)
    data = {
        "petition_id": pid,
        "channel": "web",
        "category": "roads",
        "content": "路面塌陷",
        "location": {
            "town": county.towns_by_id[grid.town_id].name,
            "village": county.villages_by_id[grid.village_id].name,
            "grid_id": grid.grid_id,
        },
        "citizen": {"name_masked": "李*", "phone_masked": "139****0000"},
        "submitted_at": format_time(at),
    }
    try:
        publisher.publish([Event(type="petition.submitted", source="petitions/intake", subject=pid, data=data)])
    finally:
        publisher.close()


def _metric(http: requests.Session, url: str, name: str, labels: str = "") -> float:
    total = 0.0
    for line in http.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and all(part in line for part in labels.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total
