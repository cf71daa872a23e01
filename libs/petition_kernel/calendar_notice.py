"""Reading the State Council's annual holiday notice (国务院办公厅关于XXXX年部分节假日安排的通知).

The notice is the source of `config/calendar/<year>.yaml`. Typing forty dates off it by hand is where a
year goes wrong, so `parse_notice` reads its text instead, and refuses rather than guesses: every line it
does not understand inside a numbered item, every weekday that does not match its date, every count that
does not match its range stops the import with the line quoted.

What a notice looks like (one numbered item per holiday, each one or more sentences):

    一、元旦：1月1日（周四）至3日（周六）放假调休，共3天。1月4日（周日）上班。
    二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，共9天。……
    五、端午节：6月10日放假，与周末连休。

- A days-off sentence (…放假…) names one day or a range; every day of the range is a day off, the
  Saturdays and Sundays inside it included, as the year files list them. "与周末连休" (joined with the
  weekend) adds nothing: the weekend is off anyway, and neither the notice nor `chinese_calendar` lists
  those days (checked against the library's 2014-2024 data; 2019 is its one exception).
- A make-up sentence (…上班) lists Saturdays or Sundays that are working days (调休上班).
- A sentence starting with 鼓励 is advice (e.g. to let staff off on New Year's Eve), not a day off.

Everything outside the numbered items (title, addressee, preamble, closing paragraph, signature) is read
only for the title, the document number, the year and the signing date. Full- and half-width punctuation
are equivalent; a weekday may be written 周X or 星期X.

No I/O here: `services/sla/calendar_cli.py` reads the notice and writes the year file.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from petition_kernel.calendar import YearSchedule, parse_year_schedule

__all__ = ["Notice", "NoticeError", "NoticeItem", "parse_notice"]

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_WEEKEND = (5, 6)  # date.weekday(): Saturday, Sunday
_WEEKDAY_DIGIT = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}

# After normalisation (see _normalise) brackets, colon and comma are ASCII and a sentence ends with 。.
_ITEM_NUMBER = re.compile(r"^(?:[一二三四五六七八九十]+、|\d{1,2}[.、])")
_ITEM_HEAD = re.compile(r"^(?P<names>[^:,。()\d]+):(?P<body>.*)$")
_DATE = re.compile(r"(?:(?P<year>\d{4})年)?(?:(?P<month>\d{1,2})月)?(?P<day>\d{1,2})日(?:\((?P<note>[^()]*)\))?")
_DAYS_OFF = re.compile(r"^(?P<dates>.+?)放假(?:调休|公休)?(?:(?P<count>\d+)天)?$")
_MAKEUP = re.compile(r"^(?P<dates>.+)上班$")
_TOTAL = re.compile(r"^共(?P<count>\d+)天$")
_COMPENSATORY = re.compile(r"^(?P<dates>.+)补休$")  # older notices: "1月1日放假，1月2日（星期一）补休"
_NO_EXTRA = frozenset({"不调休", "与周末连休"})
_WEEKDAY_NOTE = re.compile(r"^(?:周|星期)(?P<day>[一二三四五六日天])$")
# Lunar-calendar notes beside a date: （农历腊月二十八、周日）, （农历除夕、周二）, （除夕）, （正月初七）.
_LUNAR_NOTE = re.compile(r"^(?:农历.+|除夕|小年|初[一二三四五六七八九十]+|(?:正月|腊月).+)$")

# The title may share its line with the document number: 国务院办公厅关于…的通知（国办发明电〔2023〕7号）.
_TITLE = re.compile(r"^(?P<title>[^。]*关于(?P<year>\d{4})年[^。]*?节假日安排的通知)")
_PREAMBLE_YEAR = re.compile(r"现将(?P<year>\d{4})年")
_DOCUMENT_NUMBER = re.compile(r"国办发明电[〔\[]\d{4}[〕\]]\d+号")
_SIGNING_DATE = re.compile(r"^\(?(?P<date>\d{4}年\d{1,2}月\d{1,2}日)\)?$")
_MONTH_DAY = re.compile(r"\d{1,2}月\d{1,2}日")
_ARRANGEMENT_WORDS = ("放假", "上班", "调休", "补休")


class NoticeError(ValueError):
    """The notice cannot be read safely; the message quotes the offending line and says why."""

    def __init__(self, reason: str, line: str | None = None, lineno: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.lineno = lineno
        where = "" if line is None else f"line {lineno} 「{line}」: "
        super().__init__(f"{where}{reason}")


@dataclass(frozen=True)
class NoticeItem:
    """One numbered item: the holidays it names, its days off and its make-up working days."""

    names: tuple[str, ...]  # ("国庆节", "中秋节") for "六、国庆节、中秋节：…"
    days_off: tuple[dt.date, ...]  # sorted, weekend days inside a range included
    workdays: tuple[dt.date, ...]  # sorted make-up working days (调休上班)
    line: str  # the item as the notice has it
    lineno: int

    @property
    def label(self) -> str:
        return "、".join(self.names)


@dataclass(frozen=True)
class Notice:
    """What a notice announces for its year."""

    year: int
    title: str | None  # 国务院办公厅关于2026年部分节假日安排的通知
    number: str | None  # 国办发明电〔2023〕7号, when the text carries it
    date: str | None  # the signing date as written, 2025年11月4日
    items: tuple[NoticeItem, ...]

    @property
    def holidays(self) -> frozenset[dt.date]:
        return frozenset(d for item in self.items for d in item.days_off)

    @property
    def workdays(self) -> frozenset[dt.date]:
        return frozenset(d for item in self.items for d in item.workdays)

    @property
    def label(self) -> str | None:
        """The year file's `notice:` value: title（number，date）, or None when the text had neither."""
        details = "，".join(part for part in (self.number, self.date) if part)
        if self.title is None:
            return f"（{details}）" if details else None
        return f"{self.title}（{details}）" if details else self.title

    def schedule(self, source: str) -> YearSchedule:
        """The year as the sla service would load it from a file, validated by the same code."""
        content = {
            "notice": self.label,
            "holidays": [d.isoformat() for d in sorted(self.holidays)],
            "workdays": [d.isoformat() for d in sorted(self.workdays)],
        }
        return parse_year_schedule(self.year, content, source)


def parse_notice(text: str, year: int | None = None) -> Notice:
    """Read a notice's text; `year` overrides the year read from its title or preamble."""
    lines = [(lineno, raw.strip(), _normalise(raw)) for lineno, raw in enumerate(text.splitlines(), start=1)]
    lines = [line for line in lines if line[2]]
    title, number, signed, stated_year = _read_frame(lines)
    year = year if year is not None else stated_year
    if year is None:
        raise NoticeError(
            "no year: the text has neither a title 国务院办公厅关于XXXX年部分节假日安排的通知 nor a preamble "
            "现将XXXX年…; give the year explicitly"
        )
    items = _read_items(lines, year)
    if not items:
        raise NoticeError("no numbered items (一、… or 1. …): this does not look like the holiday notice")
    _check_across_items(items)
    return Notice(year=year, title=title, number=number, date=signed, items=tuple(items))


# -- the text around the items ----------------------------------------------------------------------


def _normalise(raw: str) -> str:
    """One spelling for the notice's punctuation, so that the patterns need to know only one.

    NFKC folds full-width digits, colon, comma and brackets to ASCII (and the half-width 、 to 、);
    spaces carry no meaning in Chinese text and are dropped; a full stop is 。 (an item number's "1." is
    read before the stops are folded, see _split_item)."""
    text = unicodedata.normalize("NFKC", raw).replace("\ufeff", "")
    return re.sub(r"\s+", "", text)


def _read_frame(lines: list[tuple[int, str, str]]) -> tuple[str | None, str | None, str | None, int | None]:
    """Title, document number, signing date and year from the lines that are not items."""
    title = number = signed = None
    title_year = preamble_year = None
    for _, _, text in lines:
        if _ITEM_NUMBER.match(text):
            continue
        if title is None and (match := _TITLE.match(text)):
            title, title_year = match["title"], int(match["year"])
        if number is None and (match := _DOCUMENT_NUMBER.search(text)):
            number = match.group(0)
        if preamble_year is None and (match := _PREAMBLE_YEAR.search(text)):
            preamble_year = int(match["year"])
        if match := _SIGNING_DATE.match(text):
            signed = match["date"]  # the last one: the signature is at the bottom
    return title, number, signed, title_year if title_year is not None else preamble_year


def _read_items(lines: list[tuple[int, str, str]], year: int) -> list[NoticeItem]:
    items = []
    for lineno, raw, text in lines:
        if _ITEM_NUMBER.match(text):
            items.append(_read_item(text, _Line(raw, lineno), year))
        elif items and _looks_like_arrangement(text):
            # An item wrapped onto a second line, or a numbering we do not know: its days would be lost.
            raise _Line(raw, lineno).error(
                "mentions days off or working days but is not a numbered item (一、… or 1. …); join it to its item"
            )
    return items


def _looks_like_arrangement(text: str) -> bool:
    return bool(_MONTH_DAY.search(text)) and any(word in text for word in _ARRANGEMENT_WORDS)


# -- one item ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """The line being read, to quote in an error."""

    raw: str
    lineno: int

    def error(self, reason: str) -> NoticeError:
        return NoticeError(reason, self.raw, self.lineno)


def _read_item(text: str, line: _Line, year: int) -> NoticeItem:
    names, sentences = _split_item(text, line)
    days_off: set[dt.date] = set()
    workdays: set[dt.date] = set()
    for sentence in sentences:
        if sentence.startswith("鼓励"):
            continue  # advice (e.g. 鼓励…安排职工在除夕休息), not a day off
        if match := _MAKEUP.match(sentence):
            workdays.update(_read_makeup_days(match["dates"], line, year))
        elif "放假" in sentence:
            days_off.update(_read_days_off(sentence, line, year))
        else:
            raise line.error(f"sentence not understood: 「{sentence}」")
    if not days_off:
        raise line.error("the item announces no days off (…放假)")
    return NoticeItem(
        names=names,
        days_off=tuple(sorted(days_off)),
        workdays=tuple(sorted(workdays)),
        line=line.raw,
        lineno=line.lineno,
    )


def _split_item(text: str, line: _Line) -> tuple[tuple[str, ...], list[str]]:
    """The holiday names before the colon, and the sentences after it."""
    head = _ITEM_HEAD.match(_ITEM_NUMBER.sub("", text, count=1))
    if head is None:
        raise line.error("expected the holiday's name and a colon after the item number, e.g. 一、元旦：…")
    names = tuple(head["names"].split("、"))
    if not all(names):
        raise line.error(f"empty holiday name in 「{head['names']}」")
    sentences = [s for s in head["body"].replace(".", "。").split("。") if s]
    if not sentences:
        raise line.error("the item says nothing after the holiday's name")
    return names, sentences


def _read_days_off(sentence: str, line: _Line, year: int) -> set[dt.date]:
    """`1月1日（周四）至3日（周六）放假调休，共3天`, `1月1日（周三）放假1天，不调休`, `6月10日放假，与周末连休`."""
    first, *rest = sentence.split(",")
    match = _DAYS_OFF.match(first)
    if match is None:
        raise line.error(f"not a day or range of days off (…至…放假): 「{first}」")
    days = _read_range(match["dates"], line, year)
    counts = [int(match["count"])] if match["count"] else []
    for clause in rest:
        if total := _TOTAL.match(clause):
            counts.append(int(total["count"]))
        elif extra := _COMPENSATORY.match(clause):
            days.extend(_read_range(extra["dates"], line, year))
        elif clause not in _NO_EXTRA:
            raise line.error(f"clause not understood: 「{clause}」 in 「{sentence}」")
    for count in counts:
        if count != len(days):
            raise line.error(f"says {count} days but {_span(days)} is {len(days)} day{'s' if len(days) > 1 else ''}")
    return set(days)


def _read_range(text: str, line: _Line, year: int) -> list[dt.date]:
    """One day, or every day from the first to the last (an omitted year or month is the first's)."""
    ends = _read_dates(text, "至", line, year)
    if len(ends) > 2:
        raise line.error(f"a range has two ends: 「{text}」")
    first, last = ends[0], ends[-1]
    if last < first:
        raise line.error(f"the range 「{text}」 ends ({last}) before it starts ({first})")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _read_makeup_days(text: str, line: _Line, year: int) -> list[dt.date]:
    """`9月28日（周日）、10月11日（周六）`: each must be a Saturday or Sunday."""
    days = _read_dates(text, "、", line, year)
    for day in days:
        if day.weekday() not in _WEEKEND:
            raise line.error(
                f"make-up working day {_cn(day)} ({day}) is a {WEEKDAYS[day.weekday()]}; "
                "a make-up working day (调休上班) is always a Saturday or Sunday"
            )
    return days


def _read_dates(text: str, separator: str, line: _Line, year: int) -> list[dt.date]:
    """Dates joined by `separator`; a date without year or month takes them from the one before it."""
    days: list[dt.date] = []
    pos = 0
    while True:
        match = _DATE.match(text, pos)
        if match is None:
            raise line.error(f"expected a date (M月D日) at 「{text[pos:]}」 in 「{text}」")
        days.append(_resolve(match, days[-1] if days else None, line, year))
        pos = match.end()
        if pos == len(text):
            return days
        if text[pos] != separator:
            raise line.error(f"not understood after {match.group(0)}: 「{text[pos:]}」")
        pos += 1


def _resolve(match: re.Match[str], previous: dt.date | None, line: _Line, year: int) -> dt.date:
    written = match.group(0).split("(")[0]  # 1月1日, without the bracket after it
    if match["month"]:
        month = int(match["month"])
    elif previous is not None:
        month = previous.month  # "1月1日至3日": the range's end is in the start's month
    else:
        raise line.error(f"{written} has no month")
    day_year = int(match["year"]) if match["year"] else (previous.year if previous else year)
    try:
        day = dt.date(day_year, month, int(match["day"]))
    except ValueError:
        raise line.error(f"{written} is not a date") from None
    if day.year != year:
        raise line.error(
            f"{written} ({day}) is not in {year}, the notice's year; it belongs in {day.year}.yaml "
            f"(from the notice for {day.year}, or by hand)"
        )
    _check_note(match["note"], day, written, line)
    return day


def _check_note(note: str | None, day: dt.date, written: str, line: _Line) -> None:
    """The bracket after a date: its weekday must be the date's; a lunar-calendar note is allowed."""
    if not note:
        return
    for part in note.split("、"):
        if weekday := _WEEKDAY_NOTE.match(part):
            stated = _WEEKDAY_DIGIT[weekday["day"]]
            if stated != day.weekday():
                raise line.error(
                    f"{written}: {day} is a {WEEKDAYS[day.weekday()]}, not {part} (wrong date or wrong weekday)"
                )
        elif not _LUNAR_NOTE.match(part):
            raise line.error(f"{written}: note 「{part}」 is neither a weekday (周X, 星期X) nor a lunar date (农历…)")


# -- the notice as a whole --------------------------------------------------------------------------


def _check_across_items(items: list[NoticeItem]) -> None:
    """A day is off under one item only, and never both off and a make-up working day."""
    off_under: dict[dt.date, NoticeItem] = {}
    for item in items:
        for day in item.days_off:
            if day in off_under:
                other = off_under[day]
                raise _line_of(item).error(f"{_cn(day)} ({day}) is already a day off under line {other.lineno}")
            off_under[day] = item
    for item in items:
        for day in item.workdays:
            if day in off_under:
                raise _line_of(item).error(
                    f"make-up working day {_cn(day)} ({day}) is also a day off "
                    f"(line {off_under[day].lineno}: {off_under[day].label})"
                )


def _line_of(item: NoticeItem) -> _Line:
    return _Line(item.line, item.lineno)


def _cn(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def _span(days: list[dt.date]) -> str:
    return _cn(days[0]) if len(days) == 1 else f"{_cn(days[0])}至{_cn(days[-1])}"
