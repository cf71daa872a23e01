"""The sla service's use cases: following the petitions' events, finding due notices, emitting them once.

Each use case loads, asks the domain (`services.sla.domain`, on the kernel's SLA rules), commits and
projects. Stores (petition_common/store.py: every change is the unique insert of a commit):
- `clocks`: one aggregate per petition, its state `SlaRecord.to_dict()` (the facts its events carried).
  `domain.following.follow` is idempotent by event id and order-free, so a redelivered or reordered
  event leaves the same record; a `Conflict` (another instance committed first) is retried on fresh state
  (`petition_common.aggregates`: the retry, the batch commit and the projection's write-then-check).
- `notices`: one aggregate per notice (`domain.notices`). Emitting a notice IS the first commit of that
  aggregate, carrying the `sla.warning`/`sla.breached` event through the outbox. The insert of commit 1
  is unique, so of several instances (or a restarted one) exactly one succeeds; the others get
  `Conflict` and know it is taken. `record.emitted` is only a cache of what is known emitted, so the
  scanner stops looking; losing it costs one extra point read.
- `open_clocks` (plain collection, small): the projection of petitions that still need watching, with
  `recheck_at` (`domain.open_clocks`). The scanner reads it whole each interval; only the petitions
  whose `recheck_at` has come are loaded from `clocks`. Each document names the calendar it was derived
  with; a scanner that finds another one looks at the calendar directory before deriving anything.
  The due petitions are handled in groups (`SCAN_GROUP`), with one insert for all of a group's notices,
  one for the records' marks and one bulk write for the projections.

Owning petitions: with an `Ownership` (the consumer's partitions, petition_common.ownership) the scanner
looks only after the petitions whose intake partition this instance's member holds, so under a lease
the consumer and the scanner of this instance are a petition's only writers: they build on the record
the store remembers and skip the projection's check for a newer version. Without a lease they check.
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
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pymongo.database import Database

from petition_common.aggregates import Item, Projection, commit_batch, retry_on_conflict
from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.envelope import Event
from petition_common.mongo import TRANSIENT_ERRORS
from petition_common.ownership import Lease, Ownership
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_common.timesource import Cadence, Clock, SystemClock
from petition_kernel.access import Area, may_read
from petition_kernel.calendar import CalendarDirectory, CalendarFileError, WorkCalendar
from petition_kernel.sla.clock import Notice, deadline_changes
from petition_kernel.sla.record import SlaRecord, mark_emitted
from services.sla.domain.calendar_change import calendar_change
from services.sla.domain.clocks import clocks_of, has_provisional_deadline
from services.sla.domain.config import SlaConfig
from services.sla.domain.following import follow, newly_met
from services.sla.domain.notices import (
    BREACHED,
    Emission,
    deadline_change_emission,
    due,
    notice_emission,
    notice_entry,
    notice_ids,
)
from services.sla.domain.open_clocks import Watch, derived_elsewhere, needs_attention, summarize, watch
from services.sla.domain.petition_clocks import petition_view
from services.sla.metrics import CLOCKS, OPEN_STATES, SlaMetrics

__all__ = ["NotFound", "ScanStats", "SlaConfig", "SlaService"]

log = logging.getLogger(__name__)

NOTICE_READ_THREADS = 8
# petitions a scan handles with one group of writes (the lock on this instance's writers is held that long)
SCAN_GROUP = 64
SUBMITTED = "petition.submitted"
CALENDAR_STATE_ID = "calendar"


class NotFound(Exception):
    pass


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
        ownership: Ownership | None = None,
    ):
        self.clocks = clocks
        self.notices = notices
        self.open_clocks = db["open_clocks"]
        self.projection = Projection(self.open_clocks, clocks)
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
        self._notice_reader = ThreadPoolExecutor(NOTICE_READ_THREADS, thread_name_prefix="notice-read")
        # with an ownership, this instance's consumer and scanner are the only writers of the petitions
        # its member holds (module docstring); the lock keeps the two from projecting out of order
        self.ownership = ownership
        self._writing = threading.Lock()
        if ownership is not None:
            ownership.on_change(clocks.forget_states)
        self._calendar_gauges()

    def _calendar_gauges(self) -> None:
        official = self.config.calendar.official_years()
        self.metrics.calendar_last_year.set(official[-1] if official else 0)

    # ---- consuming intake's and routing's events

    def on_event(self, event: Event, meta: MessageMeta | None = None) -> None:
        """Add the event's facts to the petition's record and keep its projection in step.

        Raises EventDataError (the consumer dead-letters the message after its retries) when the
        data lacks a field the rules need; Conflict only after many lost races (retried by the loop).
        """
        pid = event.data["petition_id"]
        creates = [event.type == SUBMITTED]  # only the first attempt may take the record as new

        def attempt() -> None:
            new, creates[0] = creates[0], False
            self._follow(pid, event, new)

        retry_on_conflict(attempt, pid)

    def _follow(self, pid: str, event: Event, new: bool = False) -> None:
        lease = self._lease(pid)
        with self._writing:
            # the commit checks this is the newest version; the duplicate path's _project re-reads
            loaded = self.clocks.load_to_write(pid, new=new)
            old = _record(loaded)
            followed = follow(old, [event])
            if not followed.changed:
                # a duplicate: its commit is there, but a crash may have cost the projection
                self._project(followed.record, loaded.seq, self.clock(), lease=lease)
                return
            commit = self.clocks.commit(loaded, followed.record.to_dict())
            self._count_met(old, followed.record)
            self._project(followed.record, commit.seq, self.clock(), report_gap=True, lease=lease)

    def on_events(self, events: list[tuple[Event, MessageMeta]]) -> None:
        """A poll batch at once (the consumer's batch handler): every petition's events applied in
        order, the changed records committed in one insert, their projections written in one bulk
        write. A petition whose commit lost a race goes through `on_event`, event by event."""
        groups = by_petition(events)
        leases = {pid: self._lease(pid) for pid in groups}
        with self._writing:
            lost = self._follow_batch(groups, leases)
        for pid in lost:
            for event, meta in groups[pid]:
                self.on_event(event, meta)

    def _follow_batch(
        self, groups: dict[str, list[tuple[Event, MessageMeta]]], leases: dict[str, Lease | None]
    ) -> list[str]:
        """`on_events` but for the petitions whose commit lost a race, which it returns."""
        changed: dict[str, tuple[SlaRecord | None, SlaRecord]] = {}
        items: list[Item] = []
        unchanged: list[tuple[SlaRecord, int]] = []
        for pid, petition_events in groups.items():
            # a petition's submission creates its record: not looked for when nothing is remembered of it
            loaded = self.clocks.load_to_write(pid, new=any(e.type == SUBMITTED for e, _ in petition_events))
            old = _record(loaded)
            followed = follow(old, [event for event, _ in petition_events])
            if followed.changed:
                changed[pid] = (old, followed.record)
                items.append((loaded, followed.record.to_dict(), []))
            else:
                unchanged.append((followed.record, loaded.seq))  # duplicates: re-project, a crash may have cost it
        batch = commit_batch(self.clocks, items)
        committed = []
        for (loaded, _, _), commit in batch.committed:
            old, new = changed[loaded.aggregate_id]
            self._count_met(old, new)
            committed.append((new, commit.seq))
        now = self.clock()
        self._project_many(committed, now, report_gap=True, leases=leases)
        self._project_many(unchanged, now, leases=leases)
        return batch.lost_ids

    def _count_met(self, old: SlaRecord | None, new: SlaRecord) -> None:
        for clock, on_time in newly_met(old, new, self.config):
            self.metrics.met.labels(clock, "true" if on_time else "false").inc()

    # ---- owning petitions

    def _lease(self, petition_id: str) -> Lease | None:
        return self.ownership.lease(petition_id) if self.ownership is not None else None

    def _sole(self, lease: Lease | None) -> bool:
        """Whether this instance was the petition's only writer since `lease` was taken."""
        return self.ownership is not None and self.ownership.holds(lease)

    def read_record(self, petition_id: str) -> Loaded:
        """The petition's newest record for a reader (a staff page): the one this instance remembers
        when it is the petition's only writer (as its writers build on it), otherwise as read from the
        database. The lease must still hold after the read, or the remembered record may be older than
        what a new owner has written meanwhile."""
        lease = self._lease(petition_id)
        if lease is not None:
            loaded = self.clocks.load_to_write(petition_id)
            if self._sole(lease):
                return loaded
        return self.clocks.load(petition_id)

    # ---- the projection

    def _watch(self, record: SlaRecord, seq: int, now: datetime, report_gap: bool) -> Watch:
        watched = watch(record, seq, now, self.config)
        if report_gap and watched.uncovered_year is not None:
            self._calendar_gap(record.petition_id, watched.uncovered_year)
        if watched.provisional:
            # no longer watched, but importing its year's notice may still move its deadline (and stats'
            # on-time verdict): keep its id where check_calendar looks
            self.provisional_clocks.replace_one({"_id": record.petition_id}, {"_id": record.petition_id}, upsert=True)
        return watched

    def _project(
        self, record: SlaRecord, seq: int, now: datetime, report_gap: bool = False, lease: Lease | None = None
    ) -> dict[str, Any] | None:
        """Write the record's open_clocks document (or remove it); returns what was written, which is
        the newest version's document when a newer version was committed meanwhile (`Projection`).
        Under a lease that still holds after the write, nobody else can have committed: no check."""
        doc = self._watch(record, seq, now, report_gap).doc
        if self.projection.put(record.petition_id, seq, doc, sole=lambda: self._sole(lease)):
            return self.reproject(record.petition_id, now)
        return doc

    def _project_many(
        self,
        records: list[tuple[SlaRecord, int]],
        now: datetime,
        report_gap: bool = False,
        leases: dict[str, Lease | None] | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """`_project` for several petitions: one bulk write, then each one's check for a newer version
        (none for a petition whose lease held); returns each one's document as `_project` does."""
        leases = leases or {}
        items = [(record.petition_id, seq, self._watch(record, seq, now, report_gap).doc) for record, seq in records]
        docs = {pid: doc for pid, _, doc in items}
        for pid in self.projection.put_many(items, sole=lambda pid: self._sole(leases.get(pid))):
            docs[pid] = self.reproject(pid, now)
        return docs

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
        if any(derived_elsewhere(doc, self.config.calendar) for doc in docs.values()):
            # another instance may have taken up a calendar file this one has not looked at yet: deriving
            # its petitions again with the older calendar would undo what it derived, so look first
            self.check_calendar()
        wanted: list[tuple[str, Lease | None]] = []
        for pid, doc in docs.items():
            if not needs_attention(doc, now, self.config.calendar):
                continue
            lease = self._lease(pid)
            if self.ownership is not None and lease is None and not self.ownership.primary(pid):
                continue  # another instance's member holds it: its scanner looks after it
            wanted.append((pid, lease))
        stats.processed = len(wanted)
        for start in range(0, len(wanted), SCAN_GROUP):
            for pid, (emitted, new_doc) in self._process_group(wanted[start : start + SCAN_GROUP], now, stats).items():
                stats.emitted += [f"{pid}|{key}" for key in emitted]
                if new_doc is None:
                    docs.pop(pid, None)
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

    def _process_group(
        self, group: list[tuple[str, Lease | None]], now: datetime, stats: ScanStats
    ) -> dict[str, tuple[list[str], dict[str, Any] | None]]:
        """`process` for several petitions at once: their notices committed in one insert (and one for
        the markers), the records marked in one more, the projections in one bulk write. If that fails
        for a reason other than the database being away, the group is processed petition by petition,
        so one petition's failure is counted and logged alone, as before."""
        try:
            with self._writing:
                return self.process_many(group, now)
        except TRANSIENT_ERRORS:
            raise  # the database is away: end this scan, the next one starts over
        except Exception:
            log.warning("a scan group failed; processing it petition by petition", exc_info=True)
        out: dict[str, tuple[list[str], dict[str, Any] | None]] = {}
        for pid, lease in group:
            try:
                with self._writing:
                    out[pid] = self.process(pid, now, lease)
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                stats.failed += 1
                self.metrics.scan_errors.inc()
                log.exception("scan failed for a petition; retried next scan", extra={"petition_id": pid})
        return out

    def process_many(
        self, group: list[tuple[str, Lease | None]], now: datetime
    ) -> dict[str, tuple[list[str], dict[str, Any] | None]]:
        """`process` for a group of petitions, with a few writes for all of them (`_process_group`):
        each one's record (the remembered one under a lease that holds), its due notices committed
        together, the records of those confirmed emitted marked together, the projections in one write."""
        out: dict[str, tuple[list[str], dict[str, Any] | None]] = {}
        records: dict[str, tuple[SlaRecord, int]] = {}
        emissions: list[tuple[Notice, Emission]] = []
        for pid, lease in group:
            loaded = self.clocks.load_to_write(pid) if self._sole(lease) else self.clocks.load(pid)
            if loaded.state is None:
                self.open_clocks.delete_one({"_id": pid})  # a projection without a record
                out[pid] = ([], None)
                continue
            record = SlaRecord.from_dict(loaded.state)
            records[pid] = (record, loaded.seq)
            found = due(record, now, self.config)
            if found.uncovered_year is not None:
                self._calendar_gap(pid, found.uncovered_year)
            emissions += [(notice, notice_emission(notice, now)) for notice in found.notices]
        confirmed: dict[str, list[str]] = {pid: [] for pid in records}
        # most notices are new: committed without reading, each one's unique insert is the check
        firsts: list[Item] = [(Loaded(e.aggregate_id, 0, None), e.state, [e.event]) for _, e in emissions]
        results = self.notices.commit_many(firsts)
        for (notice, emission), result in zip(emissions, results, strict=True):
            if not isinstance(result, Conflict) or self._commit_on_void(emission):
                self._count_emitted(notice, emission)
            elif not self._exists(emission):
                continue  # not known to exist: the next scan tries again
            confirmed[notice.petition_id].append(notice.key)
        marked = self._mark_emitted_many({pid: keys for pid, keys in confirmed.items() if keys})
        records.update(marked)
        leases = dict(group)
        docs = self._project_many(list(records.values()), now, leases=leases)
        for pid in records:
            out[pid] = (confirmed[pid], docs.get(pid))
        return out

    def process(
        self, petition_id: str, now: datetime, lease: Lease | None = None
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Emit the petition's due notices; returns the keys confirmed emitted and its new projection.
        Under a lease the remembered state is the newest (it is forgotten whenever partitions move)."""
        return self.process_many([(petition_id, lease)], now)[petition_id]

    def _exists(self, emission: Emission) -> bool:
        return self.notices.load(emission.aggregate_id).state is not None

    def _commit_once(self, emission: Emission) -> bool:
        """Commit the notice aggregate's one commit unless it has a state: True if this call committed it.

        Most notices are new, so the commit is tried first without reading (its unique insert is the
        check); only when something is stored under the notice already is it read."""
        try:
            self.notices.commit(Loaded(emission.aggregate_id, 0, None), emission.state, [emission.event])
            return True
        except Conflict:
            return self._commit_on_void(emission)

    def _commit_on_void(self, emission: Emission) -> bool:
        """After the first commit met one stored already: commit on top of it if it is the void commit
        the relay wrote for an attempt that died before committing; True if this call committed."""
        loaded = self.notices.load(emission.aggregate_id)
        if loaded.state is not None:
            return False  # committed before (by us before a crash, or by another instance)
        try:
            self.notices.commit(loaded, emission.state, [emission.event])
        except Conflict:
            return False  # another writer took this version
        return True

    def _count_emitted(self, notice: Notice, emission: Emission) -> None:
        self.metrics.notices.labels(notice.event_type, str(notice.level)).inc()
        if notice.kind == BREACHED and notice.level == 1:
            self.metrics.breached.labels(notice.clock).inc()
        log.info(
            "notice emitted",
            extra={"petition_id": notice.petition_id, "key": notice.key, "due_at": emission.state["due_at"]},
        )

    def _mark_emitted(self, petition_id: str, keys: list[str]) -> tuple[SlaRecord, int]:
        def attempt() -> tuple[SlaRecord, int]:
            # read just before: the remembered version (the commit checks it is the newest; "already
            # marked" holds for any newer version, as marks are never taken back)
            loaded = self.clocks.load_to_write(petition_id)
            assert loaded.state is not None
            record = SlaRecord.from_dict(loaded.state)
            marked = mark_emitted(record, keys)
            if marked == record:
                return record, loaded.seq
            return marked, self.clocks.commit(loaded, marked.to_dict()).seq

        return retry_on_conflict(attempt, petition_id)

    def _mark_emitted_many(self, keys: dict[str, list[str]]) -> dict[str, tuple[SlaRecord, int]]:
        """`_mark_emitted` for several petitions, their marks committed in one insert; a petition whose
        commit lost a race is marked on its own. Returns each one's record and version after."""
        out: dict[str, tuple[SlaRecord, int]] = {}
        items: list[Item] = []
        for pid, emitted in keys.items():
            loaded = self.clocks.load_to_write(pid)  # as `_mark_emitted`
            assert loaded.state is not None
            record = SlaRecord.from_dict(loaded.state)
            marked = mark_emitted(record, emitted)
            if marked == record:
                out[pid] = (record, loaded.seq)
            else:
                items.append((loaded, marked.to_dict(), []))
                out[pid] = (marked, loaded.seq + 1)
        for pid in commit_batch(self.clocks, items).lost_ids:
            out[pid] = self._mark_emitted(pid, keys[pid])
        return out

    def _refresh_gauges(self, docs: Any, now: datetime) -> None:
        summary = summarize(docs, now)
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
        change = calendar_change(self.calendar_state.find_one({"_id": CALENDAR_STATE_ID}), calendar, now)
        if change is None:
            return 0
        published = 0
        if change.before is not None and change.years:
            published = self._rederive_all(change.before, calendar, change.years, change.since, now)
        self.calendar_state.replace_one({"_id": CALENDAR_STATE_ID}, calendar.to_doc(change.since), upsert=True)
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
                emission = deadline_change_emission(change, years, revision, now)
                if self._commit_once(emission):
                    published += 1
                    self.metrics.deadline_changes.inc()
                    log.info(
                        "deadline changed", extra={"petition_id": pid, "deadline": emission.event.data["deadline"]}
                    )
            self._project(record, loaded.seq, now)
            if pid in provisional and not has_provisional_deadline(record, self.config.policy, after):
                self.provisional_clocks.delete_one({"_id": pid})
        log.warning(
            "reply deadlines derived again after a calendar change",
            extra={"years": list(years), "petitions": len(watched | provisional), "published": published},
        )
        return published

    # ---- reading

    def petition(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        """The petition's clocks, pauses and emitted notices; NotFound if unknown or not covered."""
        loaded = self.read_record(petition_id)
        if loaded.state is None:
            raise NotFound(petition_id)
        record = SlaRecord.from_dict(loaded.state)
        if not may_read(staff, Area(grid_id=record.grid_id)):
            raise NotFound(petition_id)
        now = self.clock()
        policy, calendar = self.config.policy, self.config.calendar
        states = clocks_of(record, now, policy, calendar).states
        notices = []
        # the notices at once: eight point reads or more, which in turn made a work order's page wait
        for state in self._notice_reader.map(
            lambda nid: self.notices.load(nid).state, notice_ids(record, states, policy)
        ):
            if state is not None:
                notices.append(notice_entry(state))
        return petition_view(record, now, policy, calendar, notices)


def _record(loaded: Loaded) -> SlaRecord | None:
    return SlaRecord.from_dict(loaded.state) if loaded.state is not None else None
