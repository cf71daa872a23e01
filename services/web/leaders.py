"""The leaders' view (领导视图): a period's figures, rankings with their Wilson intervals, trends,
categories and hotspot alerts, as charts (ECharts from npm) and as the monthly report (Excel).

Every figure is the stats API's answer for the same period with the staff member's own token, so a
town supervisor sees their town and the county roles the county (stats scopes the answers).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request

from services.web import report
from services.web.backends import current_backends
from services.web.emap import named_alerts, period_args
from services.web.staff import staff_required

bp = Blueprint("leaders", __name__, url_prefix="/staff/leaders")
RANK_METRICS = {"satisfaction_rate": "满意率", "closure_rate": "办结率", "response_rate": "响应率（及时联系率）"}
INTERVALS = {"day": "日", "week": "周", "month": "月"}

# the 三率 and the counts, as CONTRACT.md and docs/statistics.md define them (one click away on the page)
DEFINITIONS = {
    "accepted": ("受理", "期间内提交且未被判定为无效的诉求（按提交时间，北京时间自然日；重复件不计）。"),
    "closed": ("办结", "期间内受理、已有 petition.closed 的诉求。"),
    "closure_rate": ("办结率", "办结 ÷ 受理。"),
    "contacted_on_time_rate": (
        "及时联系率（响应率）",
        "首次联系在联系时限内（默认 6 小时；紧急 2 小时，水电气 24 小时）的诉求 ÷ 受理。",
    ),
    "replied_on_time_rate": (
        "及时答复率",
        "首次答复在答复时限内（受理次日起第 5 个工作日 24:00，计入暂停顺延）的诉求 ÷ 受理。",
    ),
    "satisfaction_rate": ("满意率", "（满意 + 基本满意）÷ 有评价的诉求（取最近一次评价）。"),
}
RATES = ("closure_rate", "contacted_on_time_rate", "replied_on_time_rate", "satisfaction_rate")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _get(path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    answer = current_backends().get("stats", path, token=g.me.token, params=params)
    if answer.status == 400:
        raise InvalidPeriod(answer.fields)
    return answer.body if answer.ok else None


class InvalidPeriod(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__(fields)
        self.fields = fields


def gather(period: dict[str, str], metric: str, interval: str) -> dict[str, Any]:
    """Everything the page and the report show, straight from the stats API."""
    summary = _get("/v1/stats/summary", period)
    towns = _get("/v1/stats/ranking", {**period, "level": "town", "metric": metric})
    villages = _get("/v1/stats/ranking", {**period, "level": "village", "metric": metric})
    series = _get("/v1/stats/timeseries", {**period, "interval": interval})
    categories = _get("/v1/stats/breakdown", {**period, "by": "category"})
    alerts = _get("/v1/alerts", {**period, "limit": 50})
    cmap = current_app.extensions["county_map"].get(g.me.token)
    alert_items = (alerts or {}).get("items", [])
    return {
        "summary": summary,
        "towns": (towns or {}).get("items", []),
        "villages": (villages or {}).get("items", []),
        "definition": (towns or {}).get("definition"),
        "series": (series or {}).get("points", []),
        "categories": [c for c in (categories or {}).get("items", []) if c.get("key")],
        "alerts": named_alerts(cmap, alert_items) if cmap else alert_items,
    }


def _choices() -> tuple[str, str]:
    metric = request.args.get("metric", "satisfaction_rate")
    interval = request.args.get("interval", "month")
    return (metric if metric in RANK_METRICS else "satisfaction_rate", interval if interval in INTERVALS else "month")


@bp.get("")
@staff_required("stats")
def page() -> Any:
    period = period_args()
    metric, interval = _choices()
    try:
        data = gather(period, metric, interval)
    except InvalidPeriod as exc:
        return render_template("leaders.html", errors=exc.fields, period=period, metric=metric, interval=interval,
                               data=None, metrics=RANK_METRICS, intervals=INTERVALS), 400  # fmt: skip
    chart = {
        "towns": [_rank_row(r) for r in data["towns"]],
        "villages": [_rank_row(r) for r in data["villages"][:30]],
        "metric": RANK_METRICS[metric],
        "series": [
            {"start": p["start"], "accepted": p["accepted"], "closed": p["closed"], **{k: p["rates"][k] for k in RATES}}
            for p in data["series"]
        ],
        "categories": [{"name": c["name"] or c["key"], "accepted": c["accepted"]} for c in data["categories"]],
    }
    return render_template(
        "leaders.html",
        errors={},
        period=period,
        metric=metric,
        interval=interval,
        data=data,
        chart=chart,
        metrics=RANK_METRICS,
        intervals=INTERVALS,
        definitions=DEFINITIONS,
        rates=RATES,
        percent=percent,
    )


def _rank_row(r: dict[str, Any]) -> dict[str, Any]:
    name = f"{r['name']}（{r['town']}）" if r.get("town") else r["name"]
    return {"name": name, "rate": r["rate"], "low": r["ci_low"], "high": r["ci_high"], "n": r["count"]}


@bp.get("/definitions")
@staff_required()
def definitions() -> str:
    return render_template("leaders_definitions.html", definitions=DEFINITIONS)


@bp.get("/report.xlsx")
@staff_required("stats")
def export_report() -> Response:
    period = period_args()
    metric, interval = _choices()
    try:
        data = gather(period, metric, interval)
    except InvalidPeriod:
        abort(400)
    if data["summary"] is None:
        abort(503)
    names = {code: c.name for code, c in current_app.extensions["categories"].items()}
    body = report.monthly_report(data, period, RANK_METRICS[metric], DEFINITIONS, scope=g.me.area, categories=names)
    name = f"petitions-report-{period.get('from', 'start')}-{period.get('to', 'now')}.xlsx"
    return Response(
        body,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def install(app: Any) -> None:
    app.register_blueprint(bp)
