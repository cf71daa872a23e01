"""routing (派单) over HTTP: grid registry import, work orders for staff; and the loops that route petitions.

Only translation: a request becomes a call of a handler (handlers.py) or a query of the service, its
result or domain error a response. bootstrap.py wires the service; this starts its consumer, outbox
relay and timeout scanner on the process's runtime.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from petition_common import audit_http, logs, staff_api
from petition_common.auth import staff_directory
from petition_common.config import Settings
from petition_common.contract import SchemaViolation
from petition_common.request_schemas import RequestSchemas
from petition_common.runtime import ServiceRuntime
from petition_common.topics import INTAKE
from petition_common.web import (
    ApiError,
    body_limit,
    create_base_app,
    json_response,
    read_json_object,
    require_staff,
    validated,
)
from petition_kernel import petition_ids
from petition_kernel.access import Area, may_manage_registry, may_read, may_read_registry
from services.routing import domain
from services.routing.bootstrap import RoutingParts, bootstrap
from services.routing.handlers import ACTIONS, BATCH, REGISTRY_IMPORT, Handlers, event_handlers
from services.routing.service import NotFound, RoutingService

bp = Blueprint("routing", __name__)
# work orders `GET /v1/workorders?ids=` loads at most (a page of a queue)
MAX_LISTED_IDS = 100
# the contract's schema of each action's body (contract/openapi/routing.yaml)
ACTION_SCHEMAS = {
    "contact": "ContactRequest",
    "reply": "ReplyRequest",
    "transfer": "TransferRequest",
    "pause": "PauseRequest",
    "resume": "EmptyRequest",
    "close": "EmptyRequest",
}
ACTION_FIELDS = {
    "contact": {"note"},
    "reply": {"resolution", "summary"},
    "transfer": {"grid_id", "department", "reason"},
    "pause": {"reason"},
    "resume": set(),
    "close": set(),
}
# what of each action's body the audit trail keeps (never the free text: a summary or a note may
# quote the citizen)
AUDITED_FIELDS = {
    "contact": (),
    "reply": ("resolution",),
    "transfer": ("grid_id", "department"),
    "pause": ("reason",),
    "resume": (),
    "close": (),
}
MAX_REGISTRY_BYTES = 32 * 1024 * 1024


def _parts() -> RoutingParts:
    return current_app.extensions["routing"]


def _service() -> RoutingService:
    return _parts().service


def current_handlers() -> Handlers:
    return _parts().handlers


@bp.post("/v1/grids/import")
@body_limit(MAX_REGISTRY_BYTES)
def import_grids() -> Response:
    staff = require_staff()
    if not may_manage_registry(staff):
        audit_http.record(REGISTRY_IMPORT, staff, outcome="not_found", required=False)
        raise ApiError(404, "not_found", "only the county dispatch centre imports the grid registry")
    body = read_json_object(media_types=("application/geo+json", "application/json"))  # as routing.yaml says
    if body.get("type") != "FeatureCollection" or not isinstance(body.get("features"), list):
        raise ApiError(
            400,
            "invalid_geojson",
            "the body must be a GeoJSON FeatureCollection",
            {"type": "must be FeatureCollection", "features": "must be a list"},
        )
    try:
        summary = current_handlers()[REGISTRY_IMPORT](body, staff.staff_id)
    except domain.RegistryInvalid as exc:
        audit_http.record(REGISTRY_IMPORT, staff, outcome="invalid_registry", required=False)
        raise ApiError(
            422, "invalid_registry", f"{len(exc.errors)} problem(s); nothing was imported", exc.fields()
        ) from exc
    audit_http.record(REGISTRY_IMPORT, staff, detail={"features": len(body["features"])}, required=False)
    return json_response(summary)


@bp.get("/v1/grids/<grid_id>")
def get_grid(grid_id: str) -> Response:
    staff = require_staff()
    registry = _service().current_registry()
    grid = registry.grid(grid_id) if registry else None
    if grid is None or not may_read(staff, Area(grid_id=grid.grid_id)):
        raise ApiError(404, "not_found", f"no grid {grid_id} in the registry")
    return json_response(grid.to_feature())


# the longest If-None-Match routing.yaml allows (an ETag is "registry-<version>")
MAX_ETAG_HEADER = 200


@bp.get("/v1/grids")
def list_grids() -> Response:
    """The whole registry as one FeatureCollection (the grid map's source), with its version as the
    ETag: a client that has the current version gets a 304 without the body (2.1 MB for the demo county)."""
    if not may_read_registry(require_staff()):
        raise ApiError(404, "not_found", "the grid registry is for staff")
    if len(request.headers.get("If-None-Match", "")) > MAX_ETAG_HEADER:
        too_long = {"If-None-Match": f"at most {MAX_ETAG_HEADER} characters"}
        raise ApiError(400, "invalid_header", "If-None-Match is too long", too_long)
    version, body = _registry_geojson()
    etag = f"registry-{version}"
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    return Response(body, mimetype="application/geo+json", headers={"ETag": f'"{etag}"'})


def _registry() -> domain.GridRegistry:
    # pickers ask often; an import elsewhere shows within a second
    registry = _service().current_registry(max_age_s=1.0)
    if registry is None:
        raise ApiError(404, "not_found", "no grid registry has been imported yet")
    return registry


def _registry_geojson() -> tuple[int, bytes]:
    geojson = _service().registry_geojson()
    if geojson is None:
        raise ApiError(404, "not_found", "no grid registry has been imported yet")
    return geojson


@bp.get("/v1/areas")
def list_areas() -> Response:
    """Towns and their villages: public place names for the citizen's location picker (no token)."""
    return json_response({"towns": _registry().areas()})


@bp.get("/v1/areas/villages/<village_id>/grids")
def list_village_grids(village_id: str) -> Response:
    grids = _registry().village_grids(village_id)
    if grids is None:
        raise ApiError(404, "not_found", f"no village {village_id} in the registry")
    return json_response({"village_id": village_id, "grids": grids})


@bp.get("/v1/workorders")
def list_workorders() -> Response:
    staff = require_staff()
    args = _list_query("/v1/workorders", ("grid_id", "town", "status", "assignee", "triage", "order", "limit", "ids"))
    if args.get("status") and args["status"] not in {str(s) for s in domain.Status}:
        raise ApiError(400, "invalid_filter", "unknown status", {"status": "unknown status"})
    ids = None
    if "ids" in args:
        ids, problem = petition_ids.ids_param(request.args.getlist("ids"), MAX_LISTED_IDS)
        if problem:
            raise ApiError(400, "invalid_filter", "invalid query parameters", {"ids": problem})
    orders = _service().list_orders(
        staff,
        args.get("grid_id"),
        args.get("town"),
        args.get("status"),
        args.get("assignee"),
        _limit(args),
        triage=args.get("triage") == "true",
        oldest_first=args.get("order") == "oldest",
        ids=ids,
    )
    return json_response({"workorders": orders, "count": len(orders)})


@bp.get("/v1/workorders/ids")
def list_workorder_ids() -> Response:
    staff = require_staff()
    args = _list_query("/v1/workorders/ids", ("assignee", "triage", "order", "limit"))
    listed = _service().listed_ids(
        staff, args.get("assignee"), args.get("triage") == "true", _limit(args), args.get("order") == "oldest"
    )
    return json_response({"petition_ids": listed, "count": len(listed)})


def _list_query(path: str, known: tuple[str, ...]) -> dict[str, str]:
    """The query of a list: 400 for a parameter it does not know (a misspelt filter is never silently
    ignored) and for a value its OpenAPI document refuses, each under its name."""
    args = request.args
    unknown = {k: "unknown filter" for k in args if k not in known}
    if unknown:
        raise ApiError(400, "invalid_filter", "unknown query parameters", unknown)
    # the document's types and bounds, before any is compared with what is stored
    invalid = current_app.extensions["schemas"].query_errors(path, "get", args)
    if invalid:
        raise ApiError(400, "invalid_filter", "invalid query parameters", invalid)
    return args.to_dict()


def _limit(args: dict[str, str]) -> int:
    try:
        return min(1000, max(1, int(args.get("limit", 200))))
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", "limit must be a number", {"limit": "must be a number"}) from exc


@bp.get("/v1/workorders/<petition_id>")
def get_workorder(petition_id: str) -> Response:
    try:
        return json_response(_service().view(petition_id, require_staff()))
    except NotFound as exc:
        raise ApiError(404, "not_found", "no such work order for this token") from exc


@bp.post("/v1/workorders/<petition_id>/<action>")
def act(petition_id: str, action: str) -> Response:
    if action not in ACTIONS:
        raise ApiError(404, "not_found", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    staff = require_staff()
    body: dict[str, Any] = read_json_object() if request.get_data() else {}
    unknown = {k: "unknown field" for k in body if k not in ACTION_FIELDS[action]}
    if unknown:
        raise ApiError(400, "invalid_request", "the request has unknown fields", unknown)
    # types and lengths before anything is looked up or written: a grid id that is an object, or a
    # reason longer than the event may carry, is the client's error (400), not the service's (500)
    validated(current_app.extensions["schemas"], ACTION_SCHEMAS[action], body)
    outcome = "ok"
    try:
        order = current_handlers()[action](petition_id, staff, **body)
    except NotFound as exc:
        outcome = "not_found"
        raise ApiError(404, "not_found", "no such work order for this token") from exc
    except domain.InvalidArgument as exc:
        outcome = "invalid_argument"
        raise ApiError(422, "invalid_argument", exc.message, {exc.field: exc.message}) from exc
    except domain.InvalidTransition as exc:
        outcome = exc.code
        raise ApiError(409, exc.code, exc.message) from exc
    except SchemaViolation as exc:  # a bug the checks above missed; the commit refused it before writing
        outcome = "invalid_argument"
        raise ApiError(422, "invalid_argument", "the action's event would not be valid", exc.fields) from exc
    except Exception:
        outcome = "failed"  # the database or broker: 503, the client retries
        raise
    finally:
        # after the action committed or was refused (audit_http: the ordering and its guarantees)
        detail = {k: body[k] for k in AUDITED_FIELDS[action] if k in body}
        audit_http.record(
            f"workorder.{action}", staff, petition_id=petition_id, outcome=outcome, detail=detail, required=False
        )
    return json_response(order)


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("routing")
    logs.configure("routing", settings.log_level, settings.kafka_log_level)
    runtime = ServiceRuntime(settings)
    # the runtime's stores publish through its producer, off the request path (its flusher thread)
    parts = bootstrap(settings, db=runtime.db, stores=runtime.store)
    app = create_base_app("routing", runtime.metrics, runtime.checks())
    app.extensions.update(
        runtime=runtime,
        routing=parts,
        tokens=staff_directory(settings),
        schemas=RequestSchemas(settings.contract_dir, "routing"),
    )
    parts.service.commits.on_group = runtime.metrics.group_sizes.labels("routing", "workorder_changes").observe
    staff_api.mount(app, runtime, bp, background=start_background)
    if start_background:
        service = parts.service
        service.ensure_area_index()  # before serving lists: a database from before the index has none
        runtime.start_consumer([INTAKE], event_handlers(parts.handlers), batch_handler=parts.handlers[BATCH])
        runtime.start_relay([parts.orders])
        scan_s = parts.config.timeout_scan_s
        # checked often, run every scan_s by either clock (a test's or the benchmark's clock jumps)
        runtime.start_periodic("timeout-close", min(0.5, scan_s), lambda: service.close_timed_out_when_due(scan_s))
    return app
