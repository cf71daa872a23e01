"""Mainland-China working-day calendar (工作日历): weekends, public holidays and make-up working days.

A day is a working day when it is a make-up working day (调休上班, a Saturday or Sunday announced as a
working day), or a Monday to Friday that is not a public holiday (法定节假日, including the bridging days
of a 放假调休 range). Which days those are is announced each year by the State Council's notice
(国务院办公厅关于XXXX年部分节假日安排的通知), usually in November of the year before.

The base data is the `chinese_calendar` library. A file `config/calendar/<year>.yaml` replaces the
library's data for that year entirely, so it can correct the library or add a year the library does not
know yet. Together these are the *official* years.

A year after the last official one is *provisional* (`provisional_schedule`): weekends plus the statutory
public holidays of the national regulation (全国年节及纪念日放假办法, as amended from 2025), with the
working-day make-up for a holiday that falls on a weekend (its 第六条: 适逢周六、周日，应当在工作日补假),
computed by the `holidays` library. It has no make-up working days (调休上班), because only the notice
says which those are. Supervision therefore never stops for want of a file, and every deadline that
counts a day of a provisional year says so (`WorkCalendar.is_provisional_span`) until the notice is
imported. A year covered by none of these (before the library's first year, or past the provisional
horizon) is refused with `YearNotCovered`: guessing "no holidays" would silently move deadlines.

`WorkCalendar` itself does no I/O; `load_year_overrides` (and `WorkCalendar.load`, which calls it) are the
only functions that read files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import chinese_calendar
import holidays as holiday_rules
import yaml
from chinese_calendar import constants as _library_data

__all__ = [
    "CalendarDirectory",
    "CalendarFileError",
    "WorkCalendar",
    "YearNotCovered",
    "YearSchedule",
    "library_schedules",
    "load_year_overrides",
    "parse_year_schedule",
    "provisional_schedule",
]

# How many years past the last official one get a provisional calendar (see WorkCalendar.load).
PROVISIONAL_YEARS_AHEAD = 2

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
    provisional: bool = False  # computed from the regulation, not taken from a notice


@dataclass(frozen=True)
class WorkCalendar:
    """Answers "is this a working day" for the covered years, and refuses other years."""

    holidays: frozenset[date]
    workdays: frozenset[date]
    sources: Mapping[int, str] = field(default_factory=dict)
    provisional_years: frozenset[int] = frozenset()

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
        provisional = frozenset(year for year, schedule in by_year.items() if schedule.provisional)
        return cls(holidays=holidays, workdays=workdays, sources=sources, provisional_years=provisional)

    @classmethod
    def from_library(cls, overrides: Iterable[YearSchedule] = ()) -> WorkCalendar:
        """The library's years, with each override replacing (or adding) its whole year."""
        return cls.from_schedules([*library_schedules(), *overrides])

    @classmethod
    def load(cls, override_dir: str | Path | None = None, *, today: date | None = None) -> WorkCalendar:
        """The library plus the `<year>.yaml` files of `override_dir` (reads files), plus provisional
        years after the last official one up to PROVISIONAL_YEARS_AHEAD years past it or past `today`,
        whichever is later (the services pass their clock's date, so a calendar never runs out)."""
        overrides = load_year_overrides(override_dir) if override_dir is not None else []
        return cls.from_library(overrides).with_provisional(through=None if today is None else today.year)

    def with_provisional(self, through: int | None = None) -> WorkCalendar:
        """This calendar plus a provisional schedule for every year without an official one, up to
        PROVISIONAL_YEARS_AHEAD years past the later of the last official year and `through`."""
        official = self.official_years()
        if not official:
            return self
        last = max(official[-1], through or official[-1])
        schedules = [self._schedule(year) for year in official]
        missing = [year for year in range(official[0], last + PROVISIONAL_YEARS_AHEAD + 1) if year not in official]
        schedules += [provisional_schedule(year) for year in missing]
        return WorkCalendar.from_schedules(schedules)

    def _schedule(self, year: int) -> YearSchedule:
        return YearSchedule(
            year=year,
            holidays=frozenset(d for d in self.holidays if d.year == year),
            workdays=frozenset(d for d in self.workdays if d.year == year),
            source=self.sources[year],
            provisional=year in self.provisional_years,
        )

    # -- queries -----------------------------------------------------------------------------

    def covered_years(self) -> tuple[int, ...]:
        return tuple(sorted(self.sources))

    def official_years(self) -> tuple[int, ...]:
        """The years whose days come from a notice (the library's data or a file), not from the regulation."""
        return tuple(year for year in sorted(self.sources) if year not in self.provisional_years)

    def is_provisional_span(self, start: date, end: date) -> bool:
        """Whether any day d with start < d <= end lies in a provisional year: a deadline counted over
        those days may still move when the year's notice is imported."""
        start, end = _as_date(start), _as_date(end)
        first = start + timedelta(days=1)
        return any(year in self.provisional_years for year in range(first.year, end.year + 1))

    def year_schedules(self) -> dict[int, YearSchedule]:
        """Every covered year's schedule (to store, and to compare with a later calendar)."""
        return {year: self._schedule(year) for year in self.covered_years()}

    def revision(self, since: int | None = None) -> str:
        """A digest of the days and provisional marks of the covered years (from `since` on): two
        calendars that count every deadline alike have the same revision."""
        digest = hashlib.sha256()
        for year, schedule in self.year_schedules().items():
            if since is not None and year < since:
                continue
            digest.update(f"{year}|{int(schedule.provisional)}|".encode())
            digest.update(",".join(sorted(d.isoformat() for d in schedule.holidays)).encode() + b"|")
            digest.update(",".join(sorted(d.isoformat() for d in schedule.workdays)).encode() + b";")
        return digest.hexdigest()[:16]

    @cached_property
    def fingerprint(self) -> str:
        """`revision()` of every covered year, computed once per calendar (documents are stamped with it)."""
        return self.revision()

    def to_doc(self, since: int) -> dict[str, Any]:
        """The years from `since` on as a JSON/BSON-ready dict (the sla service stores the calendar its
        deadlines were derived with, to tell after a restart what a new calendar changes)."""
        return {
            "revision": self.revision(since),
            "since": since,
            "years": {
                str(year): {
                    "holidays": sorted(d.isoformat() for d in s.holidays),
                    "workdays": sorted(d.isoformat() for d in s.workdays),
                    "provisional": s.provisional,
                    "source": s.source,
                }
                for year, s in self.year_schedules().items()
                if year >= since
            },
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> WorkCalendar:
        """The calendar `to_doc` stored (only its years)."""
        return cls.from_schedules(
            YearSchedule(
                year=int(year),
                holidays=frozenset(date.fromisoformat(d) for d in raw["holidays"]),
                workdays=frozenset(date.fromisoformat(d) for d in raw["workdays"]),
                source=raw.get("source", "stored"),
                provisional=bool(raw.get("provisional")),
            )
            for year, raw in doc["years"].items()
        )

    def changed_years(self, other: WorkCalendar) -> tuple[int, ...]:
        """The years both calendars cover whose days off, make-up days or provisional flag differ."""
        mine, theirs = self.year_schedules(), other.year_schedules()
        return tuple(
            year
            for year in sorted(set(mine) & set(theirs))
            if (mine[year].holidays, mine[year].workdays, mine[year].provisional)
            != (theirs[year].holidays, theirs[year].workdays, theirs[year].provisional)
        )

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

    @cached_property
    def _added(self) -> dict[tuple[date, int], date]:
        """The answers of `add_working_days` so far: each projection of a petition asks again for its
        start (a calendar never changes; a new one starts empty). A few per day of the covered years."""
        return {}

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day strictly after `d` (n >= 1); `d` itself never counts."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        start = _as_date(d)
        known = self._added.get((start, n))
        if known is not None:
            return known
        day, remaining = start, n
        while remaining:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        self._added[start, n] = day
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


# -- provisional years ---------------------------------------------------------------------------

# The `holidays` library names the make-up days it knows from past notices "Day off (substituted from …)";
# a provisional year must not contain any (a notice decides them), so they are left out should the library
# ever know some for a year that has no file here.
_SUBSTITUTED = "Day off (substituted"


def provisional_schedule(year: int) -> YearSchedule:
    """Weekends plus the statutory holidays of the amended regulation (New Year's Day 1, Spring Festival 4
    with the eve, Qingming 1, Labour Day 2, Dragon Boat 1, Mid-Autumn 1, National Day 3), with a
    weekday off for one that falls on a weekend; no make-up working days."""
    rules = holiday_rules.country_holidays("CN", years=year, categories=("public",))
    days = frozenset(d for d, name in rules.items() if d.year == year and not name.startswith(_SUBSTITUTED))
    version = getattr(holiday_rules, "__version__", "?")
    return YearSchedule(
        year=year,
        holidays=days,
        workdays=frozenset(),
        source=f"provisional (holidays {version}: 全国年节及纪念日放假办法, no notice yet)",
        provisional=True,
    )


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


class CalendarDirectory:
    """The calendar of an override directory, loaded again when its files change (or when the year
    turns, which moves the provisional horizon): an operator adds next year's file without a restart."""

    def __init__(self, directory: str | Path | None, today: Callable[[], date]):
        self.directory = Path(directory) if directory is not None else None
        self.today = today
        self._fingerprint = self._read_fingerprint()
        self.calendar = WorkCalendar.load(self.directory, today=today())

    def _read_fingerprint(self) -> tuple[Any, ...]:
        year = self.today().year
        if self.directory is None or not self.directory.is_dir():
            return (year,)
        files = sorted(f for f in self.directory.iterdir() if f.suffix in (".yaml", ".yml"))
        return (year, *((f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files))

    def refresh(self) -> WorkCalendar | None:
        """The new calendar if the files (or the year) changed since the last load, else None.

        Raises CalendarFileError for a malformed file; the calendar in use stays as it was.
        """
        fingerprint = self._read_fingerprint()
        if fingerprint == self._fingerprint:
            return None
        calendar = WorkCalendar.load(self.directory, today=self.today())
        self._fingerprint = fingerprint
        if calendar == self.calendar:
            return None
        self.calendar = calendar
        return calendar
