"""Routing's use cases: the grid registry, routing submitted petitions, and staff actions on work orders.

Each work order is an aggregate in the `workorders` store (commit = new state + events, see
petition_common/store.py); its state also remembers the ids of the intake events it applied, which
makes the consumer idempotent. The registry is one aggregate whose every import is a commit, so an
import replaces the whole registry atomically; every instance routes with the newest version, or
with the one before for at most a second after another instance's import. `open_orders` is a
small projection of unfinished (and recently finished) orders that the county-wide list and the
timeout scanner read; it is rebuilt from the orders if it is ever lost. Lists of one area (a grid
leader's, a village's, a town's) read the area index instead (area_index.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.envelope import Event
from petition_common.mongo import bulk_update
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_common.timesource import Cadence
from petition_kernel.access import Area, may_act, may_read
from petition_kernel.times import format_time, parse_time, utc_now
from services.routing import domain
from services.routing.area_index import TRIAGE, AreaIndex, Move
from services.routing.records import order_from_dict, order_to_dict, to_cloudevent

log = logging.getLogger(__name__)

REGISTRY_ID = "county"
MAX_CONFLICT_RETRIES = 8
_SEEN_KEEP = 64
LIST_LOAD_THREADS = 8
# how stale this instance's registry may be when it routes (another instance's import)
REGISTRY_MAX_AGE_S = 1.0


class NotFound(Exception):
    pass


class RegistryHolder:
    """This process's copy of the newest committed grid registry."""

    def __init__(self, store: AggregateStore):
        self.store = store
        self.version = 0
        self.current: domain.GridRegistry | None = None
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._serialised: tuple[int, bytes] | None = None

    def refresh(self, max_age_s: float = 0.0) -> None:
        """Pick up a newer registry. With `max_age_s`, skip the database check when the last one is
        younger: routing asks before every petition, and an import through another instance is
        then picked up within that time (an import through this one is at once)."""
        now = time.monotonic()
        if now - self._checked_at < max_age_s:
            return
        self._checked_at = now
        if self.store.latest_seq(REGISTRY_ID) <= self.version:
            return
        with self._lock:
            loaded = self.store.load(REGISTRY_ID)
            if loaded.state is not None and loaded.seq > self.version:
                # validated when it was imported; building the spatial index takes ~0.3 s for a county
                self.current = domain.GridRegistry.from_geojson(_unpack(loaded.state["geojson"]))
                self.version = loaded.seq

    def feature_collection(self) -> tuple[int, bytes] | None:
        """(version, the whole registry as GeoJSON bytes) for map clients; built once per version."""
        current, version = self.current, self.version
        if current is None:
            return None
        cached = self._serialised
        if cached is None or cached[0] != version:
            features = [g.to_feature() for g in current.grids]
            body = orjson.dumps({"type": "FeatureCollection", "version": version, "features": features})
            cached = self._serialised = (version, body)
        return cached

    def replace_with(self, geojson: dict[str, Any], imported_by: str) -> dict[str, Any]:
        """Validate and commit a new registry; raises domain.RegistryInvalid with every problem."""
        registry = domain.GridRegistry.from_geojson(geojson)
        for _ in range(MAX_CONFLICT_RETRIES):
            latest = self.store.latest_seq(REGISTRY_ID)
            try:
                self.store.commit(
                    Loaded(REGISTRY_ID, latest, None),
                    {"geojson": _pack(geojson), "imported_by": imported_by, "imported_at": format_time(utc_now())},
                )
                break
            except Conflict:
                continue
        else:
            raise Conflict(REGISTRY_ID)
        self.refresh()
        return {"version": self.version, **registry.to_summary()}


def _pack(geojson: dict[str, Any]) -> bytes:
    # stored as compressed JSON bytes: FerretDB v1 cannot store nested arrays (polygon rings), and
    # the registry is only ever read whole
    return zlib.compress(orjson.dumps(geojson), 6)


def _unpack(blob: bytes) -> dict[str, Any]:
    return orjson.loads(zlib.decompress(blob))


@dataclass(frozen=True)
class RoutingConfig:
    departments: dict[str, str]
    dispatcher_id: str = domain.DEFAULT_DISPATCHER_ID
    feedback_window: timedelta = timedelta(days=7)
    # finished orders stay listable this long, then leave the open_orders projection
    keep_finished: timedelta = timedelta(days=7)


class RoutingService:
    def __init__(
        self,
        db: Database,
        orders: AggregateStore,
        registry: RegistryHolder,
        config: RoutingConfig,
        clock: Callable[[], datetime] = utc_now,
        areas: AggregateStore | None = None,
    ):
        self.orders = orders
        self.registry = registry
        self.config = config
        self.clock = clock
        self.open_orders = db["open_orders"]
        self.areas = AreaIndex(areas or AggregateStore(db, "area_index"), db["area_index_meta"])
        # a list loads its orders a few at a time: each load is a round trip that mostly waits
        self._loader = ThreadPoolExecutor(LIST_LOAD_THREADS, thread_name_prefix="list-load")
        self._timeout_cadence = Cadence(clock)

    # ---- reading

    def load(self, petition_id: str) -> tuple[Loaded, domain.WorkOrder]:
        loaded = self.orders.load(petition_id)
        if loaded.state is None:
            raise NotFound(petition_id)
        return loaded, order_from_dict(loaded.state["order"])

    def view(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        loaded, order = self.load(petition_id)
        if not self._covers(staff, order):
            raise NotFound(petition_id)
        return {**loaded.state["order"], "category": loaded.state.get("category")}  # type: ignore[index]

    @staticmethod
    def _covers(staff: Staff, order: domain.WorkOrder) -> bool:
        return may_read(staff, _area(order))

    def list_orders(
        self,
        staff: Staff,
        grid_id: str | None = None,
        town: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        limit: int = 200,
        triage: bool = False,
    ) -> list[dict[str, Any]]:
        """Open and recently finished orders that this staff member may see, newest first; with
        `triage`, only those without a grid (the dispatch centre's triage queue).

        One area's list reads that area's index and loads only its orders; the county-wide list of a
        dispatcher or auditor pages through open_orders and loads no more than `limit` of them."""
        filters = {"grid_id": grid_id, "town": town, "status": status, "assignee": assignee, "triage": triage}
        area = _area_of(staff, assignee, triage)
        if area == "":
            return []  # a role that sees no order, or a supervisor without a town
        if area is None:
            docs = [d for d in self.open_orders.find({}) if _matches(d, **filters)]
            candidates = [(d["assigned_at"], d["_id"]) for d in docs]
        else:
            candidates = [(at, pid) for pid, at in self.areas.members(area).items()]
        candidates.sort(key=lambda c: c[0], reverse=True)
        pids = [pid for _, pid in candidates]
        out: list[dict[str, Any]] = []
        while pids and len(out) < limit:
            n = max(limit - len(out), LIST_LOAD_THREADS)
            chunk, pids = pids[:n], pids[n:]
            for order in self._loader.map(self._current, chunk):
                # the order as it is now decides, not the index or projection that named it
                if order is not None and self._covers(staff, order) and _matches(_projection(order, 0), **filters):
                    out.append(order_to_dict(order))
        return out[:limit]

    def _current(self, petition_id: str) -> domain.WorkOrder | None:
        try:
            return self.load(petition_id)[1]
        except NotFound:
            return None

    def ensure_area_index(self) -> None:
        """Build the area index from open_orders if this database has none yet (before it existed)."""
        if not self.areas.is_built():
            self.rebuild_area_index()

    def rebuild_area_index(self) -> int:
        return self.areas.rebuild([d["_id"] for d in self.open_orders.find({}, {"_id": 1})], self._current)

    # ---- consuming intake's events

    def on_intake_event(self, event: Event, meta: MessageMeta) -> None:
        pid = event.data["petition_id"]
        loaded = self.orders.load_to_write(pid)  # the commit checks it is the newest; "seen" holds on newer ones
        step = self._apply(pid, loaded.state, event, self.clock())
        if step is not None:
            self._commit(loaded, *step)
        elif loaded.state is not None and event.id in loaded.state["seen"]:
            self._reproject([pid])

    def on_intake_events(self, events: list[tuple[Event, MessageMeta]]) -> None:
        """A poll batch at once (the consumer's batch handler): each petition's events applied in
        order, the changed orders committed in one insert (and their markers in one more), their
        open_orders documents in one bulk write. A petition whose commit lost a race goes through
        `on_intake_event`, event by event."""
        groups = by_petition(events)
        now = self.clock()
        items: list[tuple[Loaded, dict[str, Any], list[Event]]] = []
        orders: list[domain.WorkOrder] = []
        redelivered: list[str] = []
        for pid, petition_events in groups.items():
            loaded = self.orders.load_to_write(pid)
            state, published = loaded.state, []
            if state is not None and any(event.id in state["seen"] for event, _ in petition_events):
                redelivered.append(pid)
            for event, _ in petition_events:
                step = self._apply(pid, state, event, now)
                if step is not None:
                    state, transition = step
                    state = {**state, "order": order_to_dict(transition.order)}
                    published += [to_cloudevent(e) for e in transition.events]
            if state is not loaded.state:
                assert state is not None
                items.append((loaded, state, published))
                orders.append(order_from_dict(state["order"]))
        projected = []
        for (loaded, _, _), order, result in zip(items, orders, self.orders.commit_many(items), strict=True):
            if isinstance(result, Conflict):
                for event, meta in groups[loaded.aggregate_id]:
                    self.on_intake_event(event, meta)
            else:
                projected.append((order, result.seq, _order_of(loaded.state)))
        self._reproject(redelivered)
        if not projected:
            return
        try:
            bulk_update(
                self.open_orders,
                [ReplaceOne({"_id": o.petition_id}, _projection(o, seq), upsert=True) for o, seq, _ in projected],
            )
        except BulkWriteError:  # two upserts raced to insert: write them one by one
            for order, seq, before in projected:
                self._project(order, seq, before)
            return
        self.areas.apply(Move.of(order, before) for order, _, before in projected)
        for order, seq, _ in projected:
            self._project_newer(order, seq)

    def _reproject(self, petition_ids: list[str]) -> None:
        """Project again orders whose events were delivered again: the delivery before may have
        committed the order and stopped before its projection and index were written."""
        for pid in petition_ids:
            loaded, order = self.load(pid)
            self._project(order, loaded.seq)

    def _apply(
        self, pid: str, state: dict[str, Any] | None, event: Event, now: datetime
    ) -> tuple[dict[str, Any], domain.Transition] | None:
        """The order's state after an intake event and the transition it makes; None if the event
        changes nothing (seen before, or a type routing does not act on)."""
        if state is not None and event.id in state["seen"]:
            return None
        if event.type == "petition.submitted":
            if state is not None:
                return None  # already routed (the same petition republished under another event id)
            self.registry.refresh(max_age_s=REGISTRY_MAX_AGE_S)
            decision = domain.route(
                event.data, self.registry.current, self.config.departments, dispatcher_id=self.config.dispatcher_id
            )
            new_state = {
                "seen": [event.id],
                "category": event.data.get("category"),
                "duplicate_of": event.data.get("duplicate_of"),
            }
            return new_state, domain.assign(pid, decision, now=now)
        if state is None:
            # intake's events of one petition share a partition, so `submitted` always comes first
            raise ValueError(f"{event.type} for petition {pid} that routing never saw submitted")
        order = order_from_dict(state["order"])
        try:
            if event.type == "petition.feedback_received":
                transition = domain.feedback(order, satisfaction=event.data["satisfaction"], now=now)
            elif event.type == "petition.withdrawn":
                transition = domain.withdraw(order, now=now)
            else:
                return None
        except domain.InvalidTransition as exc:
            # e.g. a withdrawal that crossed our reply: intake decided without seeing it; keep ours
            log.info("intake event does not apply", extra={"petition_id": pid, "type": event.type, "why": exc.message})
            transition = domain.Transition(order, ())
        return {**state, "seen": [*state["seen"], event.id][-_SEEN_KEEP:]}, transition

    def _commit(self, loaded: Loaded, state: dict[str, Any], transition: domain.Transition) -> None:
        state = {**state, "order": order_to_dict(transition.order)}
        commit = self.orders.commit(loaded, state, [to_cloudevent(e) for e in transition.events])
        self._project(transition.order, commit.seq, _order_of(loaded.state))

    def _project(self, order: domain.WorkOrder, seq: int, before: domain.WorkOrder | None = None) -> None:
        """Keep open_orders and the area index in step with version `seq` (`before` is the version it
        replaced, whose areas it leaves); a slower writer of an older version re-reads and corrects it.

        The documents hold only what lists and the timeout scanner filter on: FerretDB scans this
        collection for every write to it, so small documents keep that cheap.
        """
        self.open_orders.replace_one({"_id": order.petition_id}, _projection(order, seq), upsert=True)
        self.areas.apply([Move.of(order, before)])
        self._project_newer(order, seq)

    def _project_newer(self, order: domain.WorkOrder, seq: int) -> None:
        """After projecting version `seq`: if a newer version exists, project it (it leaves `order`'s areas)."""
        latest = self.orders.latest_seq(order.petition_id)
        if latest > seq:
            _, newer = self.load(order.petition_id)
            self._project(newer, latest, order)

    # ---- staff actions

    def act(self, petition_id: str, staff: Staff, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a staff action; raises NotFound, domain.InvalidTransition (409), domain.InvalidArgument."""
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded, order = self.load(petition_id)
            # acting is not seeing: a village cadre and an auditor see orders but act on none
            if not may_act(staff, _area(order)):
                raise NotFound(petition_id)
            transition = self._transition(order, staff, action, body, self.clock())
            try:
                self._commit(loaded, loaded.state, transition)  # type: ignore[arg-type]
                return order_to_dict(transition.order)
            except Conflict:
                continue
        raise Conflict(petition_id)

    def _transition(
        self, order: domain.WorkOrder, staff: Staff, action: str, body: dict[str, Any], now: datetime
    ) -> domain.Transition:
        sid = staff.staff_id
        if action == "contact":
            return domain.contact(order, staff_id=sid, now=now)
        if action == "reply":
            return domain.reply(
                order,
                staff_id=sid,
                resolution=body.get("resolution"),  # type: ignore[arg-type]
                summary=body.get("summary"),
                now=now,
            )  # type: ignore[arg-type]
        if action == "transfer":
            return domain.transfer(order, self._target(order, body), reason=body.get("reason"), now=now)  # type: ignore[arg-type]
        if action == "pause":
            return domain.pause(order, staff_id=sid, reason=body.get("reason"), now=now)  # type: ignore[arg-type]
        if action == "resume":
            return domain.resume(order, staff_id=sid, now=now)
        if action == "close":
            return domain.close_by_staff(order, staff_id=sid, now=now)
        raise ValueError(f"unknown action {action}")

    def _target(self, order: domain.WorkOrder, body: dict[str, Any]) -> domain.Assignment:
        grid_id, department = body.get("grid_id"), body.get("department")
        if grid_id is None and department is None:
            raise domain.InvalidArgument("grid_id", "give a grid_id, a department, or both")
        if department is not None and (
            not isinstance(department, str) or department not in set(self.config.departments.values())
        ):
            raise domain.InvalidArgument("department", "unknown department")
        if grid_id is None:
            return replace(order.assignment, department=department)
        self.registry.refresh()
        grid = self.registry.current.grid(grid_id) if self.registry.current else None
        if grid is None:
            raise domain.InvalidArgument("grid_id", "no such grid in the registry")
        return domain.Assignment.for_grid(grid, department or order.assignment.department)

    # ---- the timeout scanner

    def close_timed_out_when_due(self, interval_s: float) -> int:
        """`close_timed_out` if `interval_s` has passed since the last run by the wall clock or by the
        service's clock (`Cadence`), so a clock moved forward in steps closes on time; else 0."""
        return self.close_timed_out() if self._timeout_cadence.due(interval_s) else 0

    def close_timed_out(self) -> int:
        """Close replied orders whose feedback window has passed; returns how many this call closed."""
        now = self.clock()
        closed = 0
        for doc in list(self.open_orders.find({})):
            if doc.get("finished_at"):
                if now - parse_time(doc["finished_at"]) > self.config.keep_finished:
                    self._forget(doc["_id"])
                continue
            replied_at = doc.get("replied_at")
            if doc["status"] != domain.Status.REPLIED or not replied_at:
                continue
            if now - parse_time(replied_at) < self.config.feedback_window:
                continue
            try:
                loaded, current = self.load(doc["_id"])
                transition = domain.close_by_timeout(current, now=now, feedback_window=self.config.feedback_window)
                self._commit(loaded, loaded.state, transition)  # type: ignore[arg-type]
                closed += 1
            except (Conflict, domain.InvalidTransition):
                continue  # another instance or the citizen got there first
        return closed

    def _forget(self, petition_id: str) -> None:
        """A finished order leaves the lists: its areas first, so no list names an order it cannot find."""
        with contextlib.suppress(NotFound):
            self.areas.apply([Move.leaving(self.load(petition_id)[1])])
        self.open_orders.delete_one({"_id": petition_id})


def _area(order: domain.WorkOrder) -> Area:
    a = order.assignment
    return Area(grid_id=a.grid_id, village_id=a.village_id, town_id=a.town_id)


def _order_of(state: dict[str, Any] | None) -> domain.WorkOrder | None:
    return order_from_dict(state["order"]) if state is not None else None


def _area_of(staff: Staff, assignee: str | None, triage: bool) -> str | None:
    """The area index a list reads: the caller's own area; None for the county-wide list (open_orders);
    "" when the caller can see no order at all."""
    if staff.role == "grid_leader":
        return f"assignee:{staff.staff_id}"
    if staff.role == "village_cadre":
        return f"village:{staff.village_id}" if staff.village_id else ""
    if staff.role == "town_supervisor":
        return f"town:{staff.town_id}" if staff.town_id else ""
    if staff.role in ("county_dispatcher", "auditor"):
        return f"assignee:{assignee}" if assignee else TRIAGE if triage else None
    return ""


def _matches(
    doc: dict[str, Any], grid_id: str | None, town: str | None, status: str | None, assignee: str | None, triage: bool
) -> bool:
    """Whether an open_orders document passes the list's filters."""
    return (
        (not triage or doc.get("grid_id") is None)
        and (not grid_id or doc.get("grid_id") == grid_id)
        and (not town or town in (doc.get("town"), doc.get("town_id")))
        and (not status or doc.get("status") == status)
        and (not assignee or doc.get("assignee") == assignee)
    )


def _projection(order: domain.WorkOrder, seq: int) -> dict[str, Any]:
    """The order's open_orders document."""
    a = order.assignment
    finished = order.closed_at or order.withdrawn_at
    return {
        "_id": order.petition_id,
        "seq": seq,
        "status": str(order.status),
        "grid_id": a.grid_id,
        "town": a.town,
        "town_id": a.town_id,
        "assignee": a.assignee.staff_id,
        "assigned_at": format_time(order.assigned_at),
        "replied_at": format_time(order.replied_at) if order.replied_at else None,
        "finished_at": format_time(finished) if finished else None,
    }
