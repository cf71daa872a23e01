"""Mainland-China working-day calendar (工作日历): weekends, public holidays and make-up working days.

A day is a working day when it is a make-up working day (调休上班, a Saturday or Sunday announced as a
working day), or a Monday to Friday that is not a public holiday (法定节假日, including the bridging days
of a 放假调休 range). Which days those are is announced each year by the State Council's notice
(国务院办公厅关于XXXX年部分节假日安排的通知), usually in November of the year before.

The base data is the `chinese_calendar` library. A file `config/calendar/<year>.yaml` replaces the
library's data for that year entirely, so it can correct the library or add a year the library does not
know yet. A year covered by neither is refused with `YearNotCovered`: guessing "no holidays" would
silently move every deadline that touches a holiday.

`WorkCalendar` itself does no I/O; `load_year_overrides` (and `WorkCalendar.load`, which calls it) are the
only functions that read files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
import yaml
from chinese_calendar import constants as _library_data

__all__ = [
    "CalendarFileError",
    "WorkCalendar",
    "YearNotCovered",
    "YearSchedule",
    "library_schedules",
    "load_year_overrides",
    "parse_year_schedule",
]

_WEEKEND = (5, 6)  # date.weekday(): Saturday, Sunday
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_YEAR_FILE = re.compile(r"^(\d{4})\.yaml$")
_FILE_KEYS = frozenset({"holidays", "workdays", "notice"})


class YearNotCovered(LookupError):
    """A date falls in a year for which no holiday schedule is known."""

    def __init__(self, year: int, covered: Iterable[int]) -> None:
        self.year = year
        years = sorted(covered)
        span = f"{years[0]}-{years[-1]}" if years else "none"
        super().__init__(
            f"no working-day calendar for {year} (covered: {span}); add config/calendar/{year}.yaml "
            f"from 国务院办公厅关于{year}年部分节假日安排的通知 rather than assume there are no holidays"
        )


class CalendarFileError(ValueError):
    """A year override file is malformed; the message names the file and the bad key."""


@dataclass(frozen=True)
class YearSchedule:
    """One calendar year's days off and make-up working days, from one source."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    source: str
    notice: str | None = None


@dataclass(frozen=True)
class WorkCalendar:
    """Answers "is this a working day" for the covered years, and refuses other years."""

    holidays: frozenset[date]
    workdays: frozenset[date]
    sources: Mapping[int, str] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_schedules(cls, schedules: Iterable[YearSchedule]) -> WorkCalendar:
        """A calendar of exactly these years; a later schedule for the same year replaces an earlier one."""
        by_year: dict[int, YearSchedule] = {}
        for schedule in schedules:
            by_year[schedule.year] = schedule
        holidays = frozenset(d for s in by_year.values() for d in s.holidays)
        workdays = frozenset(d for s in by_year.values() for d in s.workdays)
        sources = {year: by_year[year].source for year in sorted(by_year)}
        return cls(holidays=holidays, workdays=workdays, sources=sources)

    @classmethod
    def from_library(cls, overrides: Iterable[YearSchedule] = ()) -> WorkCalendar:
        """The library's years, with each override replacing (or adding) its whole year."""
        return cls.from_schedules([*library_schedules(), *overrides])

    @classmethod
    def load(cls, override_dir: str | Path | None = None) -> WorkCalendar:
        """The library plus the `<year>.yaml` files of `override_dir` (reads files)."""
        overrides = load_year_overrides(override_dir) if override_dir is not None else []
        return cls.from_library(overrides)

    # -- queries -----------------------------------------------------------------------------

    def covered_years(self) -> tuple[int, ...]:
        return tuple(sorted(self.sources))

    def covers(self, d: date) -> bool:
        return _as_date(d).year in self.sources

    def is_working_day(self, d: date) -> bool:
        d = _as_date(d)
        if d.year not in self.sources:
            raise YearNotCovered(d.year, self.sources)
        if d in self.workdays:
            return True
        if d in self.holidays:
            return False
        return d.weekday() not in _WEEKEND

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day strictly after `d` (n >= 1); `d` itself never counts."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        day = _as_date(d)
        remaining = n
        while remaining:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days d satisfy start < d <= end (0 when end <= start)."""
        start, end = _as_date(start), _as_date(end)
        count = 0
        day = start + timedelta(days=1)
        while day <= end:
            count += self.is_working_day(day)
            day += timedelta(days=1)
        return count


def _as_date(d: date) -> date:
    # datetime is a subclass of date: refuse it, because its date depends on a time zone.
    if isinstance(d, datetime):
        raise TypeError("pass a local date (tz.local_date(instant)), not a datetime")
    return d


# -- the library --------------------------------------------------------------------------------


def library_schedules() -> list[YearSchedule]:
    """The `chinese_calendar` data as one schedule per year it covers."""
    # The library's own range check is min..max year of its holiday table; mirror it exactly.
    years = [d.year for d in _library_data.holidays]
    source = f"chinese_calendar {getattr(chinese_calendar, '__version__', '?')}"
    return [
        YearSchedule(
            year=year,
            holidays=frozenset(d for d in _library_data.holidays if d.year == year),
            workdays=frozenset(d for d in _library_data.workdays if d.year == year),
            source=source,
        )
        for year in range(min(years), max(years) + 1)
    ]


# -- override files -----------------------------------------------------------------------------


def parse_year_schedule(year: int, content: Any, source: str) -> YearSchedule:
    """Validate one override file's parsed YAML; errors name `source` and the bad key."""

    def fail(key: str, problem: str) -> CalendarFileError:
        return CalendarFileError(f"{source}: {key}: {problem}")

    if not isinstance(content, Mapping):
        raise fail("(top level)", "expected a mapping with `holidays` and `workdays` lists")
    for key in content:
        if key not in _FILE_KEYS:
            raise fail(str(key), f"unknown key; allowed: {', '.join(sorted(_FILE_KEYS))}")
    notice = content.get("notice")
    if notice is not None and not isinstance(notice, str):
        raise fail("notice", "expected a string (the notice's title or number)")

    lists: dict[str, frozenset[date]] = {}
    for key in ("holidays", "workdays"):
        if key not in content:
            raise fail(key, "missing (use an empty list `[]` if there are none)")
        raw = content[key]
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise fail(key, "expected a list of dates (YYYY-MM-DD)")
        days: set[date] = set()
        for i, item in enumerate(raw):
            d = _parse_file_date(item)
            if d is None:
                raise fail(f"{key}[{i}]", f"{item!r} is not a date (YYYY-MM-DD)")
            if d.year != year:
                raise fail(f"{key}[{i}]", f"{d} is not in {year}; put it in {d.year}.yaml")
            if key == "workdays" and d.weekday() not in _WEEKEND:
                raise fail(
                    f"{key}[{i}]",
                    f"{d} is a {_WEEKDAY_NAMES[d.weekday()]}; a make-up working day (调休上班) "
                    "is always a Saturday or Sunday",
                )
            days.add(d)
        lists[key] = frozenset(days)

    if not lists["holidays"]:
        raise fail("holidays", "empty; every year has public holidays, so an empty list is a mistake")
    both = sorted(lists["holidays"] & lists["workdays"])
    if both:
        raise fail("workdays", f"{both[0]} is also listed under holidays")
    return YearSchedule(year=year, holidays=lists["holidays"], workdays=lists["workdays"], source=source, notice=notice)


def _parse_file_date(item: Any) -> date | None:
    if isinstance(item, datetime):
        return None
    if isinstance(item, date):
        return item  # YAML's own date type: an unquoted 2027-01-01
    if isinstance(item, str):
        try:
            return date.fromisoformat(item)
        except ValueError:
            return None
    return None


def load_year_overrides(directory: str | Path) -> list[YearSchedule]:
    """Read every `<year>.yaml` in `directory`; any other YAML file there is an error (likely a typo)."""
    path = Path(directory)
    if not path.is_dir():
        raise CalendarFileError(f"{path}: calendar override directory does not exist")
    schedules = []
    for file in sorted(path.iterdir()):
        if file.suffix not in (".yaml", ".yml"):
            continue  # README and the like
        match = _YEAR_FILE.match(file.name)
        if match is None:
            raise CalendarFileError(f"{file}: calendar override files must be named <year>.yaml")
        try:
            content = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CalendarFileError(f"{file}: not valid YAML: {exc}") from exc
        schedules.append(parse_year_schedule(int(match.group(1)), content, str(file)))
    return schedules
