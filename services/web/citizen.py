"""The citizen's pages (no login): submit, nearby offer and join, receipt, tracking, rating, withdrawal."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import segno
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup

from services.web import labels
from services.web.areas import current_areas
from services.web.backends import Answer, current_backends

bp = Blueprint("citizen", __name__)
NEARBY_RADIUS_M = 500
# the steps a citizen follows on the tracking page, and the event that marks each one
STEPS = (
    ("受理", ("petition.submitted",)),
    ("派单", ("petition.assigned",)),
    ("联系", ("petition.contacted",)),
    ("答复", ("petition.replied",)),
    ("办结", ("petition.closed", "petition.withdrawn")),
)


@bp.get("/")
def home() -> str:
    return render_template("home.html")


@bp.get("/submit")
def submit_form() -> str:
    return _render_form({}, {})


def _render_form(form: dict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    page = render_template(
        "submit.html",
        form=form,
        errors=errors,
        categories=current_app.extensions["categories"],
        towns=current_areas().get().towns,
        # a fresh key per rendering of the form: a double click or a resent form submits once
        idempotency_key=form.get("idempotency_key") or uuid.uuid4().hex,
    )
    return page, status


def _submission(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's body from the form, and the errors found before asking (only what the form itself
    knows: a village id that is not in the list). Everything else is the API's to judge."""
    errors: dict[str, str] = {}
    found = current_areas().get().village(form.get("village_id", ""))
    town, village = (found[0]["town"], found[1]["village"]) if found else ("", "")
    if not found:
        errors["location.village"] = labels.field_message("location.village")
    location: dict[str, Any] = {"town": town, "village": village}
    if form.get("address", "").strip():
        location["address"] = form["address"].strip()
    for key in ("lat", "lon"):
        if form.get(key, "").strip():
            try:
                location[key] = float(form[key])
            except ValueError:
                errors[f"location.{key}"] = labels.field_message(f"location.{key}")
    body = {
        "channel": "web",
        "category": form.get("category", ""),
        "content": form.get("content", "").strip(),
        "location": location,
        "citizen": {"name": form.get("name", "").strip(), "phone": form.get("phone", "").strip()},
    }
    return body, errors


@bp.post("/submit")
def submit() -> Any:
    form = request.form.to_dict()
    body, errors = _submission(form)
    if errors:
        return _render_form(form, errors, 400)
    point = body["location"].get("lat"), body["location"].get("lon")
    if None not in point and not form.get("skip_nearby") and body["category"]:
        nearby = current_backends().get(
            "intake",
            "/v1/petitions/nearby",
            params={"lat": point[0], "lon": point[1], "category": body["category"], "radius_m": NEARBY_RADIUS_M},
        )
        items = nearby.body.get("items", []) if nearby.ok else []
        if items:
            return render_template("nearby.html", form=form, items=items)
    answer = current_backends().post(
        "intake",
        "/v1/petitions",
        json=body,
        headers={"Idempotency-Key": form.get("idempotency_key") or uuid.uuid4().hex},
    )
    if not answer.ok:
        return _render_form(form, _errors(answer), 400)
    return _receipt(answer.body["petition_id"], answer.body["tracking_code"], joined=False)


@bp.post("/join/<petition_id>")
def join(petition_id: str) -> Any:
    form = request.form.to_dict()
    body = {"channel": "web", "citizen": {"name": form.get("name", "").strip(), "phone": form.get("phone", "").strip()}}
    answer = current_backends().post("intake", f"/v1/petitions/{quote(petition_id, safe='')}/join", json=body)
    if answer.status == 404:
        # the petition closed meanwhile: offer the citizen's own submission instead
        return _render_form({**form, "skip_nearby": "1"}, {"join": "该诉求已办结，请提交您自己的诉求"}, 409)
    if not answer.ok:
        return _render_form({**form, "skip_nearby": "1"}, _errors(answer), 400)
    return _receipt(answer.body.get("petition_id", petition_id), answer.body["tracking_code"], joined=True)


def _errors(answer: Answer) -> dict[str, str]:
    if answer.status == 429:  # a rate limit (docs/security.md): the same form later, not a wrong field
        return {"form": "提交过于频繁，请稍后再试。"}
    errors = labels.field_errors(answer.fields)
    if not errors:
        errors["form"] = "提交失败，请检查后重试。" if answer.status < 500 else "系统繁忙，请稍后再试。"
    return errors


def _receipt(petition_id: str, code: str, joined: bool) -> str:
    link = url_for("citizen.track", petition_id=petition_id, code=code, _external=True)
    qr = Markup(segno.make(link, error="m").svg_inline(scale=4, title="查询二维码"))
    return render_template("receipt.html", petition_id=petition_id, code=code, link=link, qr=qr, joined=joined)


@bp.get("/track")
def track_lookup() -> Any:
    petition_id, code = request.args.get("petition_id", "").strip(), request.args.get("code", "").strip()
    if petition_id and code:
        return redirect(url_for("citizen.track", petition_id=petition_id, code=code))
    return render_template("track_lookup.html")


@bp.get("/track/<petition_id>")
def track(petition_id: str) -> Any:
    return _track_page(petition_id, request.args.get("code", ""), {}, None)


def _track_page(petition_id: str, code: str, errors: dict[str, str], notice: str | None, status: int = 200) -> Any:
    if not code:
        abort(404)
    answer = current_backends().get(
        "intake", f"/v1/petitions/{quote(petition_id, safe='')}", headers={"X-Tracking-Code": code}
    )
    if not answer.ok:
        abort(404)
    petition = answer.body
    return (
        render_template(
            "track.html",
            p=petition,
            code=code,
            steps=_steps(petition.get("timeline", [])),
            errors=errors,
            notice=notice,
            can_rate=petition["status"] == "replied" and "feedback" in petition,
            can_withdraw=petition["status"] in ("submitted", "assigned", "in_progress") and "feedback" in petition,
        ),
        status,
    )


def _steps(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The five steps with the time each was first reached (None while not yet)."""
    out = []
    for name, events in STEPS:
        at = next((e.get("at") for e in timeline if e.get("event") in events), None)
        out.append({"name": name, "at": at})
    return out


@bp.post("/track/<petition_id>/feedback")
def feedback(petition_id: str) -> Any:
    form = request.form.to_dict()
    body: dict[str, Any] = {"tracking_code": form.get("code", ""), "satisfaction": form.get("satisfaction", "")}
    if form.get("comment", "").strip():
        body["comment"] = form["comment"].strip()
    answer = current_backends().post("intake", f"/v1/petitions/{quote(petition_id, safe='')}/feedback", json=body)
    if answer.ok:
        return _see_track(petition_id, form.get("code", ""), "rated")
    errors = _errors(answer) if answer.status != 409 else {"form": "当前状态不能评价。"}
    return _track_page(petition_id, form.get("code", ""), errors, None, 400)


@bp.post("/track/<petition_id>/withdraw")
def withdraw(petition_id: str) -> Any:
    code = request.form.get("code", "")
    answer = current_backends().post(
        "intake", f"/v1/petitions/{quote(petition_id, safe='')}/withdraw", json={"tracking_code": code}
    )
    if answer.ok:
        return _see_track(petition_id, code, "withdrawn")
    return _track_page(petition_id, code, {"form": "办理人已答复或诉求已结束，不能撤回。"}, None, 409)


def _see_track(petition_id: str, code: str, done: str) -> Response:
    # after a change, a GET: reloading the page does not send the rating twice
    return redirect(url_for("citizen.track", petition_id=petition_id, code=code, done=done), 303)
