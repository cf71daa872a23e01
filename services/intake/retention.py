"""Retention of citizens' contact details, and their erasure after it (个人信息保护法 第19、47条).

When a petition ends (closed or withdrawn) the service notes it in `retention_queue` (RetentionNotes:
queued by when it ended, petition_common.due, written before the commit that ends it, so no ended
petition is missed; a note whose petition did not end is passed over). A scheduled job (Retention)
takes the notes whose retention period has passed, reading only those, and erases their petitions:

1. the contacts records of the submitter and of every follower are deleted (crypto-shredding: the
   only ciphertext of their name, phone, address and original text goes);
2. the followers' documents go, and the petition gets a commit whose `citizen` holds only the time
   of erasure (no masked forms) and whose feedback comment is gone (domain.erase_contacts, committed
   by the service's `erase_contacts`);
3. the erasure is recorded in intake's audit trail (`contact.erased`, by `on_erased`; a run that
   dies after it records it again on its next run: at least once) and in `erasures`, an append-only
   collection (one insert per petition, never updated or deleted by the platform; docs/security.md,
   "Personal data");
4. the queue's cursor moves past the notes and they are deleted; a petition whose erasure failed is
   noted again, for a run a day or two later (the queue's slots are days: a petition is erased
   within about two days after its period, and a run reads one document a day passed).

Every step can be repeated, so a job that dies half-way finishes the petition on its next run, and a
petition noted twice is erased and recorded once. Nothing is published: the statistics keep every
figure, since they never held contact details.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import DeleteOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from petition_common.due import DueQueue, Taken
from petition_common.mongo import bulk_update
from petition_common.store import AggregateStore
from petition_common.timesource import Cadence, Clock
from petition_kernel.times import from_bson
from services.intake import domain
from services.intake.contacts import ContactStore
from services.intake.metrics import RetentionMetrics

log = logging.getLogger(__name__)

# 3 years after a petition ends: the general limitation period of civil claims (民法典 第188条), within
# which a citizen may still dispute how their petition was handled and staff must be able to reach
# them; the archive keeps the anonymised petition for as long as its archival period asks
DEFAULT_RETENTION_DAYS = 3 * 365


class RetentionNotes:
    """The ended petitions whose details wait for erasure: `retention_queue`, a queue by the time each
    ended (petition_common.due), so the job reads only what is due, never all that waits (three years
    of ended petitions). Until 2026-12-08 they were one document per petition in `retention`, read
    whole on every run; the job empties that collection into the queue (`legacy`)."""

    def __init__(self, queue: DueQueue, legacy: Collection, period: timedelta, clock: Clock):
        self.queue = queue
        self.legacy = legacy
        self.period = period
        self.clock = clock

    def note_if_ended(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Remember a petition that the change from `before` to `after` ends; call before its commit."""
        self.note_many([(before, after)])

    def note_many(self, changes: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """`note_if_ended` for several petitions' changes, in one insert (a consumer's poll batch). A
        change retried after a lost race notes its petition again: the job erases it once."""
        notes = []
        for before, after in changes:
            ended_at = domain.ended_at(before, after)
            if ended_at is not None:
                notes.append((ended_at, {"petition_id": after["petition_id"], "ended_at": ended_at}))
        if notes:
            self.queue.add(notes, horizon=self.clock() - self.period)


class Retention:
    def __init__(
        self,
        notes: RetentionNotes,
        db: Database,
        petitions: AggregateStore,
        contacts: ContactStore,
        erase_contacts: Callable[[str, datetime], None],
        period: timedelta,
        clock: Clock,
        metrics: RetentionMetrics,
    ):
        self.notes = notes
        self.erasures = db["erasures"]
        self.followers = db["followers"]
        self.petitions = petitions
        self.contacts = contacts
        # commits the petition without its citizen's details (IntakeService.erase_contacts)
        self.erase_contacts = erase_contacts
        self.period = period
        self.clock = clock
        self.metrics = metrics
        self._cadence = Cadence(clock)
        self._legacy_emptied = False
        # records an erasure in the audit trail (set by the app); raising makes the next run retry
        self.on_erased: Callable[[dict[str, Any]], None] | None = None

    def erase_when_due(self, interval_s: float) -> int:
        return self.erase_due() if self._cadence.due(interval_s) else 0

    def erase_due(self) -> int:
        """Erase every petition whose retention period has passed; returns how many."""
        now = self.clock()
        until = now - self.period  # a petition that ended before this is due
        taken = self.notes.queue.take(until)
        due = {p["petition_id"]: from_bson(p["ended_at"]) for p in taken.payloads}
        legacy = self._legacy_notes() if not self._legacy_emptied else []
        due.update({pid: ended_at for pid, ended_at in legacy if ended_at <= until})
        erased = 0
        failed: list[tuple[datetime, dict[str, Any]]] = []
        followers = self._followers(set(due)) if due else {}
        for pid, ended_at in due.items():
            try:
                erased += self._erase(pid, ended_at, followers.get(pid, []), now)
            except Exception as exc:  # tried again a day or two later; the others go ahead
                self.metrics.failures.inc()
                failed.append((ended_at, {"petition_id": pid, "ended_at": ended_at}))
                log.warning("erasure failed", extra={"petition_id": pid, "error": repr(exc)})
        self._settle(taken, failed, legacy, until)
        self.metrics.erased.inc(erased)
        self.metrics.last_run.set(now.timestamp())
        return erased

    def _followers(self, wanted: set[str]) -> dict[str, list[dict[str, Any]]]:
        followers: dict[str, list[dict[str, Any]]] = {}
        for doc in self.followers.find({}, {"petition_id": 1, "contact_id": 1}):  # one scan for the whole run
            if doc.get("petition_id") in wanted:
                followers.setdefault(doc["petition_id"], []).append(doc)
        return followers

    def _settle(
        self,
        taken: Taken,
        failed: list[tuple[datetime, dict[str, Any]]],
        legacy: list[tuple[str, datetime]],
        until: datetime,
    ) -> None:
        """Queue again what failed and what the old collection held that is not due yet, then move the
        queue's cursor and empty the old collection of what this run read (an error leaves both for
        the next run, which does them again)."""
        waiting = [(at, {"petition_id": pid, "ended_at": at}) for pid, at in legacy if at > until]
        self.notes.queue.add([*failed, *waiting], horizon=until)
        self.notes.queue.done(taken)
        if legacy:
            bulk_update(self.notes.legacy, [DeleteOne({"_id": pid}) for pid, _ in legacy])
        self._legacy_emptied = True

    def _legacy_notes(self) -> list[tuple[str, datetime]]:
        """The notes in the collection written before the queue (read whole, once per process)."""
        return [(n["_id"], from_bson(n["ended_at"])) for n in self.notes.legacy.find({})]

    def _erase(self, pid: str, ended_at: datetime, followers: list[dict[str, Any]], now: datetime) -> int:
        state = self.petitions.load(pid).state
        if state is None or state["status"] not in domain.TERMINAL:
            return 0  # its ending commit failed: noted again when it ends
        if "erased_at" in state["citizen"] and self.erasures.find_one({"_id": pid}, {"_id": 1}) is not None:
            return 0  # noted twice (a change retried after a lost race), erased by the first note
        contact_ids = [f["contact_id"] for f in followers if f.get("contact_id")]
        if state["citizen"].get("contact_id"):
            contact_ids.append(state["citizen"]["contact_id"])
        shredded = self.contacts.shred(contact_ids)
        for f in followers:
            self.followers.delete_one({"_id": f["_id"]})
        if "erased_at" not in state["citizen"]:
            self.erase_contacts(pid, now)
        record = {
            "_id": pid,
            "petition_id": pid,
            "reason": "retention",
            "ended_at": ended_at,
            "retention_days": self.period / timedelta(days=1),
            "erased_at": now,
            "contacts_erased": shredded,
            "followers": len(followers),
        }
        if self.on_erased is not None:
            self.on_erased(record)
        with contextlib.suppress(DuplicateKeyError):  # recorded by a run that died before moving the cursor
            self.erasures.insert_one(record)
        log.info("contact details erased", extra={"petition_id": pid, "contacts": shredded})
        return 1


ERASED_FIELDS = ("citizen.name", "citizen.phone", "citizen.address", "content.original", "followers")


def audit_entry(erasure: dict[str, Any]) -> dict[str, Any]:
    """The audit trail's record of an erasure: the retention job, not a person, did it."""
    return {
        "action": "contact.erased",
        "petition_id": erasure["petition_id"],
        "staff_id": "retention-job",
        "role": "system",
        "fields": list(ERASED_FIELDS),
        "outcome": "ok",
        "detail": {
            "reason": erasure["reason"],
            "retention_days": erasure["retention_days"],
            "contacts_erased": erasure["contacts_erased"],
            "followers": erasure["followers"],
        },
        "client": {"id": "intake-retention", "address": None, "for": None, "user_agent": None},
    }
