"""The auditor's page: the services' audit trails (who read which citizen's contact details, who
acted on which work order), filtered, newest first. Each query goes to one service's
`GET /v1/audit` with the auditor's own token, so the services decide who may see it (auditors
only) and record the query itself in their trails."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from services.web.backends import current_backends
from services.web.staff import _me, staff_required

bp = Blueprint("audit_pages", __name__, url_prefix="/staff")
# which service keeps which records (docs/security.md, "Audit trail")
TRAILS = {"intake": "受理（查看联系方式）", "routing": "派单（工单操作）", "sla": "督办", "stats": "统计"}
ACTIONS = {
    "contact.read": "查看联系方式",
    "workorder.contact": "联系群众",
    "workorder.reply": "答复",
    "workorder.transfer": "转办/分拨",
    "workorder.pause": "暂停计时",
    "workorder.resume": "恢复计时",
    "workorder.close": "办结",
    "registry.import": "导入网格",
    "audit.read": "查询审计记录",
}
FIELDS = {"citizen.name": "姓名", "citizen.phone": "电话"}
FILTERS = ("petition_id", "staff_id", "action", "from", "to", "before")
PAGE = 50


@bp.get("/audit")
@staff_required("audit")
def audit() -> tuple[str, int]:
    service = request.args.get("service", "intake")
    if service not in TRAILS:
        service = "intake"
    params: dict[str, Any] = {k: v.strip() for k in FILTERS if (v := request.args.get(k, "")).strip()}
    answer = current_backends().call(service, "GET", "/v1/audit", token=_me().token, params={**params, "limit": PAGE})
    if answer.status in (401, 404):  # the service says this token may not read the trail
        abort(404)
    errors = answer.fields if answer.status == 400 else {}
    body = answer.body if answer.ok else {}
    return (
        render_template(
            "audit.html",
            trails=TRAILS,
            actions=ACTIONS,
            field_names=FIELDS,
            service=service,
            params=params,
            items=body.get("items", []),
            older=_older(service, params, body.get("next_before")),
            errors=errors,
        ),
        400 if errors else 200,
    )


def _older(service: str, params: dict[str, Any], next_before: int | None) -> str | None:
    if next_before is None:
        return None
    return url_for("audit_pages.audit", **{**params, "service": service, "before": next_before})
