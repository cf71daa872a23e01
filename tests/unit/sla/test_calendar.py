"""The working-day calendar against the State Council notices, typed in by hand from the notices.

Nothing here is generated from `chinese_calendar`: the point is to catch a wrong library release.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from petition_kernel.calendar import (
    CalendarFileError,
    WorkCalendar,
    YearNotCovered,
    YearSchedule,
    load_year_overrides,
)

from .helpers import CALENDAR_DIR

D = date.fromisoformat

# (festival, first day off, last day off), exactly as each notice states the ranges.
HOLIDAY_RANGES: dict[int, list[tuple[str, str, str]]] = {
    # 国务院办公厅关于2024年部分节假日安排的通知（国办发明电〔2023〕7号，2023年10月25日）
    2024: [
        ("元旦", "2024-01-01", "2024-01-01"),  # 1月1日放假，与周末连休
        ("春节", "2024-02-10", "2024-02-17"),  # 2月10日至17日放假调休，共8天
        ("清明节", "2024-04-04", "2024-04-06"),  # 4月4日至6日放假调休，共3天
        ("劳动节", "2024-05-01", "2024-05-05"),  # 5月1日至5日放假调休，共5天
        ("端午节", "2024-06-10", "2024-06-10"),  # 6月10日放假，与周末连休
        ("中秋节", "2024-09-15", "2024-09-17"),  # 9月15日至17日放假调休，共3天
        ("国庆节", "2024-10-01", "2024-10-07"),  # 10月1日至7日放假调休，共7天
    ],
    # 国务院办公厅关于2025年部分节假日安排的通知（国办发明电〔2024〕12号，2024年11月12日）
    2025: [
        ("元旦", "2025-01-01", "2025-01-01"),  # 1月1日（周三）放假1天，不调休
        ("春节", "2025-01-28", "2025-02-04"),  # 1月28日（除夕、周二）至2月4日（初七、周二），共8天
        ("清明节", "2025-04-04", "2025-04-06"),  # 4月4日（周五）至6日（周日）放假，共3天
        ("劳动节", "2025-05-01", "2025-05-05"),  # 5月1日（周四）至5日（周一）放假调休，共5天
        ("端午节", "2025-05-31", "2025-06-02"),  # 5月31日（周六）至6月2日（周一）放假，共3天
        ("国庆节、中秋节", "2025-10-01", "2025-10-08"),  # 10月1日（周三）至8日（周三），共8天
    ],
    # 国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）
    2026: [
        ("元旦", "2026-01-01", "2026-01-03"),  # 1月1日（周四）至3日（周六）放假调休，共3天
        ("春节", "2026-02-15", "2026-02-23"),  # 2月15日（腊月二十八、周日）至23日（初七、周一），共9天
        ("清明节", "2026-04-04", "2026-04-06"),  # 4月4日（周六）至6日（周一）放假，共3天
        ("劳动节", "2026-05-01", "2026-05-05"),  # 5月1日（周五）至5日（周二）放假调休，共5天
        ("端午节", "2026-06-19", "2026-06-21"),  # 6月19日（周五）至21日（周日）放假，共3天
        ("中秋节", "2026-09-25", "2026-09-27"),  # 9月25日（周五）至27日（周日）放假，共3天
        ("国庆节", "2026-10-01", "2026-10-07"),  # 10月1日（周四）至7日（周三）放假调休，共7天
    ],
}

# (festival, make-up working day, the weekday the notice gives: 六 = Saturday, 日 = Sunday)
MAKEUP_DAYS: dict[int, list[tuple[str, str, str]]] = {
    2024: [
        ("春节", "2024-02-04", "日"),
        ("春节", "2024-02-18", "日"),
        ("清明节", "2024-04-07", "日"),
        ("劳动节", "2024-04-28", "日"),
        ("劳动节", "2024-05-11", "六"),
        ("中秋节", "2024-09-14", "六"),
        ("国庆节", "2024-09-29", "日"),
        ("国庆节", "2024-10-12", "六"),
    ],
    2025: [
        ("春节", "2025-01-26", "日"),
        ("春节", "2025-02-08", "六"),
        ("劳动节", "2025-04-27", "日"),
        ("国庆节、中秋节", "2025-09-28", "日"),
        ("国庆节、中秋节", "2025-10-11", "六"),
    ],
    2026: [
        ("元旦", "2026-01-04", "日"),
        ("春节", "2026-02-14", "六"),
        ("春节", "2026-02-28", "六"),
        ("劳动节", "2026-05-09", "六"),
        ("国庆节", "2026-09-20", "日"),
        ("国庆节", "2026-10-10", "六"),
    ],
}

# Days off per notice, counted by hand from the ranges above (a check on the transcription).
DAYS_OFF_COUNT = {2024: 1 + 8 + 3 + 5 + 1 + 3 + 7, 2025: 1 + 8 + 3 + 5 + 3 + 8, 2026: 3 + 9 + 3 + 5 + 3 + 3 + 7}
YEARS = sorted(HOLIDAY_RANGES)
WEEKDAY = {"六": 5, "日": 6}


def _days(first: str, last: str) -> list[date]:
    day, end = D(first), D(last)
    out = []
    while day <= end:
        out.append(day)
        day += timedelta(days=1)
    return out


def _holidays(year: int) -> list[tuple[str, date]]:
    return [(name, d) for name, first, last in HOLIDAY_RANGES[year] for d in _days(first, last)]


HOLIDAY_CASES = [(name, d) for year in YEARS for name, d in _holidays(year)]
MAKEUP_CASES = [(name, D(text), weekday) for year in YEARS for name, text, weekday in MAKEUP_DAYS[year]]


def test_transcription_counts() -> None:
    for year in YEARS:
        assert len(_holidays(year)) == DAYS_OFF_COUNT[year]


@pytest.mark.parametrize(("festival", "day"), HOLIDAY_CASES, ids=[f"{d}-{n}" for n, d in HOLIDAY_CASES])
def test_every_public_holiday_is_a_day_off(calendar: WorkCalendar, festival: str, day: date) -> None:
    assert not calendar.is_working_day(day), f"{day} ({festival}) must be a day off"


@pytest.mark.parametrize(("festival", "day", "weekday"), MAKEUP_CASES, ids=[f"{d}-{n}" for n, d, _ in MAKEUP_CASES])
def test_every_makeup_day_is_a_working_day(calendar: WorkCalendar, festival: str, day: date, weekday: str) -> None:
    assert day.weekday() == WEEKDAY[weekday], "the table disagrees with the notice's weekday"
    assert calendar.is_working_day(day), f"{day} is a make-up working day for {festival}"


def _expected_year(year: int) -> dict[date, bool]:
    """Every day of the year: working or not, from the notice alone."""
    off = {d for _, d in _holidays(year)}
    makeup = {D(text) for _, text, _ in MAKEUP_DAYS[year]}
    return {d: (d in makeup) or (d.weekday() < 5 and d not in off) for d in _days(f"{year}-01-01", f"{year}-12-31")}


@pytest.mark.parametrize("year", YEARS)
def test_every_other_day_follows_the_week(calendar: WorkCalendar, year: int) -> None:
    wrong = [d for d, working in _expected_year(year).items() if calendar.is_working_day(d) != working]
    assert wrong == []


@pytest.mark.parametrize("year", YEARS)
def test_library_alone_matches_the_notice(year: int) -> None:
    # Without config/calendar/: if this fails, the library is wrong for that year and needs a file.
    library = WorkCalendar.from_library()
    wrong = [d for d, working in _expected_year(year).items() if library.is_working_day(d) != working]
    assert wrong == []


def test_new_years_eve_2024_was_only_encouraged_leave(calendar: WorkCalendar) -> None:
    # 2024 notice: 鼓励各单位…安排职工在除夕（2月9日）休息 — encouraged, not a public holiday.
    assert calendar.is_working_day(D("2024-02-09"))


def test_covered_years_include_the_tested_ones(calendar: WorkCalendar) -> None:
    assert set(YEARS) <= set(calendar.covered_years())
    assert calendar.sources[2026].endswith("2026.yaml")


# -- years nobody covers -------------------------------------------------------------------------


def _schedule(year: int, holidays: list[str], workdays: list[str] = ()) -> YearSchedule:  # type: ignore[assignment]
    return YearSchedule(
        year=year, holidays=frozenset(map(D, holidays)), workdays=frozenset(map(D, workdays)), source="test"
    )


def test_uncovered_year_is_refused_with_the_file_to_add() -> None:
    only_2025 = WorkCalendar.from_schedules([_schedule(2025, ["2025-01-01"])])
    assert only_2025.covered_years() == (2025,)
    with pytest.raises(YearNotCovered, match=r"config/calendar/2026\.yaml") as info:
        only_2025.is_working_day(D("2026-03-02"))  # an ordinary Monday, still refused
    assert info.value.year == 2026
    with pytest.raises(YearNotCovered):
        only_2025.add_working_days(D("2025-12-30"), 5)


def test_library_range_ends_somewhere() -> None:
    library = WorkCalendar.from_library()
    after = max(library.covered_years()) + 1
    with pytest.raises(YearNotCovered):
        library.is_working_day(date(after, 3, 2))


# -- overrides --------------------------------------------------------------------------------


def test_override_replaces_the_whole_year_and_only_that_year() -> None:
    odd_2025 = _schedule(2025, ["2025-03-03"], ["2025-03-08"])
    calendar = WorkCalendar.from_library([odd_2025])
    assert not calendar.is_working_day(D("2025-03-03"))
    assert calendar.is_working_day(D("2025-03-08"))
    assert calendar.is_working_day(D("2025-10-08"))  # the library's holiday is gone with its year
    assert not calendar.is_working_day(D("2024-10-07"))  # other years untouched
    assert calendar.sources[2025] == "test"


def test_override_adds_a_year() -> None:
    calendar = WorkCalendar.from_library([_schedule(2040, ["2040-01-02"])])
    assert 2040 in calendar.covered_years()
    assert not calendar.is_working_day(D("2040-01-02"))
    assert calendar.is_working_day(D("2040-01-03"))
    with pytest.raises(YearNotCovered):
        calendar.is_working_day(D("2039-06-01"))


def test_shipped_override_files_load() -> None:
    schedules = load_year_overrides(CALENDAR_DIR)
    assert [s.year for s in schedules] == sorted(s.year for s in schedules)
    assert all(s.notice for s in schedules)


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_override_file_happy_path(tmp_path: Path) -> None:
    _write(tmp_path, "2041.yaml", "holidays: [2041-01-01, '2041-01-02']\nworkdays: [2041-01-05]\n")
    _write(tmp_path, "README.md", "ignored")
    [schedule] = load_year_overrides(tmp_path)
    assert schedule.year == 2041
    assert schedule.holidays == {D("2041-01-01"), D("2041-01-02")}
    assert schedule.workdays == {D("2041-01-05")}
    calendar = WorkCalendar.load(tmp_path)
    assert calendar.is_working_day(D("2041-01-05"))  # a Saturday made a working day


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("2041.yaml", "holidays: [2041-01-01]\nworkdays: []\nextra: 1\n", r"extra: unknown key"),
        ("2041.yaml", "holidays: [2041-01-01]\n", r"workdays: missing"),
        ("2041.yaml", "holidays: []\nworkdays: []\n", r"holidays: empty"),
        ("2041.yaml", "holidays: [2041-01-01]\nworkdays: [2041-01-07]\n", r"workdays\[0\]: 2041-01-07 is a Monday"),
        ("2041.yaml", "holidays: [2040-12-31]\nworkdays: []\n", r"holidays\[0\]: 2040-12-31 is not in 2041"),
        ("2041.yaml", "holidays: [2041-01-05]\nworkdays: [2041-01-05]\n", r"workdays: 2041-01-05 is also"),
        ("2041.yaml", "holidays: [first of May]\nworkdays: []\n", r"holidays\[0\]: 'first of May' is not a date"),
        ("2041.yaml", "holidays: 2041-01-01\nworkdays: []\n", r"holidays: expected a list"),
        ("2041.yaml", "- 2041-01-01\n", r"\(top level\)"),
        ("2041.yml", "holidays: [2041-01-01]\nworkdays: []\n", r"must be named <year>\.yaml"),
        ("holidays.yaml", "holidays: [2041-01-01]\nworkdays: []\n", r"must be named <year>\.yaml"),
        ("2041.yaml", "holidays: [2041-01-01\n", r"not valid YAML"),
    ],
)
def test_bad_override_files_name_the_file_and_key(tmp_path: Path, name: str, text: str, message: str) -> None:
    _write(tmp_path, name, text)
    with pytest.raises(CalendarFileError, match=message) as info:
        load_year_overrides(tmp_path)
    assert name in str(info.value)


def test_missing_override_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarFileError, match="does not exist"):
        WorkCalendar.load(tmp_path / "nope")


# -- arithmetic -------------------------------------------------------------------------------


def test_add_working_days(calendar: WorkCalendar) -> None:
    assert calendar.add_working_days(D("2024-09-27"), 1) == D("2024-09-29")  # make-up Sunday
    assert calendar.add_working_days(D("2024-09-27"), 3) == D("2024-10-08")  # across National Day
    assert calendar.add_working_days(D("2025-01-27"), 1) == D("2025-02-05")  # across Spring Festival
    with pytest.raises(ValueError, match="at least 1"):
        calendar.add_working_days(D("2025-01-27"), 0)


def test_a_repeated_count_is_answered_from_memory(calendar: WorkCalendar, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every projection of a petition counts its reply days again from the same start (issue #23)."""
    first = calendar.add_working_days(D("2024-09-27"), 3)
    monkeypatch.setattr(WorkCalendar, "is_working_day", lambda self, d: pytest.fail(f"{d} looked up again"))
    assert calendar.add_working_days(D("2024-09-27"), 3) == first == D("2024-10-08")


def test_an_uncovered_year_stays_refused_when_asked_again() -> None:
    only_2025 = WorkCalendar.from_schedules([_schedule(2025, ["2025-01-01"])])
    assert only_2025.add_working_days(D("2025-12-22"), 5) == D("2025-12-29")
    for _ in range(2):  # nothing remembered of a count that ran out of the calendar
        with pytest.raises(YearNotCovered):
            only_2025.add_working_days(D("2025-12-30"), 5)


def test_working_days_between(calendar: WorkCalendar) -> None:
    assert calendar.working_days_between(D("2024-09-27"), D("2024-10-08")) == 3
    assert calendar.working_days_between(D("2024-10-08"), D("2024-09-27")) == 0


def test_a_datetime_is_not_a_date(calendar: WorkCalendar) -> None:
    with pytest.raises(TypeError, match="local date"):
        calendar.is_working_day(datetime(2025, 3, 3, 12))
