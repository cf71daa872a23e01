"""sla's own domain (services/sla/domain): the open_clocks projection, the gauges, the overdue list and
its paging, who may see what, and the petition view."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import orjson
import pytest

from petition_common.auth import Staff
from petition_kernel.calendar import WorkCalendar, YearSchedule
from petition_kernel.sla.clock import clock_states, mark_emitted
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.times import format_time
from services.sla.domain import overdue_list, petition_clocks
from services.sla.domain.clocks import current_pause
from services.sla.domain.following import met_transitions
from services.sla.domain.open_clocks import needs_attention, projection_doc, summarize

from .helpers import cst
from .test_clock import PID, build, closed, contacted, ev, paused, replied, resumed, routed, submitted, withdrawn

KEEP = timedelta(days=7)
COUNTY = Staff("D1", "county_dispatcher")
# submitted Mon 2025-03-10 09:00 (Beijing): contact warning 13:48, deadline 15:00; reply deadline 3/18 00:00
SUB = submitted(at="2025-03-10 09:00")
ROUTED = routed("assigned", "2025-03-10 09:05", "T01V01G001", "城关镇", "e-asg")


def doc_at(events, now: str, policy: SlaPolicy, calendar: WorkCalendar, seq: int = 3):
    return projection_doc(build(events), seq, cst(now), policy, calendar, KEEP)


# -- the projection -------------------------------------------------------------------------------


def test_nothing_to_watch_before_the_submission_is_known(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    assert doc_at([ROUTED], "2025-03-10 10:00", policy, calendar) is None


def test_a_new_petition_is_due_at_its_contact_warning(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    doc = doc_at([SUB, ROUTED], "2025-03-10 09:10", policy, calendar)
    assert doc is not None
    assert (doc["_id"], doc["seq"], doc["grid_id"], doc["town"]) == (PID, 3, "T01V01G001", "城关镇")
    assert doc["next_due_at"] == doc["recheck_at"] == format_time(cst("2025-03-10 13:48"))
    assert [(c["clock"], c["generation"], c["outcome"]) for c in doc["clocks"]] == [
        ("contact", 0, None),
        ("reply", 0, None),
    ]
    contact = doc["clocks"][0]
    assert contact["deadline"] == format_time(cst("2025-03-10 15:00"))
    assert [x["level"] for x in contact["levels"]] == [1, 2, 3]
    assert contact["levels"][1]["due_at"] == format_time(cst("2025-03-11 15:00"))
    assert doc["uncovered_year"] is None


def test_a_projection_derives_the_clocks_once(policy: SlaPolicy, calendar: WorkCalendar, monkeypatch) -> None:
    """Issue #23: deriving a record's clocks (calendar arithmetic) was a quarter of sla's CPU in the year
    replay, and the projection derived them twice, once more for the next due time."""
    import petition_kernel.sla.clock as kernel_clock
    import services.sla.domain.clocks as sla_clocks

    derived = []
    real = kernel_clock.clock_states

    def counted(*args, **kwargs):
        derived.append(args[0].petition_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel_clock, "clock_states", counted)
    monkeypatch.setattr(sla_clocks, "clock_states", counted)
    doc = doc_at([SUB, ROUTED, contacted("2025-03-10 10:00", "c")], "2025-03-10 10:10", policy, calendar)
    assert doc is not None and doc["next_due_at"] == format_time(cst("2025-03-16 11:24")) and len(derived) == 1


def test_a_petition_handled_in_time_leaves_the_projection(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    events = [SUB, ROUTED, contacted("2025-03-10 10:00", "c"), replied("2025-03-11 10:00", "r")]
    doc = doc_at(events, "2025-03-11 11:00", policy, calendar)
    assert doc is None  # both clocks met, nothing due, nothing breached
    assert doc_at([SUB, withdrawn("2025-03-10 09:30", "w")], "2025-03-10 10:00", policy, calendar) is None


def test_a_late_clock_stays_listed_for_the_keep_window(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    events = [SUB, ROUTED, contacted("2025-03-10 16:00", "c"), replied("2025-03-11 10:00", "r")]
    doc = doc_at(events, "2025-03-11 11:00", policy, calendar)
    assert doc is not None
    assert [(c["clock"], c["outcome"]) for c in doc["clocks"]] == [("contact", "met")]
    # the level-1 breach (due 15:00, while the clock still ran) is not emitted yet: due now
    assert doc["next_due_at"] == doc["recheck_at"] == format_time(cst("2025-03-10 15:00"))
    record = mark_emitted(build(events), ["contact.0:breached:1"])
    doc = projection_doc(record, 4, cst("2025-03-11 11:00"), policy, calendar, KEEP)
    assert doc is not None
    # no notice can fall due any more (met before level 2); look again when it leaves the list
    assert doc["next_due_at"] is None
    assert doc["recheck_at"] == format_time(cst("2025-03-10 16:00") + KEEP)
    assert projection_doc(record, 4, cst("2025-03-17 16:00"), policy, calendar, KEEP) is None


def test_a_running_pause_counts_to_the_cap_in_the_projection(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    events = [SUB, ROUTED, contacted("2025-03-10 10:00", "c"), paused("2025-03-11 09:00", "p")]
    doc = doc_at(events, "2025-03-11 10:00", policy, calendar)
    assert doc is not None
    reply = doc["clocks"][-1]
    assert reply["paused"] is True
    assert reply["deadline"] == format_time(cst("2025-03-18 00:00") + policy.pause_cap)
    resumed_doc = doc_at([*events, resumed("2025-03-12 09:00", "r")], "2025-03-12 10:00", policy, calendar)
    assert resumed_doc is not None
    assert resumed_doc["clocks"][-1]["deadline"] == format_time(cst("2025-03-19 00:00"))
    assert resumed_doc["clocks"][-1]["paused"] is False


def test_a_calendar_gap_is_recorded_and_rechecked_once_covered(policy: SlaPolicy) -> None:
    only_2025 = WorkCalendar.from_schedules([YearSchedule(2025, frozenset({date(2025, 1, 1)}), frozenset(), "t")])
    events = [submitted(at="2025-12-29 09:00")]
    doc = doc_at(events, "2025-12-29 09:30", policy, only_2025)
    assert doc is not None
    assert doc["uncovered_year"] == 2026
    assert [c["clock"] for c in doc["clocks"]] == ["contact"]
    assert not needs_attention(doc, cst("2025-12-29 09:30"), only_2025)
    assert needs_attention(doc, cst("2025-12-29 13:48"), only_2025)  # the contact warning
    with_2026 = WorkCalendar.from_library()
    assert needs_attention(doc, cst("2025-12-29 09:30"), with_2026)
    # even after the contact clock ended, the petition stays until the reply clock can be computed
    later = doc_at([*events, contacted("2025-12-29 10:00", "c")], "2025-12-29 11:00", policy, only_2025)
    assert later is not None and later["clocks"] == [] and later["uncovered_year"] == 2026


# -- gauges ---------------------------------------------------------------------------------------


def test_summary_counts_running_clocks_by_state(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    fresh = doc_at([SUB, ROUTED], "2025-03-10 09:10", policy, calendar)
    contacted_late = doc_at([SUB, ROUTED, contacted("2025-03-10 16:00", "c")], "2025-03-10 16:10", policy, calendar)
    docs = [fresh, contacted_late]
    summary = summarize(docs, cst("2025-03-10 14:00"))
    assert summary.counts == {("contact", "warned"): 2, ("reply", "on_track"): 2}
    later = summarize(docs, cst("2025-03-10 17:00"))
    # the late contact ended at 16:00: only the fresh petition's contact clock is still running
    assert later.counts == {("contact", "breached"): 1, ("reply", "on_track"): 2}
    assert later.oldest_started_at == cst("2025-03-10 09:00")
    assert summarize([], cst("2025-03-10 17:00")).oldest_started_at is None


# -- the overdue list -----------------------------------------------------------------------------


def _petition(pid: str, grid: str, town: str, contact_at: str | None):
    events = [
        ev("petition.submitted", f"{pid}-s", **{**SUB[1], "petition_id": pid}),
        ev("petition.assigned", f"{pid}-a", **{**ROUTED[1], "petition_id": pid, "grid_id": grid, "town": town}),
    ]
    if contact_at:
        events.append(ev("petition.contacted", f"{pid}-c", **{**contacted(contact_at, "x")[1], "petition_id": pid}))
    return events


@pytest.fixture
def overdue_docs(policy: SlaPolicy, calendar: WorkCalendar) -> list[dict]:
    lives = [
        _petition("JZ20250310000001", "T01V01G001", "城关镇", None),  # contact still open
        _petition("JZ20250310000002", "T01V02G003", "城关镇", "2025-03-10 18:00"),  # contacted 3 h late
        _petition("JZ20250310000003", "T02V01G001", "河口镇", "2025-03-10 10:00"),  # contacted in time
    ]
    docs = []
    for events in lives:
        doc = projection_doc(build(events), 3, cst("2025-03-12 09:00"), policy, calendar, KEEP)
        assert doc is not None
        docs.append(doc)
    return docs


def _ids(items: list[dict]) -> list[tuple[str, str]]:
    return [(i["petition_id"][-1], i["clock"]) for i in items]


def test_overdue_lists_open_and_recently_late_clocks(overdue_docs: list[dict]) -> None:
    now = cst("2025-03-12 09:00")
    items = overdue_list.overdue_items(overdue_docs, now, COUNTY, overdue_list.OverdueFilter())
    assert _ids(items) == [("1", "contact"), ("2", "contact")]
    first, second = items
    assert (first["open"], first["level"], first["overdue_seconds"]) == (True, 2, 42 * 3600)
    assert (second["open"], second["level"], second["overdue_seconds"]) == (False, 1, 3 * 3600)
    assert (second["outcome"], second["ended_at"]) == ("met", format_time(cst("2025-03-10 18:00")))
    # and the reply clocks fall overdue at 3/18 00:00 (5 working days after Monday)
    later = overdue_list.overdue_items(
        overdue_docs, cst("2025-03-18 00:00"), COUNTY, overdue_list.OverdueFilter(clock="reply")
    )
    assert _ids(later) == [("1", "reply"), ("2", "reply"), ("3", "reply")]


def test_overdue_filters(overdue_docs: list[dict]) -> None:
    now = cst("2025-03-12 09:00")

    def ids(**kw) -> list[tuple[str, str]]:
        return _ids(overdue_list.overdue_items(overdue_docs, now, COUNTY, overdue_list.OverdueFilter(**kw)))

    assert ids(level=2) == [("1", "contact")]
    assert ids(open=False) == [("2", "contact")]
    assert ids(open=True) == [("1", "contact")]
    assert ids(grid_id="T01V02G003") == [("2", "contact")]
    assert ids(town="城关镇") == ids(town="T01") == [("1", "contact"), ("2", "contact")]
    assert ids(town="河口镇") == []
    assert ids(clock="reply") == []


def test_overdue_shows_only_what_the_token_covers(overdue_docs: list[dict]) -> None:
    now = cst("2025-03-12 09:00")
    leader = Staff("S1", "grid_leader", town_id="T01", village_id="T01V01", grid_ids=frozenset({"T01V01G001"}))
    town = Staff("S2", "town_supervisor", town_id="T01")
    other_town = Staff("S3", "town_supervisor", town_id="T02")
    every = overdue_list.OverdueFilter()
    assert _ids(overdue_list.overdue_items(overdue_docs, now, leader, every)) == [("1", "contact")]
    assert len(overdue_list.overdue_items(overdue_docs, now, town, every)) == 2
    assert overdue_list.overdue_items(overdue_docs, now, other_town, every) == []


def test_paging_is_keyset_and_stable_over_time(overdue_docs: list[dict]) -> None:
    now = cst("2025-03-18 01:00")
    items = overdue_list.overdue_items(overdue_docs, now, COUNTY, overdue_list.OverdueFilter())
    assert len(items) == 5
    seen, cursor = [], None
    while True:
        chunk, cursor = overdue_list.page(items, 2, cursor)
        seen += chunk
        if cursor is None:
            break
        # time passes between pages: the order (by deadline) does not change
        items = overdue_list.overdue_items(
            overdue_docs, now + timedelta(hours=len(seen)), COUNTY, overdue_list.OverdueFilter()
        )
    assert _ids(seen) == _ids(items)
    for bad in ("", "nonsense", "W10", overdue_list.encode_cursor(items[0])[:-3]):
        with pytest.raises(ValueError):
            overdue_list.decode_cursor(bad)


# -- access and the petition view -----------------------------------------------------------------


def test_current_pause_follows_the_domain_pairing(policy: SlaPolicy) -> None:
    assert current_pause(build([SUB]), policy) is None
    one = build([SUB, paused("2025-03-11 09:00", "p1", reason="third_party")])
    assert (current_pause(one, policy).reason, current_pause(one, policy).at) == (  # type: ignore[union-attr]
        "third_party",
        cst("2025-03-11 09:00"),
    )
    twice = build([SUB, paused("2025-03-11 09:00", "p1"), paused("2025-03-11 10:00", "p2", reason="third_party")])
    assert current_pause(twice, policy).event_id == "p1"  # type: ignore[union-attr]
    assert (
        current_pause(build([SUB, paused("2025-03-11 09:00", "p"), resumed("2025-03-11 10:00", "r")]), policy) is None
    )


def test_petition_view(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([SUB, ROUTED, contacted("2025-03-10 16:00", "c"), paused("2025-03-11 09:00", "p")])
    view = petition_clocks.petition_view(record, cst("2025-03-11 10:00"), policy, calendar, notices=[])
    assert (view["grid_id"], view["paused"], view["pause_reason"]) == ("T01V01G001", True, "citizen_unreachable")
    contact, reply = view["clocks"]
    assert (contact["state"], contact["on_time"], contact["overdue_seconds"], contact["level"]) == (
        "met",
        False,
        3600,
        1,
    )
    assert contact["met_at"] == format_time(cst("2025-03-10 16:00"))
    assert (reply["state"], reply["paused"], reply["paused_seconds"]) == ("on_track", True, 3600)
    # as of now the pause has lasted an hour, so the deadline has moved by an hour so far
    assert reply["deadline"] == format_time(cst("2025-03-18 01:00"))
    assert reply["remaining_seconds"] == int((cst("2025-03-18 01:00") - cst("2025-03-11 10:00")).total_seconds())
    assert view["pauses"] == [
        {"kind": "pause", "at": format_time(cst("2025-03-11 09:00")), "reason": "citizen_unreachable"}
    ]


def test_petition_view_names_a_calendar_gap(policy: SlaPolicy) -> None:
    only_2025 = WorkCalendar.from_schedules([YearSchedule(2025, frozenset({date(2025, 1, 1)}), frozenset(), "t")])
    view = petition_clocks.petition_view(
        build([submitted(at="2025-12-29 09:00")]), cst("2025-12-29 10:00"), policy, only_2025, []
    )
    assert [c["state"] for c in view["clocks"]] == ["on_track", "unknown"]
    assert "2026" in view["clocks"][1]["error"]


def test_met_transitions(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    before = build([SUB])
    on_time = build([SUB, contacted("2025-03-10 10:00", "c")])
    late_reply = build([SUB, contacted("2025-03-10 10:00", "c"), replied("2025-03-19 10:00", "r")])

    def states(record):
        return clock_states(record, None, policy, calendar)

    assert met_transitions(states(before), states(on_time)) == [("contact", True)]
    assert met_transitions(states(on_time), states(late_reply)) == [("reply", False)]
    assert met_transitions(states(late_reply), states(late_reply)) == []
    closed_record = build([SUB, closed("2025-03-10 10:00", "x")])
    assert met_transitions(states(before), states(closed_record)) == []


def test_a_cursor_from_before_deadlines_carried_milliseconds_still_pages() -> None:
    item = {"deadline": "2025-03-10T07:00:00Z", "petition_id": "P1", "clock": "reply", "generation": 0}
    old = base64.urlsafe_b64encode(orjson.dumps(list(item.values()))).decode().rstrip("=")
    assert overdue_list.decode_cursor(old) == ("2025-03-10T07:00:00.000Z", "P1", "reply", 0)
