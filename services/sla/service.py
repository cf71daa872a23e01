"""The sla service's use cases: following the petitions' events, finding due notices, emitting them once.

Stores (petition_common/store.py: every change is the unique insert of a commit):
- `clocks`: one aggregate per petition, its state `SlaRecord.to_dict()` (the facts its events carried).
  The domain's `apply` is idempotent by event id and order-free, so a redelivered or reordered event
  leaves the same record; a `Conflict` (another instance committed first) is retried on fresh state.
- `notices`: one aggregate per notice, id `f"{petition_id}|{key}"` with key like `reply.0:breached:2`.
  Emitting a notice IS the first commit of that aggregate, carrying the `sla.warning`/`sla.breached`
  event through the outbox. The insert of commit 1 is unique, so of several instances (or a restarted
  one) exactly one succeeds; the others get `Conflict` and know it is taken. `record.emitted` is only a
  cache of what is known emitted, so the scanner stops looking; losing it costs one extra point read.
- `open_clocks` (plain collection, small): the projection of petitions that still need watching, with
  `recheck_at` (views.projection_doc). The scanner reads it whole each interval; only the petitions
  whose `recheck_at` has come are loaded from `clocks`.
- `provisional_clocks` (plain, `_id` only): petitions no longer watched whose reply deadline counts days
  of a provisional calendar year, so that importing the year's notice re-derives them too.
- `calendar_state` (one document): the working-day calendar the deadlines were last derived with, so a
  calendar changed while the service was down is still compared with the old one (`check_calendar`).

Exactly once, in detail: a notice is published iff its aggregate has a non-void commit. A writer
commits only on top of a version with no state (nothing yet, or a void commit the outbox relay wrote
for a writer that died between its outbox marker and its commit), and a `Conflict` counts as "emitted"
only after re-reading shows a real commit. So there is never a second real commit (unique inserts),
and never none once the notice is due (a void or unfinished attempt is retried on the next scan,
because the record is marked emitted only for confirmed notices).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.envelope import Event
from petition_common.mongo import TRANSIENT_ERRORS, bulk_update
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_common.timesource import Cadence, Clock, SystemClock
from petition_kernel.access import Area, may_read
from petition_kernel.calendar import CalendarDirectory, CalendarFileError, WorkCalendar, YearNotCovered
from petition_kernel.sla.clock import DeadlineChange, Notice, deadline_changes, due_notices
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import HANDLED_EVENTS, SlaRecord, apply, mark_emitted
from petition_kernel.times import format_time
from services.sla import views
from services.sla.metrics import CLOCKS, OPEN_STATES, SlaMetrics

log = logging.getLogger(__name__)

SOURCE = "petitions/sla"
MAX_CONFLICT_RETRIES = 8
CALENDAR_STATE_ID = "calendar"
# event ids of notices are derived from the notice's key, so even an impossible second publication
# would carry the same id and be dropped by consumers' de-duplication
_NOTICE_NAMESPACE = uuid.UUID("5b1f0a57-2c3e-4a53-9d0e-6b7a1c2f9e40")


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class SlaConfig:
    policy: SlaPolicy
    calendar: WorkCalendar
    # a clock that ended after its deadline stays on the overdue list this long
    keep_breached: timedelta = timedelta(days=7)


@dataclass
class ScanStats:
    examined: int = 0
    processed: int = 0
    emitted: list[str] = field(default_factory=list)
    failed: int = 0


class SlaService:
    def __init__(
        self,
        db: Database,
        clocks: AggregateStore,
        notices: AggregateStore,
        config: SlaConfig,
        metrics: SlaMetrics,
        clock: Clock | None = None,
        calendar_files: CalendarDirectory | None = None,
        calendar_check_s: float = 60.0,
    ):
        self.clocks = clocks
        self.notices = notices
        self.open_clocks = db["open_clocks"]
        self.provisional_clocks = db["provisional_clocks"]
        self.calendar_state = db["calendar_state"]
        self.config = config
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.calendar_files = calendar_files
        self.calendar_check_s = calendar_check_s
        self._calendar_checked: float | None = None
        self._gaps_logged: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._scan_cadence = Cadence(self.clock)
        self._calendar_gauges()

    def _calendar_gauges(self) -> None:
        official = self.config.calendar.official_years()
        self.metrics.calendar_last_year.set(official[-1] if official else 0)

    @property
    def handlers(self) -> dict[str, Any]:
        """The consumer's handlers: every event type the domain's `apply` takes facts from."""
        return {event_type: self.on_event for event_type in sorted(HANDLED_EVENTS)}

    # ---- consuming intake's and routing's events

    def on_event(self, event: Event, meta: MessageMeta | None = None) -> None:
        """Add the event's facts to the petition's record and keep its projection in step.

        Raises EventDataError (the consumer dead-letters the message after its retries) when the
        data lacks a field the rules need; Conflict only after many lost races (retried by the loop).
        """
        pid = event.data["petition_id"]
        for _ in range(MAX_CONFLICT_RETRIES):
            # the commit checks this is the newest version; the duplicate path's _project re-reads
            loaded = self.clocks.load_to_write(pid)
            old = SlaRecord.from_dict(loaded.state) if loaded.state is not None else None
            new = apply(old, event.type, event.data, event.id)
            if old is not None and new == old:
                # a duplicate: its commit is there, but a crash may have cost the projection
                self._project(new, loaded.seq, self.clock())
                return
            try:
                commit = self.clocks.commit(loaded, new.to_dict())
            except Conflict:
                continue
            now = self.clock()
            self._count_met(old, new)
            self._project(new, commit.seq, now, report_gap=True)
            return
        raise Conflict(pid)

    def on_events(self, events: list[tuple[Event, MessageMeta]]) -> None:
        """A poll batch at once (the consumer's batch handler): every petition's events applied in
        order, the changed records committed in one insert, their projections written in one bulk
        write. A petition whose commit lost a race goes through `on_event`, event by event."""
        groups = by_petition(events)
        changed: list[tuple[Loaded, SlaRecord | None, SlaRecord]] = []
        unchanged: list[tuple[SlaRecord, int]] = []
        for pid, petition_events in groups.items():
            loaded = self.clocks.load_to_write(pid)
            old = SlaRecord.from_dict(loaded.state) if loaded.state is not None else None
            new = old
            for event, _ in petition_events:
                new = apply(new, event.type, event.data, event.id)
            assert new is not None
            if old is not None and new == old:
                unchanged.append((new, loaded.seq))  # duplicates: re-project, a crash may have cost it
            else:
                changed.append((loaded, old, new))
        results = self.clocks.commit_many([(loaded, new.to_dict(), []) for loaded, _, new in changed])
        committed, lost = [], []
        for (loaded, old, new), result in zip(changed, results, strict=True):
            if isinstance(result, Conflict):
                lost.append(loaded.aggregate_id)
                continue
            self._count_met(old, new)
            committed.append((new, result.seq))
        now = self.clock()
        self._project_many(committed, now, report_gap=True)
        self._project_many(unchanged, now)
        for pid in lost:
            for event, meta in groups[pid]:
                self.on_event(event, meta)

    def _project_many(self, records: list[tuple[SlaRecord, int]], now: datetime, report_gap: bool = False) -> None:
        """`_project` for several petitions: one bulk write, then each one's check for a newer version."""
        if not records:
            return
        ops: list[DeleteOne | ReplaceOne] = []
        for record, seq in records:
            pid = record.petition_id
            doc = self._projection_doc(record, seq, now, report_gap)
            ops.append(DeleteOne({"_id": pid}) if doc is None else ReplaceOne({"_id": pid}, doc, upsert=True))
        try:
            bulk_update(self.open_clocks, ops)
        except BulkWriteError:  # two upserts raced to insert: redo them one by one
            for record, seq in records:
                self._project(record, seq, now)
            return
        for record, seq in records:
            if self.clocks.latest_seq(record.petition_id) > seq:  # a newer version's writer was first
                self.reproject(record.petition_id, now)

    def _count_met(self, old: SlaRecord | None, new: SlaRecord) -> None:
        policy, calendar = self.config.policy, self.config.calendar
        before = views.clocks_of(old, None, policy, calendar).states if old is not None else []
        after = views.clocks_of(new, None, policy, calendar).states
        for clock, on_time in views.met_transitions(before, after):
            self.metrics.met.labels(clock, "true" if on_time else "false").inc()

    # ---- the projection

    def _projection_doc(self, record: SlaRecord, seq: int, now: datetime, report_gap: bool) -> dict[str, Any] | None:
        config = self.config
        doc = views.projection_doc(record, seq, now, config.policy, config.calendar, config.keep_breached)
        if report_gap and doc is not None and doc["uncovered_year"] is not None:
            self._calendar_gap(record.petition_id, doc["uncovered_year"])
        if doc is None and views.has_provisional_deadline(record, config.policy, config.calendar):
            # no longer watched, but importing its year's notice may still move its deadline (and stats'
            # on-time verdict): keep its id where check_calendar looks
            self.provisional_clocks.replace_one({"_id": record.petition_id}, {"_id": record.petition_id}, upsert=True)
        return doc

    def _project(self, record: SlaRecord, seq: int, now: datetime, report_gap: bool = False) -> dict[str, Any] | None:
        """Write the record's open_clocks document (or remove it); returns what was written.

        Two writers of different versions may race; each re-reads the newest version after writing
        and writes again if it was not the newest, so the last write is always of the newest version
        (routing's _project does the same).
        """
        pid = record.petition_id
        doc = self._projection_doc(record, seq, now, report_gap)
        # written without reading it first: nearly every event changes it, and a point read
        # costs FerretDB as much as the write it would save
        if doc is None:
            self.open_clocks.delete_one({"_id": pid})
        else:
            try:
                self.open_clocks.replace_one({"_id": pid}, doc, upsert=True)
            except DuplicateKeyError:  # two upserts raced to insert; ours is at least as new
                self.open_clocks.replace_one({"_id": pid}, doc, upsert=True)
        if self.clocks.latest_seq(pid) > seq:  # a newer version's writer was first
            return self.reproject(pid, now)
        return doc

    def reproject(self, petition_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Recompute one petition's open_clocks document from its record (repairs a stale or lost one)."""
        loaded = self.clocks.load(petition_id)
        if loaded.state is None:
            self.open_clocks.delete_one({"_id": petition_id})
            return None
        return self._project(SlaRecord.from_dict(loaded.state), loaded.seq, now or self.clock())

    def audit(self) -> int:
        """Re-project every open_clocks document older than its record; returns how many were stale."""
        stale = 0
        now = self.clock()
        for doc in list(self.open_clocks.find({}, {"_id": 1, "seq": 1})):
            if self.clocks.latest_seq(doc["_id"]) != doc.get("seq"):
                stale += 1
                self.reproject(doc["_id"], now)
        if stale:
            log.warning("open_clocks had stale documents; re-projected", extra={"stale": stale})
        return stale

    def rebuild(self) -> int:
        """Re-project every petition that has a record (after open_clocks was lost). Scans the big
        `clocks_commits` collection once: an operator's repair, never part of normal running."""
        ids = {doc["aggregate_id"] for doc in self.clocks.commits.find({}, {"aggregate_id": 1})}
        now = self.clock()
        for pid in sorted(ids):
            self.reproject(pid, now)
        return len(ids)

    # ---- the scanner

    def scan(self) -> ScanStats:
        """Emit every notice that is due, refresh the gauges; safe to run on several instances at once."""
        started = time.perf_counter()
        now = self.clock()
        stats = ScanStats()
        docs = {doc["_id"]: doc for doc in self.open_clocks.find({})}
        stats.examined = len(docs)
        for pid, doc in list(docs.items()):
            if not views.needs_attention(doc, now, self.config.calendar):
                continue
            stats.processed += 1
            try:
                emitted, new_doc = self.process(pid, now)
            except TRANSIENT_ERRORS:
                raise  # the database is away: end this scan, the next one starts over
            except Exception:
                stats.failed += 1
                self.metrics.scan_errors.inc()
                log.exception("scan failed for a petition; retried next scan", extra={"petition_id": pid})
                continue
            stats.emitted += [f"{pid}|{key}" for key in emitted]
            if new_doc is None:
                docs.pop(pid)
            else:
                docs[pid] = new_doc
        self._refresh_gauges(docs.values(), now)
        self.metrics.scan_seconds.observe(time.perf_counter() - started)
        self.metrics.last_scan.set(now.timestamp())
        if stats.emitted or stats.failed:
            log.info(
                "scan",
                extra={"examined": stats.examined, "emitted": len(stats.emitted), "failed": stats.failed},
            )
        return stats

    def scan_when_due(self, interval_s: float) -> ScanStats | None:
        """Scan if `interval_s` has passed since the last scan, by the wall clock or by the service's
        clock (`Cadence`): a clock moved forward in steps is scanned right after each step, so no
        warning window is stepped over unscanned."""
        if self._calendar_check_due():
            self.check_calendar()
        return self.scan() if self._scan_cadence.due(interval_s) else None

    # ---- the working-day calendar

    def _calendar_check_due(self) -> bool:
        now = time.monotonic()
        if self._calendar_checked is not None and now - self._calendar_checked < self.calendar_check_s:
            return False
        self._calendar_checked = now
        return True

    def check_calendar(self) -> int:
        """Take up a changed calendar directory without a restart, and re-derive the reply deadlines the
        change moves (or confirms, for a year whose notice replaced its provisional calendar); returns how
        many `sla.deadline_changed` this instance published.

        The calendar the deadlines were last derived with is stored, so a file added while the service
        was down is compared with the calendar before it all the same. Every petition still watched or
        with a provisional deadline is derived with both calendars; each difference is published once
        (the unique first commit of its own aggregate, as notices are), so several instances may do this
        at once. The stored calendar is replaced only after every petition was handled: a crash midway
        makes the next check do it again, publishing nothing twice.
        """
        if self.calendar_files is not None:
            try:
                fresh = self.calendar_files.refresh()
            except CalendarFileError as exc:
                log.error("calendar file refused; the calendar in use stays", extra={"error": str(exc)})
                fresh = None
            if fresh is not None:
                self.config = replace(self.config, calendar=fresh)
                self.metrics.calendar_reloads.inc()
                self._calendar_gauges()
                log.warning("working-day calendar reloaded", extra={"official": fresh.official_years()[-1:]})
        calendar = self.config.calendar
        now = self.clock()
        stored = self.calendar_state.find_one({"_id": CALENDAR_STATE_ID})
        since = stored["since"] if stored is not None else now.year - 1
        if stored is not None and stored.get("revision") == calendar.revision(since):
            return 0
        published = 0
        if stored is not None:
            before = WorkCalendar.from_doc(stored)
            years = before.changed_years(calendar)
            if years:
                published = self._rederive_all(before, calendar, years, since, now)
        self.calendar_state.replace_one({"_id": CALENDAR_STATE_ID}, calendar.to_doc(since), upsert=True)
        return published

    def _rederive_all(
        self, before: WorkCalendar, after: WorkCalendar, years: tuple[int, ...], since: int, now: datetime
    ) -> int:
        watched = {doc["_id"] for doc in self.open_clocks.find({}, {"_id": 1})}
        provisional = {doc["_id"] for doc in self.provisional_clocks.find({}, {"_id": 1})}
        revision = after.revision(since)
        published = 0
        for pid in sorted(watched | provisional):
            loaded = self.clocks.load(pid)
            if loaded.state is None:
                continue
            record = SlaRecord.from_dict(loaded.state)
            for change in deadline_changes(record, now, self.config.policy, before, after):
                published += self._emit_deadline_change(change, years, revision, now)
            self._project(record, loaded.seq, now)
            if pid in provisional and not views.has_provisional_deadline(record, self.config.policy, after):
                self.provisional_clocks.delete_one({"_id": pid})
        log.warning(
            "reply deadlines derived again after a calendar change",
            extra={"years": list(years), "petitions": len(watched | provisional), "published": published},
        )
        return published

    def _emit_deadline_change(
        self, change: DeadlineChange, years: tuple[int, ...], revision: str, now: datetime
    ) -> bool:
        nid = f"{change.petition_id}|reply.{change.generation}:deadline:{revision}"
        data = change.data(years)
        state = {"petition_id": change.petition_id, "type": "sla.deadline_changed", "emitted_at": format_time(now)}
        if not self._commit_once(nid, "sla.deadline_changed", change.petition_id, data, state, now):
            return False
        self.metrics.deadline_changes.inc()
        log.info("deadline changed", extra={"petition_id": change.petition_id, "deadline": data["deadline"]})
        return True

    def process(self, petition_id: str, now: datetime) -> tuple[list[str], dict[str, Any] | None]:
        """Emit the petition's due notices; returns the keys confirmed emitted and its new projection."""
        loaded = self.clocks.load(petition_id)
        if loaded.state is None:
            self.open_clocks.delete_one({"_id": petition_id})  # a projection without a record
            return [], None
        record = SlaRecord.from_dict(loaded.state)
        confirmed = [notice.key for notice in self._due(record, now) if self._emit(notice, now)]
        seq = loaded.seq
        if confirmed:
            record, seq = self._mark_emitted(petition_id, confirmed)
        return confirmed, self._project(record, seq, now)

    def _due(self, record: SlaRecord, now: datetime) -> list[Notice]:
        policy, calendar = self.config.policy, self.config.calendar
        try:
            return due_notices(record, now, policy, calendar)
        except YearNotCovered as exc:
            self._calendar_gap(record.petition_id, exc.year)
            return due_notices(record, now, policy, calendar, skip_uncovered=True)

    def _emit(self, notice: Notice, now: datetime) -> bool:
        """Commit the notice (and its event) unless it exists; True once it is known to exist."""
        nid = views.notice_id(notice.petition_id, notice.key)
        data = {**notice.data(), "due_at": format_time(notice.due_at)}
        state = {
            "petition_id": notice.petition_id,
            "key": notice.key,
            "type": notice.event_type,
            "clock": notice.clock,
            "generation": notice.generation,
            "level": notice.level,
            "deadline": data["deadline"],
            "due_at": data["due_at"],
            "emitted_at": format_time(now),
        }
        if not self._commit_once(nid, notice.event_type, notice.petition_id, data, state, now):
            return self.notices.load(nid).state is not None  # emitted before, or by another instance
        self.metrics.notices.labels(notice.event_type, str(notice.level)).inc()
        if notice.kind == views.BREACHED and notice.level == 1:
            self.metrics.breached.labels(notice.clock).inc()
        log.info(
            "notice emitted",
            extra={"petition_id": notice.petition_id, "key": notice.key, "due_at": data["due_at"]},
        )
        return True

    def _commit_once(
        self, nid: str, event_type: str, petition_id: str, data: dict[str, Any], state: dict[str, Any], now: datetime
    ) -> bool:
        """Commit aggregate `nid` of the notices store with its one event, unless it exists: True if this
        call committed it. The event id derives from `nid`, so even a republication carries the same id."""
        loaded = self.notices.load(nid)
        if loaded.state is not None:
            return False  # committed before (by us before a crash, or by another instance)
        event = Event(
            type=event_type,
            source=SOURCE,
            subject=petition_id,
            data=data,
            time=format_time(now),
            id=str(uuid.uuid5(_NOTICE_NAMESPACE, nid)),
        )
        try:
            self.notices.commit(loaded, {**state, "event_id": event.id, "data": data}, [event])
        except Conflict:
            return False  # another writer took this version
        return True

    def _mark_emitted(self, petition_id: str, keys: list[str]) -> tuple[SlaRecord, int]:
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded = self.clocks.load(petition_id)
            assert loaded.state is not None
            record = SlaRecord.from_dict(loaded.state)
            marked = mark_emitted(record, keys)
            if marked == record:
                return record, loaded.seq
            try:
                commit = self.clocks.commit(loaded, marked.to_dict())
            except Conflict:
                continue
            return marked, commit.seq
        raise Conflict(petition_id)

    def _refresh_gauges(self, docs: Any, now: datetime) -> None:
        summary = views.summarize(docs, now)
        for clock in CLOCKS:
            for state in OPEN_STATES:
                self.metrics.open_clocks.labels(clock, state).set(summary.counts.get((clock, state), 0))
        oldest = summary.oldest_started_at
        self.metrics.oldest_open_age.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        self.metrics.uncovered_records.set(summary.uncovered)
        self.metrics.provisional_clocks.set(summary.provisional)

    def _calendar_gap(self, petition_id: str, year: int) -> None:
        self.metrics.calendar_not_covered.labels(str(year)).inc()
        key = (petition_id, year)
        if key in self._gaps_logged:
            return
        self._gaps_logged[key] = None
        if len(self._gaps_logged) > 10_000:
            self._gaps_logged.popitem(last=False)
        log.error(
            "reply deadline not computable: the working-day calendar lacks a year (not even a provisional "
            "one); its reply notices are skipped until config/calendar/<year>.yaml is added",
            extra={"petition_id": petition_id, "year": year},
        )

    # ---- reading

    def petition(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        """The petition's clocks, pauses and emitted notices; NotFound if unknown or not covered."""
        loaded = self.clocks.load(petition_id)
        if loaded.state is None:
            raise NotFound(petition_id)
        record = SlaRecord.from_dict(loaded.state)
        if not may_read(staff, Area(grid_id=record.grid_id)):
            raise NotFound(petition_id)
        now = self.clock()
        policy, calendar = self.config.policy, self.config.calendar
        states = views.clocks_of(record, now, policy, calendar).states
        notices = []
        for nid in views.notice_ids(record, states, policy):
            state = self.notices.load(nid).state
            if state is not None:
                notices.append(
                    {k: state[k] for k in ("key", "type", "clock", "generation", "level", "deadline")}
                    | {
                        "due_at": state["due_at"],
                        "emitted_at": state["emitted_at"],
                        "event_id": state["event_id"],
                        "remaining_seconds": state["data"].get("remaining_seconds"),
                        "overdue_seconds": state["data"].get("overdue_seconds"),
                    }
                )
        return views.petition_view(record, now, policy, calendar, notices)

    def overdue(
        self, staff: Staff, flt: views.OverdueFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None, datetime]:
        """One page of overdue clocks this staff member may see (views.overdue_items says which)."""
        now = self.clock()
        items = views.overdue_items(self.open_clocks.find({}), now, staff, flt)
        chunk, next_cursor = views.page(items, limit, cursor)
        return chunk, next_cursor, now
