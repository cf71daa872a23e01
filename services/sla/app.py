"""sla (督办) over HTTP: the staff API over the SLA clocks; builds the runtime, wires the service through
`bootstrap` and starts its loops (the consumer that follows the petitions, the outbox relay, the scanner)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request

from petition_common import logs, staff_api
from petition_common.auth import staff_directory
from petition_common.config import Settings
from petition_common.ownership import Ownership
from petition_common.request_schemas import RequestSchemas
from petition_common.runtime import ServiceRuntime
from petition_common.topics import INTAKE, ROUTING
from petition_common.web import ApiError, create_base_app, json_response, require_staff
from petition_kernel.times import format_time
from services.sla import reads
from services.sla.bootstrap import bootstrap
from services.sla.domain.overdue_list import OverdueFilter, decode_cursor
from services.sla.handlers import Handlers, event_handlers
from services.sla.service import NotFound

bp = Blueprint("sla", __name__)
OVERDUE_FILTERS = ("town", "grid_id", "clock", "level", "open", "limit", "cursor")


def current_handlers() -> Handlers:
    return current_app.extensions["sla_handlers"]


@bp.get("/v1/sla/petitions/<petition_id>")
def get_petition(petition_id: str) -> Response:
    staff = require_staff()
    try:
        return json_response(current_handlers()["petition"](petition_id, staff))
    except NotFound as exc:
        raise ApiError(404, "not_found", "no SLA record of this petition for this token") from exc


@bp.get("/v1/sla/petitions")
def get_petitions() -> Response:
    """Several petitions' clocks at once (reads.ClockReader)."""
    staff = require_staff()
    problems = {k: "unknown parameter" for k in request.args if k != "ids"}
    ids, problem = reads.ids_param(request.args.getlist("ids"))
    if problem:
        problems["ids"] = problem
    if problems:
        raise ApiError(400, "invalid_query", "invalid query parameters", problems)
    return json_response(current_handlers()["petitions"](ids, staff))


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
            decode_cursor(cursor)
        except ValueError:
            problems["cursor"] = "not a cursor of this endpoint"
    if problems:
        raise ApiError(400, "invalid_filter", "invalid query parameters", problems)
    flt = OverdueFilter(
        town=args.get("town") or None,
        grid_id=args.get("grid_id") or None,
        clock=clock,
        level=level,
        open=None if open_only is None else open_only == "true",
    )
    items, next_cursor, now, read_at = current_handlers()["overdue"](staff, flt, limit, cursor)
    page = {"items": items, "next_cursor": next_cursor, "as_of": format_time(now)}
    return json_response({**page, "clocks_read_at": format_time(read_at)})


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


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("sla")
    logs.configure("sla", settings.log_level, settings.kafka_log_level)
    runtime = ServiceRuntime(settings)
    consumed = [INTAKE, ROUTING]  # intake's first: its partitions say which instance scans a petition
    ownership = Ownership([settings.topic(t) for t in consumed]) if start_background else None
    parts = bootstrap(
        settings, db=runtime.db, stores=runtime.store, registry=runtime.metrics.registry, ownership=ownership
    )
    table = parts.handlers
    app = create_base_app("sla", runtime.metrics, runtime.checks())
    app.extensions.update(
        runtime=runtime,
        sla=parts.service,
        sla_handlers=table,
        sla_metrics=parts.metrics,
        tokens=staff_directory(settings),
        schemas=RequestSchemas(settings.contract_dir, "sla"),
    )
    staff_api.mount(app, runtime, bp, background=start_background)
    if start_background:
        runtime.start_consumer(consumed, event_handlers(table), batch_handler=table["batch"], ownership=ownership)
        runtime.start_relay([parts.clocks, parts.notices])
        timings = parts.timings
        scan_s = timings.scan_interval_s
        # checked twice a second, scanned every scan_s of the wall clock or of the service's clock; the
        # calendar directory is checked first thing and then every SLA_CALENDAR_CHECK_S, on the same thread
        runtime.start_periodic("sla-scan", min(0.5, scan_s), lambda: table["scan"](scan_s))
        runtime.start_periodic("sla-audit", timings.audit_interval_s, table["audit"])
    return app
