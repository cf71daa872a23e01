"""intake (受理): the HTTP API for citizens and staff, plus the consumer that follows routing.

Only HTTP here: a view turns the request into a call of the handlers' table (handlers.py) and the
result or the domain's error into a response; `create_app` builds the runtime, has bootstrap.py
build intake on it and starts the loops (consumer, outbox relay, retention job)."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request

from petition_common import audit_http, logs, ratelimit
from petition_common.auth import Staff, staff_directory
from petition_common.config import Settings
from petition_common.contract import SchemaViolation
from petition_common.ratelimit import STAFF_TOKEN_RULE, Rule, by_address, by_staff_token_or_address, unless_staff
from petition_common.request_schemas import RequestSchemas
from petition_common.runtime import ServiceRuntime
from petition_common.topics import ROUTING
from petition_common.web import (
    ApiError,
    body_limit,
    create_base_app,
    error_response,
    json_response,
    mount_metrics,
    read_json_object,
    require_staff,
    validated,
)
from petition_kernel.access import may_submit_batches
from services.intake import domain
from services.intake.bootstrap import IntakeParts, bootstrap
from services.intake.contacts import KeyUnavailable
from services.intake.handlers import Handlers, batch_handler, event_handlers
from services.intake.retention import audit_entry
from services.intake.service import BatchItem, IdempotencyMismatch, NotFound, Outcome

bp = Blueprint("intake", __name__)
# the audit trail's action for a staff read of a petition's contact details, and what it shows
CONTACT_READ = "contact.read"
CONTACT_FIELDS = ("citizen.name", "citizen.phone")
log = logging.getLogger(__name__)
# a batch's bounds (contract/openapi/intake.yaml, PetitionBatch): 500 items of at most ~4 KB each
BATCH_MAX_ITEMS = 500
BATCH_MAX_BYTES = 2 * 1024 * 1024


def _parts() -> IntakeParts:
    return current_app.extensions["intake"]


def _handlers() -> Handlers:
    return _parts().handlers


def _staff() -> Staff | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    staff = current_app.extensions["tokens"].authenticate(header)
    if staff is None:
        raise ApiError(401, "unauthorized", "the bearer token is not valid")
    return staff


def _schemas() -> RequestSchemas:
    return current_app.extensions["schemas"]


def _submission(body: dict[str, Any]) -> domain.Submission:
    """The petition, checked against the contract's schema and then the domain's rules; every problem
    found by either is reported (422 when only the category is unknown, else 400)."""
    fields = _schemas().errors("PetitionSubmission", body)
    try:
        submission = domain.validate_submission(body, _parts().config.categories)
    except domain.InvalidInput as exc:
        fields = {**exc.fields, **fields}
    if fields:
        status = 422 if set(fields) <= {"category"} else 400
        raise ApiError(status, "invalid_petition", "the petition has invalid fields", fields)
    return submission


@bp.post("/v1/petitions")
def submit() -> Response:
    body = read_json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters",
            {"Idempotency-Key": "must be 1-200 characters"},
        )
    submission = _submission(body)
    try:
        receipt, replayed = _handlers()["submit"](submission, domain.body_fingerprint(body), key)
    except SchemaViolation as exc:  # a bug, but caught before anything was written
        raise ApiError(422, "invalid_petition", "the petition cannot be published as given", exc.fields) from exc
    except IdempotencyMismatch as exc:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different body",
            {"Idempotency-Key": "already used with a different body"},
        ) from exc
    headers = {"Location": f"/v1/petitions/{receipt['petition_id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(receipt, 201, headers)


@bp.post("/v1/petitions/batch")
@body_limit(BATCH_MAX_BYTES)
def submit_batch() -> Response:
    """Many petitions at once, for the hotline and other systems (contract/openapi/intake.yaml): each
    item validated, limited and stored as `submit` would, one result per item."""
    staff = require_staff()
    if not may_submit_batches(staff):
        raise ApiError(404, "not_found", "only machine clients and the county dispatch centre submit batches")
    body = read_json_object()
    validated(_schemas(), "PetitionBatch", body)
    entries = body["items"]
    first_of: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if (seen := first_of.setdefault(entry["idempotency_key"], i)) != i:
            raise ApiError(
                400,
                "invalid_request",
                "an idempotency_key is given twice",
                {f"items.{i}.idempotency_key": f"repeats items.{seen}.idempotency_key"},
            )
    results: list[dict[str, Any]] = [{}] * len(entries)
    todo: list[tuple[int, BatchItem]] = []
    for i, entry in enumerate(entries):
        try:
            submission = _submission(entry["petition"])
            if (wait := ratelimit.over_limit("SUBMIT_PHONE", "intake.submit", _phone_key(submission))) is not None:
                message = f"too many petitions from this phone number; retry in {wait} s"
                raise ApiError(429, "rate_limited", message, {"citizen.phone": "too many petitions today"})
        except ApiError as exc:
            results[i] = _item_refused(i, exc)
            continue
        todo.append((i, BatchItem(submission, domain.body_fingerprint(entry["petition"]), entry["idempotency_key"])))
    outcomes = _handlers()["submit_many"]([item for _, item in todo]) if todo else []
    for (i, _), outcome in zip(todo, outcomes, strict=True):
        results[i] = _item_outcome(i, outcome)
    accepted = sum(1 for r in results if r["status"] == 201)
    return json_response({"accepted": accepted, "refused": len(results) - accepted, "results": results})


def _item_outcome(index: int, outcome: Outcome) -> dict[str, Any]:
    """An item's result, as `submit` would have answered it."""
    if isinstance(outcome, SchemaViolation):
        message = "the petition cannot be published as given"
        return _item_refused(index, ApiError(422, "invalid_petition", message, outcome.fields))
    if isinstance(outcome, IdempotencyMismatch):
        message = "this idempotency_key was used with a different petition"
        fields = {"idempotency_key": "already used with a different petition"}
        return _item_refused(index, ApiError(422, "idempotency_key_reused", message, fields))
    if isinstance(outcome, Exception):  # Conflict: an earlier attempt is between its marker and its commit
        message = "the petition is being stored by another request; retry shortly"
        return _item_refused(index, ApiError(503, "busy", message))
    receipt, replayed = outcome
    return {"index": index, "status": 201, "replayed": replayed, "petition": receipt}


def _item_refused(index: int, exc: ApiError) -> dict[str, Any]:
    error = {"code": exc.code, "message": exc.message, "fields": exc.fields}
    return {"index": index, "status": exc.status, "error": error}


def _phone_key(submission: domain.Submission) -> str:
    return "citizen:" + _parts().service.citizen_ref(submission.citizen_phone)


def _batch_size() -> int:
    """A batch's weight on its token's rate limit: one per item (a malformed body weighs one; the view
    refuses it)."""
    try:
        body = orjson.loads(request.get_data(cache=True))  # bounded: web._enforce_body_limit
    except Exception:
        return 1
    items = body.get("items") if isinstance(body, dict) else None
    return min(len(items), BATCH_MAX_ITEMS) if isinstance(items, list) and items else 1


@bp.get("/v1/petitions/nearby")
def nearby() -> Response:
    query = _nearby_query(request.args.to_dict(flat=True))
    fields = _schemas().errors("NearbyQuery", query)
    if "category" not in fields and query.get("category") not in _parts().config.categories:
        fields["category"] = "unknown category"
    if fields:
        raise ApiError(400, "invalid_query", "the query has invalid parameters", fields)
    found = _handlers()["nearby"](
        query["lat"], query["lon"], query["category"], query.get("radius_m", 500), query.get("limit", 10)
    )
    return json_response({"items": found, "count": len(found)})


def _nearby_query(args: dict[str, str]) -> dict[str, Any]:
    """Query strings as the numbers they stand for, so the contract's schema can judge them; a value
    that is no number stays a string and fails the schema's type."""
    query: dict[str, Any] = dict(args)
    for key, kind in (("lat", float), ("lon", float), ("radius_m", int), ("limit", int)):
        if key in query:
            try:
                value = kind(query[key])
            except ValueError:
                continue
            if math.isfinite(value):
                query[key] = value
    return query


@bp.post("/v1/petitions/<petition_id>/join")
def join(petition_id: str) -> Response:
    body = _citizen_body("JoinRequest")
    try:
        follower = domain.validate_follower(body)
        receipt = _handlers()["join"](petition_id, follower)
    except domain.InvalidInput as exc:
        raise ApiError(400, "invalid_request", "the request has invalid fields", exc.fields) from exc
    except NotFound as exc:
        # absent, closed or withdrawn alike: probing numbers tells only "open or not"
        raise ApiError(404, "not_found", "no open petition with this id") from exc
    return json_response(receipt, 201)


@bp.get("/v1/petitions/<petition_id>")
def read(petition_id: str) -> Response:
    try:
        staff = _staff()
        if staff is not None:
            return _staff_read(petition_id, staff)
        code = request.headers.get("X-Tracking-Code") or request.args.get("tracking_code")
        if not code:
            raise ApiError(
                401,
                "unauthorized",
                "present the tracking code (tracking_code or X-Tracking-Code) or a staff bearer token",
            )
        return json_response(_handlers()["read"](petition_id, code))
    except NotFound as exc:
        raise ApiError(404, "not_found", "no such petition for this tracking code or token") from exc


def _staff_read(petition_id: str, staff: Staff) -> Response:
    """The staff view; with the citizen's contact details (the default) only once the read is in
    the audit trail, without them (`contact=omit`, the work order page before its "show") unrecorded."""
    omit = request.args.get("contact")
    if omit not in (None, "omit"):
        raise ApiError(400, "invalid_query", "contact may only be omit", {"contact": "must be omit"})
    try:
        view = _handlers()["read_as_staff"](petition_id, staff)
    except NotFound:
        if omit is None:  # a look outside one's area is what an auditor wants to see too
            audit_http.record(CONTACT_READ, staff, petition_id=petition_id, outcome="not_found", required=False)
        raise
    if omit:
        return json_response({k: v for k, v in view.items() if k != "citizen"})
    audit_http.record(CONTACT_READ, staff, petition_id=petition_id, fields=CONTACT_FIELDS)
    return json_response(view)


@bp.errorhandler(KeyUnavailable)
def key_unavailable(exc: KeyUnavailable) -> Response:
    # a record under a key this instance lacks (a restore with an older key file, a key removed
    # before `petitions-keys rotate` finished): the operator restores the key, the data are whole
    log.error("contact details unreadable: %s", exc)
    return error_response(503, "contact_key_unavailable", "the contact details cannot be read now; retry later")


def _citizen_body(schema: str) -> dict[str, Any]:
    """A citizen's body: the contract's schema, and no fields it does not name."""
    body = read_json_object()
    allowed = _schemas().properties(schema)
    unknown = {k: "unknown field" for k in body if k not in allowed}
    if unknown:
        raise ApiError(400, "invalid_request", "the request has unknown fields", unknown)
    validated(_schemas(), schema, body)
    return body


@bp.post("/v1/petitions/<petition_id>/feedback")
def feedback(petition_id: str) -> Response:
    body = _citizen_body("FeedbackRequest")
    try:
        view = _handlers()["feedback"](petition_id, body["tracking_code"], body["satisfaction"], body.get("comment"))
    except NotFound as exc:
        raise ApiError(404, "not_found", "no such petition for this tracking code") from exc
    except domain.ActionRefused as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    return json_response(view)


@bp.post("/v1/petitions/<petition_id>/withdraw")
def withdraw(petition_id: str) -> Response:
    body = _citizen_body("WithdrawRequest")
    try:
        view = _handlers()["withdraw"](petition_id, body["tracking_code"])
    except NotFound as exc:
        raise ApiError(404, "not_found", "no such petition for this tracking code") from exc
    except domain.ActionRefused as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    return json_response(view)


def _citizen_key() -> str | None:
    """The rate-limit bucket of the citizen a body names: the keyed digest of their normalised phone
    (never the number itself: the counts are stored). None when the body names no valid phone; the
    view then refuses it with 400 anyway."""
    if "rate_limit_citizen" not in g:
        g.rate_limit_citizen = None
        if request.mimetype == "application/json":
            try:
                body = orjson.loads(request.get_data(cache=True))  # bounded: web._enforce_body_limit
            except Exception:  # not JSON, or too large: the view says which
                body = None
            citizen = body.get("citizen") if isinstance(body, dict) else None
            raw = citizen.get("phone") if isinstance(citizen, dict) else None
            phone = domain.normalize_phone(raw) if isinstance(raw, str) else None
            if phone:
                g.rate_limit_citizen = "citizen:" + _parts().service.citizen_ref(phone)
    return g.rate_limit_citizen


# which limits guard which endpoint (defaults and reasons: docs/security.md); staff with a valid token
# (a hotline, a service hall filing for citizens) are counted per token instead of per address
RATE_LIMITS: dict[str, list[Rule]] = {
    "intake.submit": [
        Rule("SUBMIT_ADDRESS", unless_staff(by_address)),
        STAFF_TOKEN_RULE,
        Rule("SUBMIT_PHONE", _citizen_key),
    ],
    "intake.submit_batch": [Rule("STAFF", by_staff_token_or_address, shared=True, cost=_batch_size)],
    "intake.join": [
        Rule("JOIN_ADDRESS", unless_staff(by_address)),
        STAFF_TOKEN_RULE,
        Rule("JOIN_PHONE", _citizen_key),
    ],
    "intake.read": [Rule("READ_ADDRESS", unless_staff(by_address)), STAFF_TOKEN_RULE],
    "intake.feedback": [Rule("ACTION_ADDRESS", by_address)],
    "intake.withdraw": [Rule("ACTION_ADDRESS", by_address)],
    "intake.nearby": [Rule("NEARBY_ADDRESS", unless_staff(by_address)), STAFF_TOKEN_RULE],
    **audit_http.RATE_LIMITS,
}


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("intake")
    logs.configure("intake", settings.log_level, settings.kafka_log_level)
    runtime = ServiceRuntime(settings)
    tokens = staff_directory(settings)  # refuses public credentials first, naming each of them
    parts = bootstrap(
        settings,
        db=runtime.db,
        publisher=runtime.counting_publisher,
        stores=runtime.store,
        registry=runtime.metrics.registry,
    )
    app = create_base_app("intake", runtime.metrics, runtime.checks())
    app.extensions["runtime"] = runtime
    app.extensions["intake"] = parts
    app.extensions["tokens"] = tokens
    app.extensions["schemas"] = RequestSchemas(settings.contract_dir, "intake")
    app.register_blueprint(bp)
    trail = audit_http.install(app, runtime)
    parts.retention.on_erased = lambda erasure: trail.append(audit_entry(erasure))
    parts.service.submissions.on_group = runtime.metrics.group_sizes.labels("intake", "submissions").observe
    ratelimit.install(app, runtime, RATE_LIMITS, background=start_background)
    mount_metrics(app, runtime.metrics)
    if start_background:
        runtime.start_consumer([ROUTING], event_handlers(parts.handlers), batch_handler=batch_handler(parts.handlers))
        runtime.start_relay([parts.petitions])
        erase_s = parts.config.retention_interval_s
        # checked often, run every erase_s by either clock (a test's clock jumps years)
        runtime.start_periodic("retention", min(1.0, erase_s), lambda: parts.retention.erase_when_due(erase_s))
    return app
