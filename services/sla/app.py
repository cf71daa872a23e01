"""sla (督办): the staff API over the SLA clocks, the consumer that follows the petitions, and the scanner."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request

from petition_common import audit_http, logs, ratelimit
from petition_common.auth import staff_directory
from petition_common.config import Settings
from petition_common.request_schemas import RequestSchemas
from petition_common.runtime import ServiceRuntime
from petition_common.timesource import Clock, clock_from_env
from petition_common.topics import INTAKE, ROUTING
from petition_common.web import ApiError, create_base_app, json_response, mount_metrics, require_staff
from petition_kernel.calendar import CalendarDirectory
from petition_kernel.sla.policy import load_policy
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import format_time, local_date
from services.sla import views
from services.sla.metrics import SlaMetrics
from services.sla.service import NotFound, SlaConfig, SlaService

bp = Blueprint("sla", __name__)
OVERDUE_FILTERS = ("town", "grid_id", "clock", "level", "open", "limit", "cursor")


def _service() -> SlaService:
    return current_app.extensions["sla"]


@bp.get("/v1/sla/petitions/<petition_id>")
def get_petition(petition_id: str) -> Response:
    staff = require_staff()
    try:
        return json_response(_service().petition(petition_id, staff))
    except NotFound as exc:
        raise ApiError(404, "not_found", "no SLA record of this petition for this token") from exc


@bp.get("/v1/sla/overdue")
def list_overdue() -> Response:
    staff = require_staff()
    args = request.args
    problems = {k: "unknown filter" for k in args if k not in OVERDUE_FILTERS}
    if problems:
        raise ApiError(400, "invalid_filter", "unknown query parameters", problems)
    # the document's types and bounds (a town's length, a grid id's), then this endpoint's own words
    problems = current_app.extensions["schemas"].query_errors("/v1/sla/overdue", "get", args)
    clock = args.get("clock") or None
    if clock is not None and clock not in ("contact", "reply"):
        problems["clock"] = "must be contact or reply"
    level = _int(args.get("level"), "level", 1, 3, problems)
    limit = _int(args.get("limit"), "limit", 1, 500, problems) or 100
    open_only = args.get("open")
    if open_only is not None and open_only not in ("true", "false"):
        problems["open"] = "must be true or false"
    cursor = args.get("cursor") or None
    if cursor is not None:
        try:
            views.decode_cursor(cursor)
        except ValueError:
            problems["cursor"] = "not a cursor of this endpoint"
    if problems:
        raise ApiError(400, "invalid_filter", "invalid query parameters", problems)
    flt = views.OverdueFilter(
        town=args.get("town") or None,
        grid_id=args.get("grid_id") or None,
        clock=clock,
        level=level,
        open=None if open_only is None else open_only == "true",
    )
    items, next_cursor, now = _service().overdue(staff, flt, limit, cursor)
    return json_response({"items": items, "next_cursor": next_cursor, "as_of": format_time(now)})


def _int(raw: str | None, name: str, low: int, high: int, problems: dict[str, str]) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems[name] = f"must be a whole number from {low} to {high}"
        return None
    return value


def calendar_dir(settings: Settings) -> Path:
    """The calendar's year files: SLA_CALENDAR_DIR, else CALENDAR_DIR (shared with stats)."""
    return Path(settings.extra.get("SLA_CALENDAR_DIR", str(settings.calendar_dir)))


def calendar_files(settings: Settings, clock: Clock) -> CalendarDirectory:
    """The calendar directory, reloaded when its files change; raises CalendarFileError (the service
    refuses to start) on a malformed file."""
    return CalendarDirectory(calendar_dir(settings), today=lambda: local_date(clock()))


def load_config(settings: Settings, calendar: CalendarDirectory) -> SlaConfig:
    """Policy and calendar from the files; raises (the service refuses to start) naming the bad key."""
    extra = settings.extra
    policy_file = Path(extra.get("SLA_POLICY_FILE", str(settings.config_dir / "sla-policy.yaml")))
    policy = load_policy(policy_file, frozenset(load_categories(settings.config_dir / "categories.yaml")))
    return SlaConfig(
        policy=policy,
        calendar=calendar.calendar,
        keep_breached=timedelta(hours=float(extra.get("SLA_KEEP_BREACHED_HOURS", 24 * 7))),
    )


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("sla")
    logs.configure("sla", settings.log_level)
    clock = clock_from_env("sla", settings.extra)
    calendar = calendar_files(settings, clock)
    config = load_config(settings, calendar)
    runtime = ServiceRuntime(settings)
    metrics = SlaMetrics(runtime.metrics.registry)
    clocks = runtime.store("clocks")
    notices = runtime.store("notices")
    calendar_check_s = float(settings.extra.get("SLA_CALENDAR_CHECK_S", 60))
    service = SlaService(runtime.db, clocks, notices, config, metrics, clock, calendar, calendar_check_s)
    app = create_base_app("sla", runtime.metrics, runtime.checks())
    app.extensions.update(
        runtime=runtime,
        sla=service,
        sla_metrics=metrics,
        tokens=staff_directory(settings),
        schemas=RequestSchemas(settings.contract_dir, "sla"),
    )
    app.register_blueprint(bp)
    audit_http.install(app, runtime)
    routes = {**ratelimit.staff_routes(app, bp.name), **audit_http.RATE_LIMITS}
    ratelimit.install(app, runtime, routes, background=start_background)
    mount_metrics(app, runtime.metrics)
    if start_background:
        runtime.start_consumer([INTAKE, ROUTING], service.handlers, batch_handler=service.on_events)
        runtime.start_relay([clocks, notices])
        scan_s = float(settings.extra.get("SLA_SCAN_INTERVAL_S", 30))
        # checked twice a second, scanned every scan_s of the wall clock or of the service's clock; the
        # calendar directory is checked first thing and then every SLA_CALENDAR_CHECK_S, on the same thread
        runtime.start_periodic("sla-scan", min(0.5, scan_s), lambda: service.scan_when_due(scan_s))
        runtime.start_periodic("sla-audit", float(settings.extra.get("SLA_AUDIT_INTERVAL_S", 600)), service.audit)
    return app
