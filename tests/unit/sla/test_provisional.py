"""Provisional calendars for years whose State Council notice is not imported yet, and the deadlines
derived again when it is."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from petition_kernel.calendar import (
    CalendarDirectory,
    CalendarFileError,
    WorkCalendar,
    YearSchedule,
    load_year_overrides,
    provisional_schedule,
)
from petition_kernel.sla.clock import clock_states, deadline_changes, due_notices, mark_emitted
from petition_kernel.sla.policy import SlaPolicy

from .helpers import CALENDAR_DIR, cst
from .test_clock import build, contacted, replied, submitted

D = date.fromisoformat
OFFICIAL = WorkCalendar.from_library(load_year_overrides(CALENDAR_DIR))


def with_2027(holidays: list[str], workdays: list[str] = ()) -> WorkCalendar:  # type: ignore[assignment]
    """The shipped calendar with a (hypothetical) official 2027."""
    notice = YearSchedule(2027, frozenset(map(D, holidays)), frozenset(map(D, workdays)), "test notice")
    return WorkCalendar.from_library([*load_year_overrides(CALENDAR_DIR), notice]).with_provisional()


# -- the provisional year -------------------------------------------------------------------------


def test_2027_provisional_days_off_follow_the_amended_regulation() -> None:
    schedule = provisional_schedule(2027)
    assert schedule.provisional and schedule.workdays == frozenset()
    assert sorted(schedule.holidays) == [
        D("2027-01-01"),  # 元旦 (Friday)
        # 春节: the eve (5 Feb) and the first three days; 6 and 7 fall on a weekend, made up on 9 and 10
        *(D("2027-02-05") + timedelta(days=i) for i in range(6)),
        D("2027-04-05"),  # 清明
        *(D("2027-05-01") + timedelta(days=i) for i in range(4)),  # 劳动节 1-2 (a weekend), made up 3-4
        D("2027-06-09"),  # 端午
        D("2027-09-15"),  # 中秋
        *(D("2027-10-01") + timedelta(days=i) for i in range(5)),  # 国庆 1-3, made up 4-5 for 2-3
    ]


@pytest.mark.parametrize("year", [2027, 2028, 2031, 2040])
def test_a_provisional_year_has_the_statutory_count_of_days_and_no_make_up_days(year: int) -> None:
    schedule = provisional_schedule(year)
    # 13 statutory days (1 + 4 + 1 + 2 + 1 + 1 + 3), each on a weekday or made up on one; in years where
    # Mid-Autumn falls inside National Day (2028, 2031) the two share a day, so 12
    weekdays_off = [d for d in schedule.holidays if d.weekday() < 5]
    assert len(weekdays_off) in (12, 13)
    assert not schedule.workdays


def test_load_marks_the_years_after_the_last_notice_provisional() -> None:
    calendar = WorkCalendar.load(CALENDAR_DIR, today=date(2026, 12, 4))
    assert calendar.official_years()[-1] == 2026
    assert sorted(calendar.provisional_years) == [2027, 2028]
    # the horizon follows the services' clock, so a calendar never runs out
    later = WorkCalendar.load(CALENDAR_DIR, today=date(2030, 6, 1))
    assert sorted(later.provisional_years) == [2027, 2028, 2029, 2030, 2031, 2032]


def test_a_span_is_provisional_only_if_a_counted_day_is() -> None:
    calendar = WorkCalendar.load(CALENDAR_DIR)
    assert calendar.is_provisional_span(D("2026-12-28"), D("2027-01-05"))
    assert not calendar.is_provisional_span(D("2026-12-21"), D("2026-12-28"))
    # the start day itself is not counted
    assert not calendar.is_provisional_span(D("2026-12-31"), D("2026-12-31"))
    assert calendar.is_provisional_span(D("2026-12-31"), D("2027-01-01"))


# -- clocks on a provisional calendar -------------------------------------------------------------


def test_a_reply_deadline_in_a_provisional_year_is_computed_and_marked(policy: SlaPolicy) -> None:
    calendar = WorkCalendar.load(CALENDAR_DIR)
    record = build([submitted(at="2026-12-28 10:00"), contacted("2026-12-28 11:00", "c")])
    contact, reply = clock_states(record, None, policy, calendar)
    assert not contact.provisional
    # 29, 30, 31 December, (1 January off, then a weekend) 4 and 5 January
    assert reply.provisional and reply.deadline == cst("2027-01-06 00:00")
    [warning] = due_notices(record, cst("2027-01-04 12:00"), policy, calendar)
    assert warning.key == "reply.0:warning:1" and warning.data()["provisional"] is True
    old = build([submitted(at="2026-12-21 10:00")])
    assert not clock_states(old, None, policy, calendar)[1].provisional


# -- deadlines derived again ----------------------------------------------------------------------


def test_a_make_up_day_in_the_window_moves_the_deadline_earlier(policy: SlaPolicy) -> None:
    before = WorkCalendar.load(CALENDAR_DIR)
    after = with_2027(["2027-01-01"], ["2027-01-02"])
    record = build([submitted(at="2026-12-28 10:00"), contacted("2026-12-28 11:00", "c")])
    [change] = deadline_changes(record, cst("2026-12-30 09:00"), policy, before, after)
    assert (change.previous_deadline, change.previous_provisional) == (cst("2027-01-06 00:00"), True)
    assert (change.deadline, change.provisional) == (cst("2027-01-05 00:00"), False)
    assert change.generation == 0 and change.corrected == ()
    data = change.data((2027,))
    assert data["clock"] == "reply" and data["reason"] == "calendar" and data["calendar_years"] == [2027]


def test_a_longer_holiday_moves_it_later_and_corrects_a_breach_already_sent(policy: SlaPolicy) -> None:
    before = WorkCalendar.load(CALENDAR_DIR)
    after = with_2027(["2027-01-01", "2027-01-02", "2027-01-03", "2027-01-04"])  # 元旦 1-4 January
    record = build([submitted(at="2026-12-28 10:00"), contacted("2026-12-28 11:00", "c")])
    now = cst("2027-01-06 09:00")  # past the provisional deadline: level 1 was sent
    sent = [n.key for n in due_notices(record, now, policy, before)]
    assert "reply.0:breached:1" in sent
    record = mark_emitted(record, sent)
    [change] = deadline_changes(record, now, policy, before, after)
    assert change.deadline == cst("2027-01-07 00:00")
    assert change.corrected == ("reply.0:breached:1",)
    assert change.data((2027,))["corrected"] == [{"key": "reply.0:breached:1", "type": "sla.breached", "level": 1}]
    # sent stays sent: the new deadline does not send level 1 again
    assert "reply.0:breached:1" not in [n.key for n in due_notices(record, cst("2027-01-07 01:00"), policy, after)]


def test_the_same_deadline_on_the_official_calendar_is_published_as_confirmed(policy: SlaPolicy) -> None:
    before = WorkCalendar.load(CALENDAR_DIR)
    after = with_2027(["2027-01-01"])  # the notice agrees with the regulation in early January
    record = build([submitted(at="2026-12-28 10:00")])
    [change] = deadline_changes(record, cst("2026-12-29 09:00"), policy, before, after)
    assert change.deadline == change.previous_deadline and not change.provisional and change.previous_provisional


def test_clocks_outside_the_changed_days_do_not_change(policy: SlaPolicy) -> None:
    before = WorkCalendar.load(CALENDAR_DIR)
    after = with_2027(["2027-01-01"], ["2027-01-02"])
    replied_in_2026 = build([submitted(at="2026-12-21 10:00"), replied("2026-12-22 10:00", "r")])
    assert deadline_changes(replied_in_2026, cst("2026-12-29 09:00"), policy, before, after) == []
    # a calendar without the year at all had no deadline to change (the scanner computes it first)
    assert deadline_changes(build([submitted(at="2026-12-28 10:00")]), cst("2026-12-29"), policy, OFFICIAL, after) == []


# -- storing and reloading the calendar ------------------------------------------------------------


def test_a_stored_calendar_compares_equal_and_tells_the_changed_years() -> None:
    calendar = WorkCalendar.load(CALENDAR_DIR)
    stored = WorkCalendar.from_doc(calendar.to_doc(since=2025))
    assert stored.revision() == calendar.revision(2025) == stored.revision(2025)
    assert stored.changed_years(calendar) == ()
    after = with_2027(["2027-01-01"], ["2027-01-02"])
    assert stored.changed_years(after) == (2027,)
    assert after.revision(2025) != calendar.revision(2025)


def test_the_directory_is_read_again_when_a_file_changes(tmp_path: Path) -> None:
    for file in CALENDAR_DIR.glob("*.yaml"):
        (tmp_path / file.name).write_bytes(file.read_bytes())
    today = [date(2026, 12, 28)]
    directory = CalendarDirectory(tmp_path, today=lambda: today[0])
    first = directory.calendar
    assert directory.refresh() is None  # nothing changed
    (tmp_path / "2027.yaml").write_text("holidays: [2027-01-01]\nworkdays: [2027-01-02]\n", encoding="utf-8")
    fresh = directory.refresh()
    assert fresh is not None and 2027 in fresh.official_years() and fresh != first
    (tmp_path / "2028.yaml").write_text("holidays: []\nworkdays: []\n", encoding="utf-8")
    with pytest.raises(CalendarFileError, match=r"2028\.yaml"):
        directory.refresh()
    assert directory.calendar == fresh  # the calendar in use stays
    (tmp_path / "2028.yaml").unlink()
    today[0] = date(2029, 1, 2)  # the year turns: the provisional horizon moves with it
    moved = directory.refresh()
    assert moved is not None and max(moved.provisional_years) == 2031
    assert replace(moved, provisional_years=frozenset()) != moved
