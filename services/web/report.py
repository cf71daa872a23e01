"""The monthly report (诉求办理情况月报) as an Excel workbook: the period's summary, the rankings of towns
and villages with their Wilson intervals, the categories, the hotspot alerts. Pure: data in, bytes out."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

TITLE = Font(size=16, bold=True)
HEAD = Font(bold=True, color="FFFFFF")
HEAD_FILL = PatternFill("solid", fgColor="0B4A8B")
THIN = Side(style="thin", color="999999")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
PCT = "0.0%"


def _last_day(to: str) -> str:
    """The period's last day as people write it (the API's `to` is exclusive)."""
    try:
        return (date.fromisoformat(to) - timedelta(days=1)).isoformat()
    except ValueError:
        return to


def _table(ws: Worksheet, row: int, headers: list[str], rows: list[list[Any]], formats: Mapping[int, str]) -> int:
    for col, text in enumerate(headers, 1):
        cell = ws.cell(row=row, column=col, value=text)
        cell.font, cell.fill, cell.border = HEAD, HEAD_FILL, BOX
        cell.alignment = Alignment(horizontal="center")
    for values in rows:
        row += 1
        for col, value in enumerate(values, 1):
            cell = ws.cell(row=row, column=col, value=value)
            cell.border = BOX
            if col in formats:
                cell.number_format = formats[col]
    return row + 2


def monthly_report(
    data: Mapping[str, Any],
    period: Mapping[str, str],
    metric_label: str,
    definitions: Mapping[str, tuple[str, str]],
    scope: str = "全县",
    categories: Mapping[str, str] | None = None,
) -> bytes:
    categories = categories or {}
    book = Workbook()
    ws = book.active
    ws.title = "月报"
    ws["A1"] = "诉求办理情况月报"
    ws["A1"].font = TITLE
    last = _last_day(period["to"]) if "to" in period else "最新"
    ws["A2"] = f"统计期间：{period.get('from', '最早')} 至 {last}（按受理日期）　范围：{scope}"
    s = data["summary"]
    rates = s["rates"]
    row = 4
    ws.cell(row=row, column=1, value="一、总体情况").font = Font(bold=True)
    row = _table(
        ws,
        row + 1,
        ["受理", "办结", "办结率", "及时联系率", "及时答复率", "满意率", "评价数"],
        [[s["accepted"], s["closed"], rates["closure_rate"], rates["contacted_on_time_rate"],
          rates["replied_on_time_rate"], rates["satisfaction_rate"], s["feedback"]["count"]]],
        {3: PCT, 4: PCT, 5: PCT, 6: PCT},
    )  # fmt: skip
    sections = (("二、镇街排名", data["towns"], False), ("三、村（社区）排名", data["villages"], True))
    for title, items, with_town in sections:
        ws.cell(row=row, column=1, value=f"{title}（{metric_label}，按 95% Wilson 区间下限）").font = Font(bold=True)
        town = ["所属镇街"] if with_town else []
        headers = ["名次", "名称", *town, "样本数", "达标数", metric_label, "区间下限", "区间上限"]
        rows = [
            [r["rank"], r["name"], *([r.get("town")] if with_town else []), r["count"], r["successes"],
             r["rate"], r["ci_low"], r["ci_high"]]
            for r in items
        ]  # fmt: skip
        first_rate = 6 if with_town else 5
        row = _table(ws, row + 1, headers, rows, {first_rate: PCT, first_rate + 1: PCT, first_rate + 2: PCT})
    ws.cell(row=row, column=1, value="四、诉求类别").font = Font(bold=True)
    cats = [
        [c["name"] or c["key"], c["accepted"], c["closed"], c["rates"]["satisfaction_rate"]] for c in data["categories"]
    ]
    row = _table(ws, row + 1, ["类别", "受理", "办结", "满意率"], cats, {4: PCT})
    ws.cell(row=row, column=1, value="五、热点预警").font = Font(bold=True)
    kinds = {"concentrated": "聚集", "emerging": "新发"}
    alerts = [
        [a["area"]["name"], kinds.get(a["kind"], a["kind"]), categories.get(a["category"], a["category"]),
         a["count"], a["window_start"], a["window_end"]]
        for a in data["alerts"]
    ]  # fmt: skip
    row = _table(ws, row + 1, ["区域", "类型", "类别", "件数", "窗口开始", "窗口结束"], alerts, {})
    ws.cell(row=row, column=1, value="统计口径").font = Font(bold=True)
    for label, text in definitions.values():
        row += 1
        ws.cell(row=row, column=1, value=label)
        ws.cell(row=row, column=2, value=text)
    for col, width in enumerate((14, 28, 14, 12, 12, 12, 12, 12), 1):
        ws.column_dimensions[get_column_letter(col)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
