"""Issue 3's end-to-end check: the generated county imported, a few hundred generated petitions submitted
over HTTP, every one driven to its end through the staff and citizen endpoints (transfer, reopen,
withdrawal, pause, staff close, timeout close), the statuses citizens see checked at each step, and
every event on Kafka validated against the contract's JSON Schemas."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from countysim import generate_petitions
from petition_common.config import REPO_ROOT
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from tests.support import eventually, read_topic

N_PETITIONS = 240
# what happens to petition i: SCENARIOS[i % len(SCENARIOS)]
SCENARIOS = ("satisfied", "transfer_twice_dissatisfied", "withdraw", "pause_staff_close", "timeout", "reopen_then_ok")
FINAL_STATUS = {
    "satisfied": "closed",
    "transfer_twice_dissatisfied": "closed",
    "withdraw": "withdrawn",
    "pause_staff_close": "closed",
    "timeout": "closed",
    "reopen_then_ok": "closed",
}
CLOSED_BY = {
    "satisfied": "feedback",
    "transfer_twice_dissatisfied": "feedback",
    "pause_staff_close": "staff",
    "timeout": "timeout",
    "reopen_then_ok": "feedback",
}


@pytest.fixture
def intake_and_routing(fleet, county, tmp_path):
    """Intake and routing (routing on a movable clock): their URLs, the dispatcher's auth header, the clock file."""
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    clock = tmp_path / "routing-clock"
    clock.write_text("offset:0")
    env = {
        "STAFF_TOKENS_FILE": str(tokens),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
        # the timeout scenario: routing's clock is moved 8 days on at the end, past the 7-day
        # feedback window, when every other petition has already ended
        "ROUTING_FAKE_CLOCK_FILE": str(clock),
        "ROUTING_TIMEOUT_SCAN_S": "1",
    }
    intake = fleet.start("intake", extra_env=env)
    routing = fleet.start("routing", extra_env=env)
    fleet.wait_ready()
    return intake.url, routing.url, {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}, clock


@pytest.mark.timeout(600)
def test_every_petition_from_submission_to_its_end(intake_and_routing, county, fleet):
    intake, routing, dispatcher, routing_clock = intake_and_routing
    http = requests.Session()
    resp = http.post(f"{routing}/v1/grids/import", json=county.to_geojson(), headers=dispatcher, timeout=60)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["grids"], resp.json()["villages"], resp.json()["towns"]) == (2635, 119, 12)

    generated = generate_petitions(county, N_PETITIONS, seed=11, start=datetime(2024, 7, 1, tzinfo=UTC), days=20)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda g: _submit(intake, g), generated))
    petitions = [(g, r["petition_id"], r["tracking_code"]) for g, r in zip(generated, receipts, strict=True)]
    assert len({pid for _, pid, _ in petitions}) == N_PETITIONS

    # every petition is routed; the route and grid are the ones the generator intended
    _wait_status(intake, petitions, lambda i: "assigned")

    def check_route(p) -> None:
        g, pid, _ = p
        order = _http().get(f"{routing}/v1/workorders/{pid}", headers=dispatcher, timeout=10).json()
        assert order["route"] == g.truth.route, (pid, order["route_reason"])
        if g.truth.route in ("grid_id", "point"):
            assert order["assignment"]["grid_id"] == g.truth.grid_id, (pid, order["route_reason"])
        elif g.truth.route == "village":  # the village's grid named in the address, else its default grid
            assert order["assignment"]["village_id"] == g.truth.grid_id[:6], (pid, order["route_reason"])

    _each(check_route, petitions)

    by_scenario = defaultdict(list)
    for i, p in enumerate(petitions):
        by_scenario[SCENARIOS[i % len(SCENARIOS)]].append(p)

    def staff(action: str, pid: str, body: dict | None = None, expect: int = 200) -> dict:
        r = _http().post(f"{routing}/v1/workorders/{pid}/{action}", json=body or {}, headers=dispatcher, timeout=10)
        assert r.status_code == expect, (action, pid, r.text)
        return r.json()

    def citizen(action: str, pid: str, code: str, body: dict | None = None, expect: int = 200) -> dict:
        r = _http().post(
            f"{intake}/v1/petitions/{pid}/{action}", json={"tracking_code": code, **(body or {})}, timeout=10
        )
        assert r.status_code == expect, (action, pid, r.text)
        return r.json()

    def withdraw(p) -> None:  # before anyone contacts them; only once
        _, pid, code = p
        assert citizen("withdraw", pid, code)["status"] == "withdrawn"
        citizen("withdraw", pid, code, expect=409)

    def answer_and_forget(p) -> None:  # answered first and then never rated: the scanner closes them later
        staff("contact", p[1])
        staff("reply", p[1], {"resolution": "explained", "summary": "已电话答复"})

    _each(withdraw, by_scenario["withdraw"])
    _each(answer_and_forget, by_scenario["timeout"])

    working = [p for s, ps in by_scenario.items() if s not in ("withdraw", "timeout") for p in ps]
    _each(lambda p: staff("contact", p[1]), working)
    _wait_status(intake, working, lambda i: "in_progress")

    second_grid = county.grids[5].grid_id

    def transfer_twice(p) -> None:
        order = staff("transfer", p[1], {"grid_id": second_grid, "reason": "地址属于相邻网格"})
        assert order["assignment"]["grid_id"] == second_grid
        department = "town_mediation_office"
        if order["assignment"]["department"] == department:
            department = "county_housing_bureau"
        staff("transfer", p[1], {"department": department, "reason": "需其他部门处理"})

    def pause_and_resume(p) -> None:
        staff("pause", p[1], {"reason": "third_party"})
        staff("pause", p[1], {"reason": "third_party"}, expect=409)
        staff("resume", p[1])

    def reply(p) -> None:
        _, pid, code = p
        staff("close", pid, expect=409)  # not before a reply
        citizen("feedback", pid, code, {"satisfaction": "satisfied"}, expect=409)  # not before a reply
        staff("reply", pid, {"resolution": "resolved", "summary": "已派人疏通处理完毕"})

    _each(transfer_twice, by_scenario["transfer_twice_dissatisfied"])
    _each(pause_and_resume, by_scenario["pause_staff_close"])
    _each(reply, working)
    _wait_status(intake, working, lambda i: "replied")

    def rated(name: str, rating: str) -> None:
        _each(lambda p: citizen("feedback", p[1], p[2], {"satisfaction": rating}), by_scenario[name])

    rated("satisfied", "basically_satisfied")
    rated("transfer_twice_dissatisfied", "dissatisfied")
    rated("reopen_then_ok", "dissatisfied")
    _each(lambda p: staff("close", p[1]), by_scenario["pause_staff_close"])
    reopened = by_scenario["transfer_twice_dissatisfied"] + by_scenario["reopen_then_ok"]
    _wait_status(intake, reopened, lambda i: "reopened")

    def second_handling(p) -> None:
        _, pid, code = p
        citizen("feedback", pid, code, {"satisfaction": "satisfied"}, expect=409)  # no reply to rate yet
        staff("contact", pid)
        staff("reply", pid, {"resolution": "explained", "summary": "二次办理：已协调解决"})

    _each(second_handling, reopened)
    _wait_status(intake, reopened, lambda i: "replied")
    rated("transfer_twice_dissatisfied", "dissatisfied")  # second dissatisfied: closed as dissatisfied
    rated("reopen_then_ok", "satisfied")

    # the end: every petition closed or withdrawn as its scenario says; the timeout ones close when
    # routing's clock passes the feedback window
    scenario_of = {pid: s for s, ps in by_scenario.items() for _, pid, _ in ps}
    not_timeout = [p for p in petitions if scenario_of[p[1]] != "timeout"]
    _wait_status(intake, not_timeout, lambda pid: FINAL_STATUS[scenario_of[pid]], by_pid=True, timeout_s=120)
    _wait_status(intake, by_scenario["timeout"], lambda pid: "replied")
    routing_clock.write_text(f"offset:{8 * 24 * 3600}")
    _wait_status(intake, petitions, lambda pid: FINAL_STATUS[scenario_of[pid]], by_pid=True, timeout_s=120)

    def check_end(p) -> None:
        _, pid, code = p
        view = _http().get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10).json()
        scenario = scenario_of[pid]
        statuses = [entry["status"] for entry in view["timeline"]]
        assert statuses[0] == "submitted" and statuses[-1] == FINAL_STATUS[scenario], (scenario, statuses)
        if scenario in ("transfer_twice_dissatisfied", "reopen_then_ok"):
            assert "reopened" in statuses
        order = _http().get(f"{routing}/v1/workorders/{pid}", headers=dispatcher, timeout=10).json()
        assert order["status"] == FINAL_STATUS[scenario]
        assert order["closed_by"] == CLOSED_BY.get(scenario)

    _each(check_end, petitions)
    _check_events(fleet.env["KAFKA_TOPIC_PREFIX"], petitions, scenario_of)


_local = threading.local()


def _http() -> requests.Session:
    """One session per thread: requests' Session is not meant to be shared between threads."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _each(fn, items) -> None:
    """Apply `fn` to every item on 8 threads, as many staff and citizens would; re-raise the first failure."""
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def _submit(intake: str, generated) -> dict:
    r = requests.post(
        f"{intake}/v1/petitions",
        json=generated.body,
        timeout=30,
        headers={"Idempotency-Key": generated.idempotency_key},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _wait_status(intake, petitions, expected, by_pid: bool = False, timeout_s: float = 60) -> None:
    def status(p) -> tuple[str, str, str]:
        _, pid, code = p
        got = _http().get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10).json()
        return pid, got["status"], expected(pid) if by_pid else expected(None)

    def check() -> None:
        # gently: polling hard would compete with the consumers this waits for (2 cores)
        with ThreadPoolExecutor(2) as pool:
            wrong = [r for r in pool.map(status, petitions) if r[1] != r[2]]
        assert not wrong, f"{len(wrong)} petitions not yet as expected, e.g. {wrong[:3]}"

    eventually(check, timeout_s=timeout_s, interval_s=2)


def _check_events(prefix: str, petitions, scenario_of) -> None:
    validator = ContractValidator(REPO_ROOT / "contract")
    pids = {pid for _, pid, _ in petitions}
    events: dict[str, list[str]] = defaultdict(list)
    for topic in ("petitions.intake.v1", "petitions.routing.v1"):
        messages = read_topic(f"{prefix}{topic}", lambda ms: False, timeout_s=8)
        seen_ids = set()
        for m in messages:
            event = Event.from_dict(m["value"], key=m["key"])
            validator.validate(event)  # raises SchemaViolation with the failing fields
            assert m["key"] == event.data["petition_id"] == event.subject
            if event.id in seen_ids:
                continue  # at-least-once: a republished event carries the same id
            seen_ids.add(event.id)
            events[event.subject].append(event.type)
    assert set(events) == pids
    for pid, types in events.items():
        scenario = scenario_of[pid]
        assert types.count("petition.submitted") == 1 and types.count("petition.assigned") == 1
        if scenario == "withdraw":
            assert "petition.withdrawn" in types and "petition.closed" not in types
        else:
            assert types.count("petition.closed") == 1, (scenario, types)
        if scenario == "transfer_twice_dissatisfied":
            assert types.count("petition.transferred") == 2 and types.count("petition.reopened") == 1
        if scenario == "pause_staff_close":
            assert types.count("petition.sla_paused") == 1 and types.count("petition.sla_resumed") == 1
