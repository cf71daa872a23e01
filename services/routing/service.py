"""Routing's use cases: the grid registry, routing submitted petitions, and staff actions on work orders.

Each work order is an aggregate in the `workorders` store (commit = new state + events, see
petition_common/store.py); its state also remembers the ids of the intake events it applied, which
makes the consumer idempotent (domain/intake.py). The registry is one aggregate whose every import
is a commit (registry_holder.py). `open_orders` is a small projection of unfinished (and recently
finished) orders that the county-wide list and the timeout scanner read; it is rebuilt from the
orders if it is ever lost. Lists of one area (a grid leader's, a village's, a town's) read the area
index instead (area_index.py).

A use case loads, asks the domain (every state transition is there), writes the order's open_orders
document, commits, and moves the order in the area index, together with the commits other requests
make meanwhile (group commit); a conflict with another writer reruns it on fresh state
(petition_common.aggregates; docs/reliability.md, "A work order's projection" and "Group commit").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pymongo import DeleteOne
from pymongo.errors import DuplicateKeyError

from petition_common.aggregates import Projection, act_on_remembered, commit_batch
from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.contract import SchemaViolation
from petition_common.due import DueQueue
from petition_common.envelope import Event
from petition_common.group_commit import GroupCommit, rounds
from petition_common.mongo import bulk_update
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_common.timesource import Cadence
from petition_kernel.access import Area, may_act, may_read
from petition_kernel.times import parse_time, utc_now
from services.routing import domain
from services.routing.area_index import TRIAGE, AreaIndex, Move
from services.routing.records import (
    intake_event,
    open_order_doc,
    order_to_dict,
    petition_from_state,
    petition_to_state,
    to_cloudevent,
)
from services.routing.registry_holder import RegistryHolder

log = logging.getLogger(__name__)

# orders a list loads at once: each load is a wait on the database (one `_id` read when the state is
# remembered), and under the intake load 8 at a time left a 100-order queue at 300-500 ms p95; 32 do
# not crowd the driver's pool (100 connections) and are only threads
LIST_LOAD_THREADS = 32
# how stale this instance's registry may be when it routes (another instance's import)
REGISTRY_MAX_AGE_S = 1.0

Decide = Callable[[domain.WorkOrder, datetime], domain.Transition]


# marks a database whose open orders were queued for the timeout scanner (`_queue_open_orders_once`)
TIMEOUTS_BUILT = "built"


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class RoutingConfig:
    departments: dict[str, str]
    dispatcher_id: str = domain.DEFAULT_DISPATCHER_ID
    feedback_window: timedelta = timedelta(days=7)
    # finished orders stay listable this long, then leave the open_orders projection
    keep_finished: timedelta = timedelta(days=7)
    # how often the timeout scanner runs (by the wall clock or the service's, whichever is first)
    timeout_scan_s: float = 60.0


@dataclass(frozen=True)
class _Change:
    """A work order's next version on its way to its commit."""

    loaded: Loaded
    petition: domain.RoutedPetition
    events: tuple[domain.WorkOrderEvent, ...]

    @property
    def order_id(self) -> str:
        return self.loaded.aggregate_id

    @cached_property
    def cloudevents(self) -> list[Event]:
        return [to_cloudevent(e) for e in self.events]

    @property
    def before_order(self) -> domain.WorkOrder | None:
        before = _petition_of(self.loaded)
        return before.order if before is not None else None


class RoutingService:
    def __init__(
        self,
        orders: AggregateStore,
        open_orders: Projection,
        areas: AreaIndex,
        registry: RegistryHolder,
        config: RoutingConfig,
        loader: Executor,
        timeouts: DueQueue,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.orders = orders
        self.open_orders = open_orders
        self.areas = areas
        # when the timeout scanner must look at an order again (a reply's window, a finished order's
        # time in the lists), queued with the change that starts it ("the timeout scanner" below)
        self.timeouts = timeouts
        self._timeouts_built = False
        self.registry = registry
        self.config = config
        self.clock = clock
        # a list loads its orders a few at a time: each load is a round trip that mostly waits
        self._loader = loader
        self._timeout_cadence = Cadence(clock)
        # staff actions (and the scanner's and a consumer's single commits) that arrive while others
        # are being written are written together next (group_commit.py)
        self.commits: GroupCommit[_Change, BaseException | None] = GroupCommit(self._commit_group)

    # ---- reading

    def load(self, petition_id: str) -> tuple[Loaded, domain.WorkOrder]:
        loaded, petition = self._load(petition_id)
        return loaded, petition.order

    def _load(self, petition_id: str, to_write: bool = False) -> tuple[Loaded, domain.RoutedPetition]:
        loaded = self.orders.load_to_write(petition_id) if to_write else self.orders.load(petition_id)
        if loaded.state is None:
            raise NotFound(petition_id)
        return loaded, petition_from_state(loaded.state)

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
        oldest_first: bool = False,
        ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Open and recently finished orders that this staff member may see, newest first (or oldest
        first: a queue worked from its oldest end); with `triage`, only those without a grid (the
        dispatch centre's triage queue); with `ids`, only these, in their order (a page of a queue the
        caller sorted itself, from `listed_ids`).

        One area's list reads that area's index and loads only its orders; the county-wide list of a
        dispatcher or auditor pages through open_orders and loads no more than `limit` of them."""
        filters = {"grid_id": grid_id, "town": town, "status": status, "assignee": assignee, "triage": triage}
        area = _area_of(staff, assignee, triage)
        if area == "":
            return []  # a role that sees no order, or a supervisor without a town: nothing to load
        pids = list(ids) if ids is not None else self._candidates(area, filters, oldest_first)
        out: list[dict[str, Any]] = []
        while pids and len(out) < limit:
            n = max(limit - len(out), LIST_LOAD_THREADS)
            chunk, pids = pids[:n], pids[n:]
            for order in self._loader.map(self._current, chunk):
                # the order as it is now decides, not the index or projection that named it
                if order is not None and self._covers(staff, order) and _matches(open_order_doc(order, 0), **filters):
                    out.append(order_to_dict(order))
        return out[:limit]

    def listed_ids(
        self,
        staff: Staff,
        assignee: str | None = None,
        triage: bool = False,
        limit: int = 200,
        oldest_first: bool = False,
    ) -> list[str]:
        """The ids of the orders listed for the caller's area, newest assignment first (or oldest),
        without loading any: the area index's shards, one or two reads each. For a caller that sorts by
        something routing does not know (sla's deadlines) and then loads one page (`ids`). Like the
        index, it may still name an order that has just left the area; loading it tells."""
        area = _area_of(staff, assignee, triage)
        if area == "":
            return []
        filters = {"grid_id": None, "town": None, "status": None, "assignee": assignee, "triage": triage}
        return self._candidates(area, filters, oldest_first)[:limit]

    def _candidates(self, area: str | None, filters: dict[str, Any], oldest_first: bool) -> list[str]:
        """The ids an area's list may show, in list order: from its index, or for the county-wide
        list (area None) from open_orders with the filters applied."""
        if area is None:
            docs = [d for d in self.open_orders.collection.find({}) if _matches(d, **filters)]
            candidates = [(d["assigned_at"], d["_id"]) for d in docs]
        else:
            candidates = [(at, pid) for pid, at in self.areas.members(area).items()]
        candidates.sort(key=lambda c: c[0], reverse=not oldest_first)
        return [pid for _, pid in candidates]

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
        return self.areas.rebuild([d["_id"] for d in self.open_orders.collection.find({}, {"_id": 1})], self._current)

    # ---- the grid registry

    def current_registry(self, max_age_s: float = 0.0) -> domain.GridRegistry | None:
        """The newest registry (as of `max_age_s` ago at most); None before the first import."""
        self.registry.refresh(max_age_s=max_age_s)
        return self.registry.current

    def registry_geojson(self) -> tuple[int, bytes] | None:
        """(version, the whole registry as GeoJSON bytes), None before the first import."""
        self.registry.refresh(max_age_s=REGISTRY_MAX_AGE_S)
        return self.registry.feature_collection()

    def import_registry(self, geojson: dict[str, Any], imported_by: str) -> dict[str, Any]:
        """Validate and commit a new registry; raises domain.RegistryInvalid with every problem."""
        registry = domain.GridRegistry.from_geojson(geojson)
        version = self.registry.commit(geojson, imported_by, self.clock())
        return {"version": version, **registry.to_summary()}

    def _rules(self) -> domain.RoutingRules:
        return domain.RoutingRules(self.registry.current, self.config.departments, self.config.dispatcher_id)

    # ---- consuming intake's events

    def on_intake_event(self, event: Event, meta: MessageMeta) -> None:
        fact = intake_event(event)
        if fact.type != domain.SUBMITTED:
            self._apply_intake(fact)
            return
        try:  # a submission creates the order: not looked for first when nothing is remembered of it
            self._apply_intake(fact, new=True)
        except Conflict:  # it exists (a redelivery this instance does not remember): decide on it
            self._apply_intake(fact)

    def _apply_intake(self, fact: domain.IntakeEvent, new: bool = False) -> None:
        loaded = self.orders.load_to_write(fact.petition_id, new=new)  # the commit checks it is the newest
        petition = _petition_of(loaded)  # "applied before" holds on any newer version too
        self.registry.refresh(max_age_s=REGISTRY_MAX_AGE_S)
        step = domain.on_intake_event(petition, fact, self._rules(), now=self.clock())
        if step is not None:
            _log_ignored(step, fact)
            self._commit(loaded, step.petition, step.transition.events)
        elif petition is not None and petition.applied(fact.id):
            self._reproject([fact.petition_id])

    def on_intake_events(self, events: list[tuple[Event, MessageMeta]]) -> None:
        """A poll batch at once (the consumer's batch handler): each petition's events applied in
        order, the changed orders committed in one insert (and their markers in one more), their
        open_orders documents in one bulk write. A petition whose commit lost a race goes through
        `on_intake_event`, event by event."""
        groups = by_petition(events)
        now = self.clock()
        items: list[tuple[Loaded, dict[str, Any], list[Event]]] = []
        changed: dict[str, tuple[domain.WorkOrder, domain.WorkOrder | None]] = {}
        redelivered: list[str] = []
        for pid, petition_events in groups.items():
            facts = [intake_event(event) for event, _ in petition_events]
            # a submission creates the order: not looked for when nothing is remembered of it (a Conflict
            # sends the petition's events through on_intake_event, which then reads)
            loaded = self.orders.load_to_write(pid, new=any(f.type == domain.SUBMITTED for f in facts))
            petition = before = _petition_of(loaded)
            if before is not None and any(before.applied(fact.id) for fact in facts):
                redelivered.append(pid)
            self.registry.refresh(max_age_s=REGISTRY_MAX_AGE_S)
            rules, published = self._rules(), []
            for fact in facts:
                step = domain.on_intake_event(petition, fact, rules, now=now)
                if step is not None:
                    _log_ignored(step, fact)
                    petition = step.petition
                    published += [to_cloudevent(e) for e in step.transition.events]
            if petition is not before:
                assert petition is not None
                items.append((loaded, petition_to_state(petition), published))
                changed[pid] = (petition.order, before.order if before is not None else None)
        self._queue_timers(list(changed.values()))
        # projected before they are committed, which needs no check afterwards (_commit); an order that
        # then loses is projected again at its newest version before its events are applied to it
        self.open_orders.put_before_commit(
            [
                (loaded.aggregate_id, open_order_doc(changed[loaded.aggregate_id][0], loaded.seq + 1))
                for loaded, _, _ in items
            ]
        )
        try:
            batch = commit_batch(self.orders, items)
        except BaseException:
            self._repair([loaded.aggregate_id for loaded, _, _ in items])
            raise
        self._repair(batch.lost_ids)
        for pid in batch.lost_ids:
            for event, meta in groups[pid]:
                self.on_intake_event(event, meta)
        self._reproject(redelivered)
        self._project_many([(*changed[loaded.aggregate_id], commit.seq) for (loaded, _, _), commit in batch.committed])

    def _reproject(self, petition_ids: list[str]) -> None:
        """Project again orders whose events were delivered again: the delivery before may have
        committed the order and stopped before its projection and index were written."""
        for pid in petition_ids:
            loaded, order = self.load(pid)
            self._project(order, loaded.seq)

    def _commit(
        self, loaded: Loaded, petition: domain.RoutedPetition, events: tuple[domain.WorkOrderEvent, ...]
    ) -> None:
        """Commit `petition` as the version after `loaded` (Conflict if another writer was first),
        together with the commits other requests make meanwhile (group commit, `_commit_group`)."""
        self.commits.run(_Change(loaded, petition, events))

    def _commit_group(self, changes: Sequence[_Change]) -> list[BaseException | None]:
        """The changes of a group, a round per order they change (two requests may act on one order):
        each round's open_orders documents in one write, markers and commits in one insert each, and
        the area moves. The outcome of each: None when committed, else the error it raised."""
        outcomes: list[BaseException | None] = [None] * len(changes)
        todo: list[int] = []
        for i, change in enumerate(changes):
            try:  # an event the contract refuses fails its own request, before anything is written
                self.orders.check(change.cloudevents)
                todo.append(i)
            except SchemaViolation as exc:
                outcomes[i] = exc
        for round_ in rounds([changes[i].order_id for i in todo]):
            indexes = [todo[k] for k in round_]
            try:
                results = self._commit_round([changes[i] for i in indexes])
            except BaseException as exc:
                results = [exc] * len(indexes)
            for i, result in zip(indexes, results, strict=True):
                outcomes[i] = result
        return outcomes

    def _commit_round(self, changes: list[_Change]) -> list[BaseException | None]:
        # the open_orders documents first (Projection.put_before_commit): no read for a newer version
        # after them; a commit that fails leaves its document naming a version that does not exist, so
        # it is repaired
        self._queue_timers([(c.petition.order, c.before_order) for c in changes])
        self.open_orders.put_before_commit(
            [(c.order_id, open_order_doc(c.petition.order, c.loaded.seq + 1)) for c in changes]
        )
        items = [(c.loaded, petition_to_state(c.petition), c.cloudevents) for c in changes]
        try:
            batch = commit_batch(self.orders, items)
        except BaseException:
            self._repair([c.order_id for c in changes])
            raise
        self._repair(batch.lost_ids)
        lost = set(batch.lost_ids)
        committed = {loaded.aggregate_id: commit for (loaded, _, _), commit in batch.committed}
        self._project_many(
            [(c.petition.order, c.before_order, committed[c.order_id].seq) for c in changes if c.order_id in committed]
        )
        return [Conflict(c.order_id) if c.order_id in lost else None for c in changes]

    def _repair(self, petition_ids: list[str]) -> None:
        """Project the newest version of orders whose commit failed after their document was written,
        or remove the document of an order that does not exist. A database still away leaves the
        document as it is: the retry of the action or the event projects it again."""
        for pid in petition_ids:
            try:
                self._reproject([pid])
            except NotFound:
                with contextlib.suppress(Exception):
                    self.open_orders.put(pid, 0, None)
            except Exception as exc:
                log.warning("open_orders not repaired", extra={"petition_id": pid, "error": repr(exc)})

    # ---- projecting: open_orders and the area index

    def _project(self, order: domain.WorkOrder, seq: int, before: domain.WorkOrder | None = None) -> None:
        """Keep the area index and open_orders in step with version `seq` (`before` is the version it
        replaced, whose areas it leaves); a slower writer of an older version finds the newer one
        after both writes and projects it, so the last writes are always of the newest version."""
        self.areas.apply([Move.of(order, before)])
        if self.open_orders.put(order.petition_id, seq, open_order_doc(order, seq)):
            self._project_newest(order)

    def _project_many(self, projected: list[tuple[domain.WorkOrder, domain.WorkOrder | None, int]]) -> None:
        """The area moves of versions whose open_orders documents were written before their commits
        (`_commit`), in one commit per shard. An order that left areas may have been moved on by a
        newer version meanwhile, whose removal of an area this late one must not undo: it checks, and
        projects the newest (the document was safe already: it was written first)."""
        if not projected:
            return
        moves = [(order, Move.of(order, before), seq) for order, before, seq in projected]
        self.areas.apply(move for _, move, _ in moves)
        for order, move, seq in moves:
            if move.remove and self.open_orders.newer_exists(order.petition_id, seq):
                self._project_newest(order)

    def _project_newest(self, projected: domain.WorkOrder) -> None:
        """Project the newest version of an order after `projected` (whose areas it leaves)."""
        loaded, newest = self.load(projected.petition_id)
        self._project(newest, loaded.seq, projected)

    # ---- staff actions

    def contact(self, petition_id: str, staff: Staff, note: Any = None) -> dict[str, Any]:
        # the contract lets the request carry a note; routing keeps none (it may quote the citizen)
        return self._act(petition_id, staff, lambda order, now: domain.contact(order, staff_id=staff.staff_id, now=now))

    def reply(self, petition_id: str, staff: Staff, resolution: Any = None, summary: Any = None) -> dict[str, Any]:
        return self._act(
            petition_id,
            staff,
            lambda order, now: domain.reply(
                order, staff_id=staff.staff_id, resolution=resolution, summary=summary, now=now
            ),
        )

    def transfer(
        self, petition_id: str, staff: Staff, grid_id: Any = None, department: Any = None, reason: Any = None
    ) -> dict[str, Any]:
        if grid_id is not None:
            self.registry.refresh()  # the grid named must be in the newest registry

        def decide(order: domain.WorkOrder, now: datetime) -> domain.Transition:
            to = domain.transfer_target(order, grid_id, department, self._rules())
            return domain.transfer(order, to, reason=reason, now=now)

        return self._act(petition_id, staff, decide)

    def pause(self, petition_id: str, staff: Staff, reason: Any = None) -> dict[str, Any]:
        return self._act(
            petition_id, staff, lambda order, now: domain.pause(order, staff_id=staff.staff_id, reason=reason, now=now)
        )

    def resume(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        return self._act(petition_id, staff, lambda order, now: domain.resume(order, staff_id=staff.staff_id, now=now))

    def close(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        return self._act(
            petition_id, staff, lambda order, now: domain.close_by_staff(order, staff_id=staff.staff_id, now=now)
        )

    def _act(self, petition_id: str, staff: Staff, decide: Decide) -> dict[str, Any]:
        """Apply a staff action; raises NotFound, domain.InvalidTransition (409), domain.InvalidArgument."""

        def attempt(to_write: bool) -> dict[str, Any]:
            loaded, petition = self._load(petition_id, to_write)
            # acting is not seeing: a village cadre and an auditor see orders but act on none
            if not may_act(staff, _area(petition.order)):
                raise NotFound(petition_id)
            transition = decide(petition.order, self.clock())
            self._commit(loaded, replace(petition, order=transition.order), transition.events)
            return order_to_dict(transition.order)

        refusals = (NotFound, domain.InvalidTransition, domain.InvalidArgument)
        return act_on_remembered(attempt, refusals, petition_id)

    # ---- the timeout scanner

    def close_timed_out_when_due(self, interval_s: float) -> int:
        """`close_timed_out` if `interval_s` has passed since the last run by the wall clock or by the
        service's clock (`Cadence`), so a clock moved forward in steps closes on time; else 0."""
        return self.close_timed_out() if self._timeout_cadence.due(interval_s) else 0

    def close_timed_out(self) -> int:
        """Close replied orders whose feedback window has passed, and let finished orders that have been
        listed long enough leave the lists; returns how many this call closed.

        It reads only the orders whose time has come, from the `timeouts` queue (petition_common.due):
        each change that starts a window queues the order under the hour it ends, before its commit
        (`_queue_timers`), so nothing is missed; what a failed commit queued is passed over here. An
        hour is taken once it has passed (plus a grace), so an order closes or leaves at most about two
        hours after its time. The scan of the whole open_orders this replaced read ~13,700 orders a run
        at the year's backlog (bench/RESULTS.md)."""
        now = self.clock()
        self._queue_open_orders_once(now)
        taken = self.timeouts.take(now)
        closed = 0
        spent: list[str] = []
        later: list[tuple[datetime, dict[str, str]]] = []
        for pid, why in dict.fromkeys((p["petition_id"], p["why"]) for p in taken.payloads):
            try:
                if why == domain.FINISHED:
                    finished = self._committed_finish(pid)
                    if finished is not None and finished + self.config.keep_finished <= now:
                        spent.append(pid)
                    elif finished is not None:
                        later.append((finished + self.config.keep_finished, {"petition_id": pid, "why": why}))
                elif self._reply_timed_out(pid, now):
                    self._close_timed_out(pid, now)
                    closed += 1
            except Conflict:  # others kept writing the order: looked at again an hour or two later
                later.append((now, {"petition_id": pid, "why": why}))
            except (domain.InvalidTransition, NotFound):
                continue  # another instance or the citizen got there first
        self._forget(spent)
        self.timeouts.add(later, horizon=now)
        self.timeouts.done(taken)
        return closed

    def _committed_finish(self, petition_id: str) -> datetime | None:
        """When the order finished; None if its finish was never committed (a process died between a
        close's open_orders document and its commit), whose document is then put right. A finished order
        never changes again, so a remembered finished version is the newest."""
        order = self._load(petition_id, to_write=True)[1].order
        if domain.finished_at(order) is None:
            loaded, order = self.load(petition_id)
            if domain.finished_at(order) is None:
                self._project(order, loaded.seq)
        return domain.finished_at(order)

    def _reply_timed_out(self, petition_id: str, now: datetime) -> bool:
        """Whether the order waits for a rating past its window, on the version this instance remembers
        or, when that says no and may be old (not finished), on the newest. A reply since then has
        queued its own window."""
        window = self.config.feedback_window
        order = self._load(petition_id, to_write=True)[1].order
        if not domain.due_for_timeout_close(order, now, window) and domain.finished_at(order) is None:
            order = self.load(petition_id)[1]
        return domain.due_for_timeout_close(order, now, window)

    def _queue_timers(self, changes: Sequence[tuple[domain.WorkOrder, domain.WorkOrder | None]]) -> None:
        """Queue what the changes start, before they are committed (`close_timed_out`)."""
        window, keep = self.config.feedback_window, self.config.keep_finished
        items = [
            (due, {"petition_id": order.petition_id, "why": why})
            for order, before in changes
            for due, why in domain.timers(order, before, window, keep)
        ]
        if items:
            self.timeouts.add(items, horizon=self.clock())

    def _queue_open_orders_once(self, now: datetime) -> None:
        """A database from before the queue (2026-12-08) has replied and finished orders in open_orders
        that nothing queued: queue them all, once per database (marked by `TIMEOUTS_BUILT`)."""
        if self._timeouts_built:
            return
        if self.timeouts.collection.find_one({"_id": TIMEOUTS_BUILT}) is None:
            items = []
            for doc in self.open_orders.collection.find({}, {"status": 1, "replied_at": 1, "finished_at": 1}):
                if doc.get("finished_at"):
                    due, why = parse_time(doc["finished_at"]) + self.config.keep_finished, domain.FINISHED
                elif doc.get("status") == domain.Status.REPLIED and doc.get("replied_at"):
                    due, why = parse_time(doc["replied_at"]) + self.config.feedback_window, domain.REPLY_WAITS
                else:
                    continue
                items.append((due, {"petition_id": doc["_id"], "why": why}))
            self.timeouts.add(items, horizon=now)
            with contextlib.suppress(DuplicateKeyError):  # another instance queued them too
                self.timeouts.collection.insert_one({"_id": TIMEOUTS_BUILT, "at": now})
        self._timeouts_built = True

    def _close_timed_out(self, petition_id: str, now: datetime) -> None:
        """On the version this instance remembers (the commit checks it is the newest); a refusal is
        decided again on the newest, as for staff actions."""
        window = self.config.feedback_window
        loaded, petition = self._load(petition_id, to_write=True)
        try:
            transition = domain.close_by_timeout(petition.order, now=now, feedback_window=window)
        except domain.InvalidTransition:
            loaded, petition = self._load(petition_id)
            transition = domain.close_by_timeout(petition.order, now=now, feedback_window=window)
        self._commit(loaded, replace(petition, order=transition.order), transition.events)

    def _forget(self, petition_ids: list[str]) -> None:
        """Finished orders leave the lists: their areas first (one commit per shard for all of them),
        so no list names an order it cannot find, then open_orders in one bulk write of deletes by `_id`
        (a delete by `$in` would read open_orders whole on FerretDB). A finished order never changes
        again, so a remembered finished version is the newest."""
        if not petition_ids:
            return
        moves = []
        spent = []
        for pid in petition_ids:
            with contextlib.suppress(NotFound):
                order = self._load(pid, to_write=True)[1].order
                if not (order.closed_at or order.withdrawn_at):
                    loaded, order = self.load(pid)
                    if not (order.closed_at or order.withdrawn_at):  # the document of a close never committed
                        self._project(order, loaded.seq)
                        continue
                moves.append(Move.leaving(order))
            spent.append(pid)
        self.areas.apply(moves)
        bulk_update(self.open_orders.collection, [DeleteOne({"_id": pid}) for pid in spent])


def _petition_of(loaded: Loaded) -> domain.RoutedPetition | None:
    return petition_from_state(loaded.state) if loaded.state is not None else None


def _log_ignored(step: domain.Step, fact: domain.IntakeEvent) -> None:
    if step.ignored is not None:
        log.info(
            "intake event does not apply",
            extra={"petition_id": fact.petition_id, "type": fact.type, "why": step.ignored},
        )


def _area(order: domain.WorkOrder) -> Area:
    a = order.assignment
    return Area(grid_id=a.grid_id, village_id=a.village_id, town_id=a.town_id)


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
