"""The staff workbench: queue by nearest deadline, a work order with its actions, triage, escalations.

Every call carries the staff member's own token, so what a page shows and allows is exactly what the
services allow that token (the one authorisation rule); the pages only leave out what a role can never do.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from services.web import labels
from services.web.areas import current_areas
from services.web.backends import Answer, current_backends
from services.web.sessions import LastQueue, StaffSession

bp = Blueprint("staff", __name__, url_prefix="/staff")
log = logging.getLogger(__name__)
OPEN = ("assigned", "in_progress", "reopened", "replied")
# petitions per call of sla's batch read (its limit)
SLA_BATCH = 100
# the queue sorts at most this many orders, the most recently assigned (routing's default limit); a
# queue that reached it says so
QUEUE_LIMIT = 200
# orders per page of the queue, each a read in routing (at most 100, its `ids` limit)
QUEUE_PAGE = 50
# the triage page shows the orders waiting longest, this many at a time: the next come up as these
# are assigned (each is a read in routing, so a page of 200 pickers was also the slowest page)
TRIAGE_PAGE = 50
# work-order actions and the form fields each sends to routing
ACTIONS = {
    "contact": ("note",),
    "reply": ("resolution", "summary"),
    "transfer": ("grid_id", "department", "reason"),
    "pause": ("reason",),
    "resume": (),
    "close": (),
}
DONE = {
    "contact": "已记录联系群众",
    "reply": "已提交答复",
    "transfer": "已转办",
    "pause": "已暂停计时",
    "resume": "已恢复计时",
    "close": "已办结",
}


def staff_required(capability: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            me = current_app.extensions["sessions"].get(session.get("sid"))
            if me is None:
                return redirect(url_for("login.login_form"), 303)
            if capability and not me.can(capability):
                abort(404)
            if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), me.csrf):
                abort(400)
            g.me = me
            return view(*args, **kwargs)

        return inner

    return wrap


def _me() -> StaffSession:
    return g.me


def _call(method: str, service: str, path: str, **kw: Any) -> Answer:
    return current_backends().call(service, method, path, token=_me().token, **kw)


@bp.get("/")
@staff_required()
def home() -> Any:
    me = _me()
    if me.can("triage"):
        return redirect(url_for("staff.triage"))
    if me.role == "town_supervisor":
        return redirect(url_for("staff.escalations"))
    return redirect(url_for("staff.queue"))


@bp.get("/queue")
@staff_required("queue")
def queue() -> str:
    """The orders by nearest deadline, a page at a time: routing names the area's orders without
    loading them, sla's clocks sort them, and only the page shown is loaded from routing (a load per
    order, which made a queue of 150 orders the slowest page under load).

    Three reads one after the other would be slow, so the page reads what it showed last at once:
    while routing names the orders, sla is asked for the clocks of those it listed last and routing
    loads the page it showed last. Then only orders new since (their clocks) and a page that differs
    (its orders) are read, and both at once."""
    sessions, sid = current_app.extensions["sessions"], session["sid"]
    backends, token = current_backends(), _me().token
    number = _page_number(request.args.get("page"))
    last = sessions.last_queue(sid)
    page_reads, clock_reads = _order_reads(last.shown), _clock_reads(list(last.listed))
    listed, *answers = backends.get_all(
        [("routing", f"/v1/workorders/ids?limit={QUEUE_LIMIT}"), *page_reads, *clock_reads], token=token
    )
    ids: list[str] = listed.body.get("petition_ids", [])
    loaded = _QueueOrders(last.shown, answers[: len(page_reads)])
    clocks = _clocks_in(answers[len(page_reads) :])
    before = set(last.listed)
    # the page as the orders listed before sort, loaded while sla reads the clocks of the new ones
    guess = loaded.missing(_queue_page([i for i in ids if i in before], clocks, number)[0])
    new = [i for i in ids if i not in before]
    clock_reads = _clock_reads(new)
    answers = backends.get_all([*clock_reads, *_order_reads(guess)], token=token) if new or guess else []
    clocks.update(_clocks_in(answers[: len(clock_reads)]))
    loaded.add(guess, answers[len(clock_reads) :])
    shown, running = _queue_page(ids, clocks, number)
    still = loaded.missing(shown)  # a new order whose deadline comes before those guessed
    loaded.add(still, backends.get_all(_order_reads(still), token=token) if still else [])
    sessions.remember_queue(sid, LastQueue(tuple(ids), tuple(shown)))
    rows = [{"order": loaded.orders[i], "clock": running[i]} for i in shown if i in loaded.orders]
    pages = _pages(len(ids))
    cut = len(ids) >= QUEUE_LIMIT and QUEUE_LIMIT
    return render_template("queue.html", rows=rows, cut=cut, page=min(number, pages), pages=pages, listed=len(ids))


def _queue_page(
    ids: list[str], clocks: dict[str, dict[str, Any]], number: int
) -> tuple[list[str], dict[str, dict[str, Any] | None]]:
    """Page `number` (the last if beyond) of the ids sorted by their running clocks, nearest deadline
    first, orders waiting for the citizen's rating (no clock running) last; and each id's clock."""
    running = {i: _running_clock(clocks.get(i, {})) for i in ids}
    ranked = sorted(ids, key=lambda i: (running[i] is None, (running[i] or {}).get("deadline") or ""))
    number = min(number, _pages(len(ids)))
    return ranked[(number - 1) * QUEUE_PAGE : number * QUEUE_PAGE], running


def _pages(orders: int) -> int:
    """How many pages of the queue `orders` fill (an empty queue is one empty page)."""
    return max(1, -(-orders // QUEUE_PAGE))


class _QueueOrders:
    """The open orders the queue has loaded from routing, and which ids it has asked for (an id routing
    did not answer has left the caller's area: it is not asked for twice)."""

    def __init__(self, asked: tuple[str, ...], answers: list[Answer]) -> None:
        self.asked: set[str] = set()
        self.orders: dict[str, dict[str, Any]] = {}
        self.add(list(asked), answers)

    def missing(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.asked]

    def add(self, asked: list[str], answers: list[Answer]) -> None:
        self.asked.update(asked)
        for answer in answers:
            for order in answer.body.get("workorders", []) if answer.ok else []:
                if order["status"] in OPEN:
                    self.orders[order["petition_id"]] = order


def _order_reads(petition_ids: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """routing's reads of these orders by id, at most a page (50) each."""
    batches = [petition_ids[i : i + QUEUE_PAGE] for i in range(0, len(petition_ids), QUEUE_PAGE)]
    return [("routing", f"/v1/workorders?ids={quote(','.join(batch), safe=',')}") for batch in batches]


def _page_number(raw: str | None) -> int:
    """A `page` parameter as a page number from 1; anything else is the first page."""
    return int(raw) if raw and raw.isdigit() and 0 < int(raw) < 10_000 else 1


def _clocks_of(petition_ids: list[str]) -> dict[str, dict[str, Any]]:
    """sla's views of these petitions by id, in batches of SLA_BATCH (one call each, at once); a
    petition sla does not know (yet) or does not show this token is simply not there."""
    reads = _clock_reads(petition_ids)
    return _clocks_in(current_backends().get_all(reads, token=_me().token) if reads else [])


def _clock_reads(petition_ids: list[str]) -> list[tuple[str, str]]:
    batches = [petition_ids[i : i + SLA_BATCH] for i in range(0, len(petition_ids), SLA_BATCH)]
    return [("sla", f"/v1/sla/petitions?ids={quote(','.join(batch), safe=',')}") for batch in batches]


def _clocks_in(answers: list[Answer]) -> dict[str, dict[str, Any]]:
    return {item["petition_id"]: item for a in answers if a.ok for item in a.body.get("items", [])}


def _running_clock(sla: dict[str, Any]) -> dict[str, Any] | None:
    """The clock the handler works against now: the running one with the nearest deadline."""
    running = [c for c in sla.get("clocks", []) if c.get("state") in ("on_track", "warned", "breached")]
    return min(running, key=lambda c: c.get("deadline") or "", default=None)


@bp.get("/orders/<petition_id>")
@staff_required("queue")
def order(petition_id: str) -> Any:
    return _order_page(petition_id)


def _order_page(
    petition_id: str, errors: dict[str, str] | None = None, form: dict[str, str] | None = None, show: bool = False
) -> Any:
    pid = quote(petition_id, safe="")
    # the contact details only after the explicit "show": intake records that read in its audit
    # trail (who, and this client) before it answers, and a page without it never fetches them
    contact = "" if show else "?contact=omit"
    # the three reads at once: the page waits for the slowest service, not for all three in turn
    workorder, petition, sla = current_backends().get_all(
        [
            ("routing", f"/v1/workorders/{pid}"),
            ("intake", f"/v1/petitions/{pid}{contact}"),
            ("sla", f"/v1/sla/petitions/{pid}"),
        ],
        token=_me().token,
    )
    if workorder.status == 404:
        abort(404)
    details = petition.body if petition.ok else {}
    status = 400 if errors else 200
    return (
        render_template(
            "order.html",
            o=workorder.body,
            p=details,
            sla=sla.body if sla.ok else {},
            show=show,
            errors=errors or {},
            form=form or {},
            notice=DONE.get(request.args.get("done", "")),
            towns=current_areas().get().towns,
            departments=labels.DEPARTMENT,
        ),
        status,
    )


@bp.post("/orders/<petition_id>/contact-details")
@staff_required("queue")
def show_contact(petition_id: str) -> Any:
    return _order_page(petition_id, show=True)


@bp.post("/orders/<petition_id>/<action>")
@staff_required("act")
def act(petition_id: str, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)
    form = request.form.to_dict()
    body = {k: form[k].strip() for k in ACTIONS[action] if form.get(k, "").strip()}
    if action == "transfer" and "grid_id" not in body and form.get("village_id"):
        # no script to fill the grid list: the village's default grid, whose leader re-dispatches
        grids = current_areas().grids(form["village_id"])
        if grids:
            body["grid_id"] = grids[0]["grid_id"]
    answer = _call("POST", "routing", f"/v1/workorders/{quote(petition_id, safe='')}/{action}", json=body)
    if answer.ok:
        back = form.get("back")
        if back == "triage":
            return redirect(url_for("staff.triage", done=petition_id), 303)
        return redirect(url_for("staff.order", petition_id=petition_id, done=action), 303)
    if answer.status == 404:
        abort(404)
    if answer.status == 409:
        errors = {f"{action}.form": "当前状态不允许此操作。"}
    else:
        errors = {f"{action}.{k}": v for k, v in labels.field_errors(answer.fields).items()}
        errors = errors or {f"{action}.form": "操作失败，请检查后重试。"}
    return _order_page(petition_id, errors, form)


@bp.get("/triage")
@staff_required("triage")
def triage() -> str:
    params = {"triage": "true", "order": "oldest", "limit": TRIAGE_PAGE}
    orders = _call("GET", "routing", "/v1/workorders", params=params).body.get("workorders", [])
    pending = [o for o in orders if o["status"] in OPEN and o["route"] == "triage" and not o["assignment"]["grid_id"]]
    pending.sort(key=lambda o: o["assigned_at"])
    return render_template(
        "triage.html",
        orders=pending,
        more=len(orders) >= TRIAGE_PAGE,
        towns=current_areas().get().towns,
        done=request.args.get("done"),
    )


@bp.get("/areas/villages/<village_id>/grids")
@staff_required()
def village_grids(village_id: str) -> Any:
    """The grid list of the transfer forms' script (the village's grids, default first)."""
    return {"grids": current_areas().grids(village_id)}


@bp.get("/escalations")
@staff_required("escalations")
def escalations() -> str:
    escalated, overdue = current_backends().get_all(
        [("sla", "/v1/sla/overdue?open=true&level=2&limit=100"), ("sla", "/v1/sla/overdue?open=true&limit=100")],
        token=_me().token,
    )
    return render_template(
        "escalations.html",
        escalated=escalated.body.get("items", []),
        overdue=overdue.body.get("items", []),
        # sla answers the lists from a read of at most half a minute ago (docs/sla.md, "Freshness")
        read_at=min(
            filter(None, (escalated.body.get("clocks_read_at"), overdue.body.get("clocks_read_at"))), default=None
        ),
    )


@bp.get("/stats")
@staff_required("stats")
def stats() -> str:
    params = {"town": _me().town_id} if _me().role == "town_supervisor" and _me().town_id else {}
    summary = _call("GET", "stats", "/v1/stats/summary", params=params)
    return render_template("stats.html", s=summary.body if summary.ok else None)
