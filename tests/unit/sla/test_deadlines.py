"""Deadline rules, with expected values worked out by hand from the holiday notices."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from petition_kernel.calendar import WorkCalendar, YearNotCovered, YearSchedule
from petition_kernel.sla.deadlines import (
    Pause,
    apply_pauses,
    contact_deadline,
    reply_deadline,
    warning_point,
)
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.times import UTC

from .helpers import cst, utc

# (case, submitted at, Beijing time; deadline = 24:00 of day 5, written as 00:00 of the next day)
REPLY_CASES = [
    # Mon 7/15 .. Fri 7/19 are days 1-5.
    ("Friday 16:00 before an ordinary weekend", "2024-07-12 16:00", "2024-07-20 00:00"),
    # Sun 9/29 make-up (1), Mon 9/30 (2), 10/1-7 off, 10/8 (3), 10/9 (4), 10/10 (5).
    ("Friday before National Day 2024", "2024-09-27 10:00", "2024-10-11 00:00"),
    # The make-up Sunday itself is a working day but, like any start day, is not counted.
    ("on the make-up Sunday before National Day 2024", "2024-09-29 14:00", "2024-10-12 00:00"),
    # Thu 3/13 (1), Fri 3/14 (2), Mon 3/17 (3), Tue 3/18 (4), Wed 3/19 (5).
    ("23:59:59 on a Wednesday", "2025-03-12 23:59:59", "2025-03-20 00:00"),
    # One second later it is Thursday: Fri 3/14 is day 1.
    ("00:00 on a Thursday", "2025-03-13 00:00", "2025-03-21 00:00"),
    # 除夕 2024 (2/9) was a working day; 2/10-17 off; Sun 2/18 make-up (1), 2/19-22 (2-5).
    ("on 除夕 2024, a working day", "2024-02-09 10:00", "2024-02-23 00:00"),
    # Day before 除夕 2025: 1/28-2/4 off; 2/5 (1), 2/6 (2), 2/7 (3), Sat 2/8 make-up (4), Mon 2/10 (5).
    ("eve of Spring Festival 2025", "2025-01-27 18:00", "2025-02-11 00:00"),
    # 除夕 2026 (2/16) is inside the 2/15-23 holiday: 2/24 (1) .. 2/27 (4), Sat 2/28 make-up (5).
    ("on 除夕 2026, a holiday", "2026-02-16 20:00", "2026-03-01 00:00"),
    # On a holiday: 10/4-8 off; Thu 10/9 (1), Fri 10/10 (2), Sat 10/11 make-up (3), 10/13 (4), 10/14 (5).
    ("on a National Day holiday 2025", "2025-10-03 09:00", "2025-10-15 00:00"),
    # Across the year: 2026-01-01..03 off; Sun 1/4 make-up (1), 1/5 (2) .. 1/8 (5).
    ("New Year's Eve 2025", "2025-12-31 12:00", "2026-01-09 00:00"),
    # Sun 4/28 make-up (1), 4/29 (2), 4/30 (3), 5/1-5 off, 5/6 (4), 5/7 (5).
    ("Friday before Labour Day 2024", "2024-04-26 17:30", "2024-05-08 00:00"),
    # Sat 9/14 make-up (1), 9/15-17 off, 9/18 (2), 9/19 (3), 9/20 (4), Mon 9/23 (5).
    ("Friday before Mid-autumn 2024", "2024-09-13 11:00", "2024-09-24 00:00"),
    # 9/24 (1), 9/25-27 off, 9/28 (2), 9/29 (3), 9/30 (4), 10/1-7 off, 10/8 (5).
    ("Wednesday before Mid-autumn and National Day 2026", "2026-09-23 08:00", "2026-10-09 00:00"),
    # On a Saturday: Mon 6/8 is day 1 .. Fri 6/12 day 5.
    ("on an ordinary Saturday", "2026-06-06 10:00", "2026-06-13 00:00"),
    # Dragon Boat 2026 (6/19-21 off): 6/18 (1), 6/22 (2) .. 6/25 (5).
    ("Wednesday before Dragon Boat 2026", "2026-06-17 15:00", "2026-06-26 00:00"),
]


@pytest.mark.parametrize(("case", "submitted", "expected"), REPLY_CASES, ids=[c[0] for c in REPLY_CASES])
def test_reply_deadline(calendar: WorkCalendar, case: str, submitted: str, expected: str) -> None:
    deadline = reply_deadline(cst(submitted), 5, calendar)
    assert deadline == cst(expected)
    assert deadline.tzinfo is UTC


def test_reply_deadline_is_emitted_in_utc(calendar: WorkCalendar) -> None:
    # 2024-07-20 00:00 Beijing is 2024-07-19 16:00 UTC.
    assert reply_deadline(cst("2024-07-12 16:00"), 5, calendar) == utc("2024-07-19T16:00")


def test_reply_deadline_reads_the_local_date_of_a_utc_instant(calendar: WorkCalendar) -> None:
    # 15:59:59Z is 23:59:59 Beijing on the Wednesday; 16:00Z is already Thursday in Beijing.
    assert reply_deadline(utc("2025-03-12T15:59:59"), 5, calendar) == cst("2025-03-20 00:00")
    assert reply_deadline(utc("2025-03-12T16:00:00"), 5, calendar) == cst("2025-03-21 00:00")


def test_reply_deadline_with_other_lengths(calendar: WorkCalendar) -> None:
    assert reply_deadline(cst("2024-09-27 10:00"), 1, calendar) == cst("2024-09-30 00:00")
    # 9/29 (1), 9/30 (2), 10/8-10/11 (3-6), Sat 10/12 make-up (7), 10/14 (8), 10/15 (9), 10/16 (10).
    assert reply_deadline(cst("2024-09-27 10:00"), 10, calendar) == cst("2024-10-17 00:00")


def test_reply_deadline_refuses_an_unknown_year() -> None:
    only_2025 = WorkCalendar.from_schedules([YearSchedule(2025, frozenset({date(2025, 1, 1)}), frozenset(), "test")])
    # Mon 12/29 (1), 12/30 (2), 12/31 (3), then 2026 is unknown.
    with pytest.raises(YearNotCovered, match="2026"):
        reply_deadline(cst("2025-12-26 10:00"), 5, only_2025)
    assert reply_deadline(cst("2025-12-22 10:00"), 5, only_2025) == cst("2025-12-30 00:00")


def test_naive_datetimes_are_refused(calendar: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        reply_deadline(datetime(2025, 3, 3, 9), 5, calendar)
    with pytest.raises(ValueError, match="naive"):
        contact_deadline(datetime(2025, 3, 3, 9), 6)


# -- contact ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "submitted", "expected"),
    [
        ("roads", "2024-09-30 22:00", "2024-10-01 04:00"),  # calendar hours: into a holiday
        ("roads", "2025-01-28 21:30", "2025-01-29 03:30"),  # 除夕 night
        ("emergency", "2025-05-01 23:15", "2025-05-02 01:15"),
        ("utilities", "2025-02-07 18:00", "2025-02-08 18:00"),
        (None, "2025-03-10 09:00", "2025-03-10 15:00"),
    ],
)
def test_contact_deadline(policy: SlaPolicy, category: str | None, submitted: str, expected: str) -> None:
    hours = policy.rules_for(category).contact_hours
    assert contact_deadline(cst(submitted), hours) == cst(expected)


def test_contact_deadline_rejects_non_positive_hours() -> None:
    with pytest.raises(ValueError):
        contact_deadline(cst("2025-03-10 09:00"), 0)


def test_warning_point() -> None:
    start = cst("2025-03-10 09:00")
    assert warning_point(start, start + timedelta(hours=6), 0.8) == cst("2025-03-10 13:48")
    with pytest.raises(ValueError):
        warning_point(start, start + timedelta(hours=6), 1.0)


# -- pauses -----------------------------------------------------------------------------------

START = cst("2025-03-10 09:00")
BASE = cst("2025-03-18 00:00")  # 5 working days after Monday 2025-03-10
CAP = timedelta(days=5)
WARN = START + (BASE - START) * 0.8


def _moved(pauses: list[Pause], **kwargs: object) -> tuple[datetime, datetime, timedelta, timedelta]:
    options: dict[str, object] = {"cap_left": CAP, "warning_fraction": 0.8}
    options.update(kwargs)
    result = apply_pauses(START, BASE, pauses, **options)  # type: ignore[arg-type]
    return result.deadline, result.warning_at, result.paused, result.cap_left


def test_no_pauses() -> None:
    assert _moved([]) == (BASE, WARN, timedelta(0), CAP)


def test_a_pause_moves_deadline_and_warning_by_its_length() -> None:
    pause = Pause(cst("2025-03-11 10:00"), cst("2025-03-13 10:00"))
    assert _moved([pause]) == (BASE + timedelta(days=2), WARN + timedelta(days=2), timedelta(days=2), timedelta(days=3))


def test_a_pause_after_the_warning_point_moves_only_the_deadline() -> None:
    pause = Pause(WARN + timedelta(hours=1), WARN + timedelta(hours=3))
    deadline, warning_at, _, _ = _moved([pause])
    assert (deadline, warning_at) == (BASE + timedelta(hours=2), WARN)


def test_the_cap_holds_for_one_long_pause() -> None:
    pause = Pause(cst("2025-03-11 10:00"), cst("2025-03-18 10:00"))  # 7 days
    deadline, _, paused, left = _moved([pause])
    assert (deadline, paused, left) == (BASE + CAP, CAP, timedelta(0))


def test_the_cap_is_shared_by_several_pauses() -> None:
    pauses = [
        Pause(cst("2025-03-11 10:00"), cst("2025-03-14 10:00")),  # 3 days
        Pause(cst("2025-03-17 10:00"), cst("2025-03-21 10:00")),  # 4 days, only 2 left to count
    ]
    deadline, _, paused, left = _moved(pauses)
    assert (deadline, paused, left) == (BASE + CAP, CAP, timedelta(0))


def test_cap_already_used_by_an_earlier_clock() -> None:
    pause = Pause(cst("2025-03-11 10:00"), cst("2025-03-13 10:00"))
    deadline, _, paused, _ = _moved([pause], cap_left=timedelta(hours=12))
    assert (deadline, paused) == (BASE + timedelta(hours=12), timedelta(hours=12))


def test_an_open_pause_counts_up_to_now() -> None:
    pause = Pause(cst("2025-03-17 09:00"))
    deadline, _, paused, _ = _moved([pause], until=cst("2025-03-18 09:00"))
    assert (deadline, paused) == (BASE + timedelta(days=1), timedelta(days=1))


def test_an_open_pause_without_now_counts_the_whole_cap() -> None:
    deadline, _, paused, _ = _moved([Pause(cst("2025-03-17 09:00"))])
    assert (deadline, paused) == (BASE + CAP, CAP)


def test_an_overdue_clock_cannot_be_paused() -> None:
    late = Pause(BASE + timedelta(hours=1), BASE + timedelta(days=1))
    assert _moved([late])[0] == BASE


def test_a_pause_is_clipped_to_the_clock() -> None:
    before_and_into = Pause(START - timedelta(days=1), START + timedelta(hours=5))
    deadline, _, paused, _ = _moved([before_and_into])
    assert paused == timedelta(hours=5)
    after_end = Pause(cst("2025-03-12 09:00"), cst("2025-03-13 09:00"))
    deadline, _, paused, _ = _moved([after_end], ended_at=cst("2025-03-12 21:00"))
    assert (deadline, paused) == (BASE + timedelta(hours=12), timedelta(hours=12))
