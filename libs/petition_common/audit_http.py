"""The audit trail over HTTP, the same in every staff service: recording who did what from which
client (`record`), and the auditor's `GET /v1/audit`.

Ordering (docs/security.md, "Audit trail"):
- a read of personal data is recorded before the data is returned; if the record cannot be stored
  the read answers 503 and returns nothing, so no read goes unrecorded;
- an action is recorded after it committed, with its outcome; if the record cannot be stored then
  (or the process dies in between) the action stands, the failure is counted
  (petitions_audit_append_failures_total, alert AuditAppendFailing) and logged, and the action's
  own event (petition.contacted, ...) still names the staff member.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from petition_common.audit_log import AuditLog
from petition_common.auth import Staff
from petition_common.ratelimit import CLIENT_HEADER, STAFF_RULE, Rule, vouched_client
from petition_common.request_schemas import RequestSchemas
from petition_common.runtime import ServiceRuntime
from petition_common.web import ApiError, json_response, require_staff
from petition_kernel.access import may_audit
from petition_kernel.times import BEIJING, format_time

bp = Blueprint("audit", __name__)
log = logging.getLogger(__name__)

# the client of a request made with a static token (an OAuth token names its client, `azp`)
STATIC_TOKEN_CLIENT = "static-token"
MAX_TEXT = 200
MAX_LIMIT = 500
FILTERS = ("petition_id", "staff_id", "action", "outcome")
PARAMS = (*FILTERS, "from", "to", "before", "limit")
RATE_LIMITS: dict[str, list[Rule]] = {"audit.query": [STAFF_RULE]}


def install(app: Flask, runtime: ServiceRuntime) -> AuditLog:
    """Give the app its audit trail (in the service's own database) and the auditor's endpoint;
    before ratelimit.install, with RATE_LIMITS among its routes."""
    metrics = runtime.metrics
    service = runtime.settings.service
    trail = AuditLog(
        runtime.db,
        service,
        on_append=lambda r: metrics.audit_records.labels(service, r["action"], r["outcome"]).inc(),
    )
    trail.appends.on_group = metrics.group_sizes.labels(service, "audit").observe
    app.extensions["audit"] = trail
    app.extensions["audit_schemas"] = RequestSchemas(runtime.settings.contract_dir, service)
    app.register_blueprint(bp)
    return trail


def record(
    action: str,
    staff: Staff,
    *,
    petition_id: str | None = None,
    fields: Iterable[str] = (),
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
    required: bool = True,
) -> None:
    """Append who (`staff`), what (`action`, `fields`), on which petition, from which client, with
    what outcome. `required`: a failure answers 503 (use it before returning personal data); else
    it is only counted and logged (after an action has committed)."""
    entry = {
        "action": action,
        "petition_id": petition_id[:MAX_TEXT] if petition_id else None,
        "staff_id": staff.staff_id,
        "role": staff.role,
        "fields": list(fields),
        "outcome": outcome,
        "detail": dict(detail) if detail else None,
        "client": _client(staff),
    }
    try:
        current_app.extensions["audit"].append(entry)
    except Exception as exc:
        runtime: ServiceRuntime = current_app.extensions["runtime"]
        runtime.metrics.audit_append_failures.labels(runtime.settings.service).inc()
        log.error(
            "audit record not stored",
            extra={"action": action, "petition_id": petition_id, "staff_id": staff.staff_id, "error": repr(exc)},
        )
        if required:
            raise ApiError(
                503, "audit_unavailable", "the access could not be recorded; retry later", headers={"Retry-After": "2"}
            ) from exc


def _client(staff: Staff) -> dict[str, str | None]:
    """Where the request came from: the OAuth client, the connection's peer, the browser's address
    when one of our services (the web pages) vouched for it, and the user agent as sent."""
    signer = current_app.extensions.get("rate_limit_signer")
    return {
        "id": staff.client_id or STATIC_TOKEN_CLIENT,
        "address": request.remote_addr,
        "for": vouched_client(signer, request.headers.get(CLIENT_HEADER)) if signer is not None else None,
        "user_agent": (request.headers.get("User-Agent") or "")[:MAX_TEXT] or None,
    }


@bp.get("/v1/audit")
def query() -> Response:
    staff = require_staff()
    if not may_audit(staff):
        # as for any object a token does not cover (CONTRACT.md): the trail is the auditors' alone
        raise ApiError(404, "not_found", "no such resource for this token")
    args = request.args
    problems = {k: "unknown parameter" for k in args if k not in PARAMS}
    # the document's types, patterns and bounds first (contract/openapi/common.yaml, path item audit)
    problems.update(current_app.extensions["audit_schemas"].query_errors("/v1/audit", "get", args))
    filters = {k: args.get(k) for k in FILTERS}
    since, until = (None if k in problems else _time(args, k, problems) for k in ("from", "to"))
    before = _integer(args, "before", 1, 10**12, None, problems)
    limit = _integer(args, "limit", 1, MAX_LIMIT, 100, problems)
    if problems:
        raise ApiError(400, "invalid_query", "the query has invalid parameters", problems)
    asked = {k: v for k, v in args.items() if k in PARAMS}
    # who asked what is itself recorded, before the answer is given; under no petition id, so that
    # a petition's records stay the accesses to that petition
    record("audit.read", staff, detail={"query": asked})
    trail: AuditLog = current_app.extensions["audit"]
    items = trail.query(filters, since, until, before, limit or 100)
    more = len(items) == limit
    return json_response({"items": items, "count": len(items), "next_before": items[-1]["seq"] if more else None})


def _time(args: Mapping[str, str], name: str, problems: dict[str, str]) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is not None and len(value) == len("YYYY-MM-DD"):
        # a date: 00:00 Beijing time, as `from`/`to` in contract/openapi/common.yaml
        moment = moment.replace(tzinfo=BEIJING)
    if moment is None or moment.tzinfo is None or not 1970 <= moment.year <= 2999:
        problems.setdefault(name, "a date (YYYY-MM-DD) or an RFC 3339 date-time with a time zone")
        return None
    return format_time(moment)


def _integer(
    args: Mapping[str, str], name: str, low: int, high: int, default: int | None, problems: dict[str, str]
) -> int | None:
    value = args.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        problems.setdefault(name, f"a whole number from {low} to {high}")
        return default
    return int(value)
