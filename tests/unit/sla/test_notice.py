"""Reading the State Council's holiday notice, and `petitions-calendar import`.

notices/2024.txt, 2025.txt and 2026.txt carry the real notices' numbered items word for word (2026's as
config/calendar/2026.yaml quotes them); title, addressee, preamble, closing paragraph and signature follow
the notices' standard form. 2024 and 2025 are checked against `chinese_calendar` 1.11.0: for "X日放假，与周末
连休" the library lists only the named day, as the notice does, so the sets are equal, not just the
working days they imply.
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
from chinese_calendar import constants as library_data

from petition_kernel.calendar import WorkCalendar, load_year_overrides
from petition_kernel.calendar_notice import Notice, NoticeError, parse_notice
from services.sla.calendar_cli import DEFAULT_DIR, main

from .helpers import CALENDAR_DIR

NOTICES = Path(__file__).resolve().parent / "notices"
D = date.fromisoformat


def _read(year: int) -> str:
    return (NOTICES / f"{year}.txt").read_text(encoding="utf-8")


def _notice(*items: str, title_year: int | None = 2027) -> str:
    """A notice in the standard form around the given item lines."""
    title = [] if title_year is None else [f"国务院办公厅关于{title_year}年部分节假日安排的通知", ""]
    return "\n".join(
        [
            *title,
            "各省、自治区、直辖市人民政府，国务院各部委、各直属机构：",
            "经国务院批准，现将元旦、春节放假调休日期的具体安排通知如下。",
            *items,
            "节假日期间，各地区、各部门要妥善安排好值班和安全、保卫等工作。",
            "国务院办公厅",
            "2026年11月3日",
        ]
    )


# 2027-01-01 is a Friday; 除夕 is 2027-02-05, a Friday.
NEW_YEAR_2027 = "一、元旦：1月1日（周五）至3日（周日）放假，共3天。"


# -- the real notices -------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2024, 2025])
def test_notice_matches_chinese_calendar(year: int) -> None:
    notice = parse_notice(_read(year))
    assert notice.year == year
    assert notice.holidays == {d for d in library_data.holidays if d.year == year}
    assert notice.workdays == {d for d in library_data.workdays if d.year == year}


def test_2026_notice_matches_the_year_file() -> None:
    (shipped,) = [s for s in load_year_overrides(CALENDAR_DIR) if s.year == 2026]
    notice = parse_notice(_read(2026))
    assert (notice.holidays, notice.workdays) == (shipped.holidays, shipped.workdays)
    assert notice.label == shipped.notice


def test_title_number_date_and_items_are_read() -> None:
    notice = parse_notice(_read(2025))
    assert notice.title == "国务院办公厅关于2025年部分节假日安排的通知"
    assert notice.number == "国办发明电〔2024〕12号"
    assert notice.date == "2024年11月12日"
    assert [item.label for item in notice.items] == ["元旦", "春节", "清明节", "劳动节", "端午节", "国庆节、中秋节"]
    national_day = notice.items[-1]
    assert national_day.names == ("国庆节", "中秋节")
    assert national_day.days_off == tuple(D(f"2025-10-{d:02}") for d in range(1, 9))
    assert national_day.workdays == (D("2025-09-28"), D("2025-10-11"))
    assert national_day.line.startswith("六、国庆节、中秋节：10月1日（周三）至8日（周三）")


def test_single_days_and_advice_2024() -> None:
    notice = parse_notice(_read(2024))
    by_name = {item.label: item for item in notice.items}
    assert by_name["元旦"].days_off == (D("2024-01-01"),)  # 1月1日放假，与周末连休
    assert by_name["端午节"].days_off == (D("2024-06-10"),)
    assert D("2024-02-09") not in notice.holidays  # 鼓励…安排职工在除夕（2月9日）休息: advice only
    assert notice.date == "2023年10月25日"


def test_range_across_months_includes_the_weekend() -> None:
    notice = parse_notice(_read(2025))
    dragon_boat = notice.items[4]
    assert dragon_boat.days_off == (D("2025-05-31"), D("2025-06-01"), D("2025-06-02"))


def test_schedule_loads_like_a_year_file() -> None:
    schedule = parse_notice(_read(2026)).schedule("notice")
    calendar = WorkCalendar.from_schedules([schedule])
    assert not calendar.is_working_day(D("2026-02-23"))
    assert calendar.is_working_day(D("2026-02-28"))


def _half_width(text: str) -> str:
    """The same notice typed with ASCII punctuation, 星期X for 周X and 1. for 一、."""
    text = re.sub(r"^([一二三四五六七])、", lambda m: f"{'一二三四五六七'.index(m[1]) + 1}. ", text, flags=re.MULTILINE)
    for full, half in {
        "（周": "(星期",
        "、周": "、星期",
        "：": ": ",
        "，": ", ",
        "。": ". ",
        "（": "(",
        "）": ")",
    }.items():
        text = text.replace(full, half)
    return text


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_half_width_punctuation_reads_the_same(year: int) -> None:
    text = _half_width(_read(year))
    assert "(星期" in text and "1. 元旦: " in text and "：" not in text
    full, half = parse_notice(_read(year)), parse_notice(text)
    assert (half.year, half.holidays, half.workdays) == (full.year, full.holidays, full.workdays)


def test_year_from_the_preamble_or_the_argument() -> None:
    without_title = _notice(NEW_YEAR_2027, title_year=None).replace("现将", "现将2027年")
    assert parse_notice(without_title).year == 2027
    assert parse_notice(_notice(NEW_YEAR_2027, title_year=None), year=2027).year == 2027
    # year= wins over the title: a title with a typo can still be imported.
    assert parse_notice(_notice(NEW_YEAR_2027, title_year=2072), year=2027).year == 2027


def test_title_on_one_line_with_the_document_number() -> None:
    text = _read(2024).replace("的通知\n国办发明电〔2023〕7号", "的通知（国办发明电〔2023〕7号）")
    notice = parse_notice(text)
    assert (notice.title, notice.number) == ("国务院办公厅关于2024年部分节假日安排的通知", "国办发明电〔2023〕7号")


def test_explicit_years_and_single_days() -> None:
    notice = parse_notice(
        _notice(
            "一、元旦：2027年1月1日（星期五）放假，与周末连休。",
            "二、春节：2月5日（农历除夕、周五）至2月12日（农历正月初七、周五）放假调休，共8天。2月20日（周六）上班。",
            "三、国庆节：10月1日（周五）至7日（周四）放假调休，共7天。9月26日（周日）、10月9日（周六）上班。",
            "四、其他：12月31日（周五）放假1天，不调休。",
        )
    )
    assert D("2027-01-01") in notice.holidays and D("2027-12-31") in notice.holidays
    assert len(notice.holidays) == 1 + 8 + 7 + 1
    assert notice.workdays == {D("2027-02-20"), D("2027-09-26"), D("2027-10-09")}


# -- refusals ---------------------------------------------------------------------------------------


BAD_ITEMS = {
    "wrong weekday": ("三、清明节：4月5日（周六）至7日（周三）放假，共3天。", "is a 周一, not 周六"),
    "count mismatch": (
        "三、清明节：4月3日（周六）至5日（周一）放假，共4天。",
        "says 4 days but 4月3日至4月5日 is 3 days",
    ),
    "放假N天 mismatch": ("三、清明节：4月5日（周一）放假2天，不调休。", "says 2 days but 4月5日 is 1 day"),
    "make-up day on a weekday": ("三、清明节：4月3日至5日放假调休，共3天。4月7日（周三）上班。", "is a 周三"),
    "make-up day also off": ("三、清明节：4月3日至5日放假调休，共3天。4月3日（周六）上班。", "is also a day off"),
    "sentence not understood": ("三、清明节：4月3日至5日放假，共3天。请各单位遵照执行。", "sentence not understood"),
    "clause not understood": ("三、清明节：4月3日至5日放假，共3天，另行通知。", "clause not understood"),
    "date in the year before": (
        "三、元旦：2026年12月31日至2027年1月1日放假，共2天。",
        "is not in 2027, the notice's year; it belongs in 2026.yaml",
    ),
    "date in the year after": ("三、元旦：2028年1月1日放假。", "belongs in 2028.yaml"),
    "range backwards": ("三、元旦：12月31日至1月1日放假，共2天。", "ends (2027-01-01) before it starts"),
    "no month": ("三、清明节：3日至5日放假，共3天。", "has no month"),
    "not a date": ("三、清明节：2月30日放假。", "is not a date"),
    "unknown note": ("三、清明节：4月5日（清明节）放假。", "neither a weekday"),
    "no colon": ("三、清明节4月5日放假。", "expected the holiday's name and a colon"),
    "no days off": ("三、清明节：4月3日（周六）上班。", "announces no days off"),
}


@pytest.mark.parametrize(("line", "reason"), BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_malformed_item_is_refused_with_the_line_quoted(line: str, reason: str) -> None:
    with pytest.raises(NoticeError) as info:
        parse_notice(_notice(NEW_YEAR_2027, line))
    assert info.value.line == line
    assert f"「{line}」" in str(info.value)
    assert reason in str(info.value)


def test_half_width_item_is_quoted_as_written() -> None:
    line = "2. 清明节: 4月5日(星期六)放假, 不调休."
    with pytest.raises(NoticeError, match=r"line \d+ 「2\. 清明节: 4月5日\(星期六\)放假, 不调休\.」") as info:
        parse_notice(_notice(NEW_YEAR_2027, line))
    assert "is a 周一, not 星期六" in str(info.value)


def test_day_off_under_two_items_is_refused() -> None:
    with pytest.raises(NoticeError, match="already a day off under line"):
        parse_notice(_notice(NEW_YEAR_2027, "二、其他：1月3日（周日）放假。"))


def test_unnumbered_line_with_days_after_the_items_is_refused() -> None:
    # An item wrapped onto a second line would otherwise lose its make-up day silently.
    with pytest.raises(NoticeError, match="not a numbered item") as info:
        parse_notice(_notice("一、春节：2月5日至12日放假调休，共8天。", "2月20日（周六）上班。"))
    assert info.value.line == "2月20日（周六）上班。"


def test_no_year_is_refused() -> None:
    with pytest.raises(NoticeError, match="no year"):
        parse_notice(_notice(NEW_YEAR_2027, title_year=None))


def test_no_items_is_refused() -> None:
    with pytest.raises(NoticeError, match="no numbered items"):
        parse_notice(_notice())


# -- petitions-calendar import ----------------------------------------------------------------------


def test_default_dir_is_the_services_calendar_dir() -> None:
    assert DEFAULT_DIR == CALENDAR_DIR


def test_import_writes_a_file_the_service_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notice_file = NOTICES / "2025.txt"
    assert main(["import", str(notice_file), "--dir", str(tmp_path)]) == 0
    (schedule,) = load_year_overrides(tmp_path)
    expected: Notice = parse_notice(_read(2025))
    assert (schedule.year, schedule.holidays, schedule.workdays) == (2025, expected.holidays, expected.workdays)
    assert schedule.notice == "国务院办公厅关于2025年部分节假日安排的通知（国办发明电〔2024〕12号，2024年11月12日）"
    written = (tmp_path / "2025.yaml").read_text(encoding="utf-8")
    assert "  # 六、国庆节、中秋节：10月1日（周三）至8日（周三）放假调休，共8天。" in written
    assert "  - 2025-10-11  # 国庆节、中秋节：10月11日（周六）上班" in written
    out = capsys.readouterr().out
    assert "国庆节、中秋节\n  days off (8): 2025-10-01 周三, 2025-10-02 周四" in out
    assert "make-up working days: 2025-09-28 周日, 2025-10-11 周六" in out
    assert "wrote" in out


def test_import_2026_reproduces_the_shipped_year(tmp_path: Path) -> None:
    assert main(["import", str(NOTICES / "2026.txt"), "--dir", str(tmp_path)]) == 0
    (written,) = load_year_overrides(tmp_path)
    (shipped,) = [s for s in load_year_overrides(CALENDAR_DIR) if s.year == 2026]
    assert (written.holidays, written.workdays, written.notice) == (shipped.holidays, shipped.workdays, shipped.notice)


def test_import_refuses_to_overwrite_a_differing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "2025.yaml"
    target.write_text("holidays: [2025-01-01]\nworkdays: []\n", encoding="utf-8")
    assert main(["import", str(NOTICES / "2025.txt"), "--dir", str(tmp_path)]) == 1
    assert target.read_text(encoding="utf-8") == "holidays: [2025-01-01]\nworkdays: []\n"
    err = capsys.readouterr().err
    assert "exists and differs" in err and "day off +2025-01-28" in err and "--force" in err

    assert main(["import", str(NOTICES / "2025.txt"), "--dir", str(tmp_path), "--force"]) == 0
    (schedule,) = load_year_overrides(tmp_path)
    assert D("2025-01-28") in schedule.holidays


def test_import_of_the_same_notice_again_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(NOTICES / "2024.txt"), "--dir", str(tmp_path)]) == 0
    assert main(["import", str(NOTICES / "2024.txt"), "--dir", str(tmp_path)]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_import_reads_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(_read(2026)))
    assert main(["import", "-", "--dir", str(tmp_path)]) == 0
    assert [s.year for s in load_year_overrides(tmp_path)] == [2026]


def test_import_of_a_bad_notice_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notice.txt"
    line = "三、清明节：4月5日（周六）至7日（周三）放假，共3天。"
    bad.write_text(_notice(NEW_YEAR_2027, line), encoding="utf-8")
    assert main(["import", str(bad), "--dir", str(tmp_path)]) == 2
    assert f"「{line}」" in capsys.readouterr().err
    assert not (tmp_path / "2027.yaml").exists()


def test_dry_run_prints_the_file_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(NOTICES / "2026.txt"), "--dir", str(tmp_path), "--dry-run"]) == 0
    assert "notice: 国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_year_option_and_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    untitled = tmp_path / "untitled.txt"
    untitled.write_text(_notice(NEW_YEAR_2027, title_year=None), encoding="utf-8")
    assert main(["import", str(untitled), "--dir", str(tmp_path)]) == 2
    assert main(["import", str(untitled), "--dir", str(tmp_path), "--year", "2027"]) == 0
    assert [s.year for s in load_year_overrides(tmp_path)] == [2027]
    assert main(["import", str(untitled), "--dir", str(tmp_path / "missing"), "--year", "2027"]) == 1
    assert "no such directory" in capsys.readouterr().err
