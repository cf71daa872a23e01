"""Retention of citizens' contact details, and their erasure after it (个人信息保护法 第19、47条).

When a petition ends (closed or withdrawn) the service notes it in `retention` (RetentionNotes: one
document per petition, keyed by its id, written before the commit that ends it, so no ended petition
is missed; a note whose petition did not end is dropped when met). A scheduled job (Retention)
erases the petitions whose retention period after their end has passed:

1. the contacts records of the submitter and of every follower are deleted (crypto-shredding: the
   only ciphertext of their name, phone, address and original text goes);
2. the followers' documents go, and the petition gets a commit whose `citizen` holds only the time
   of erasure (no masked forms) and whose feedback comment is gone (domain.erase_contacts, committed
   by the service's `erase_contacts`);
3. the erasure is recorded in intake's audit trail (`contact.erased`, by `on_erased`; a run that
   dies after it records it again on its next run: at least once) and in `erasures`, an append-only
   collection (one insert per petition, never updated or deleted by the platform; docs/security.md,
   "Personal data");
4. the note is deleted.

Every step can be repeated, so a job that dies half-way finishes the petition on its next run.
Nothing is published: the statistics keep every figure, since they never held contact details.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

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
    """The `retention` collection: the ended petitions whose details wait for erasure, and since when."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def note_if_ended(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Remember a petition that the change from `before` to `after` ends; call before its commit."""
        self.note_many([(before, after)])

    def note_many(self, changes: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """`note_if_ended` for several petitions' changes, in one bulk write (a consumer's poll batch);
        one by one should two upserts race (FerretDB may then leave statements unapplied)."""
        notes = []
        for before, after in changes:
            ended_at = domain.ended_at(before, after)
            if ended_at is not None:
                notes.append({"_id": after["petition_id"], "ended_at": ended_at})
        try:
            bulk_update(self.collection, [ReplaceOne({"_id": n["_id"]}, n, upsert=True) for n in notes])
        except BulkWriteError:
            for note in notes:
                with contextlib.suppress(DuplicateKeyError):  # the other upsert stored the same note
                    self.collection.replace_one({"_id": note["_id"]}, note, upsert=True)

    def due(self, period: timedelta, now: datetime) -> dict[str, datetime]:
        """The petitions whose retention period has passed, with when they ended (a full scan: the
        collection holds only ended petitions not erased yet)."""
        return {n["_id"]: n["ended_at"] for n in self.collection.find({}) if from_bson(n["ended_at"]) + period <= now}

    def drop(self, pid: str) -> None:
        self.collection.delete_one({"_id": pid})


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
        # records an erasure in the audit trail (set by the app); raising makes the next run retry
        self.on_erased: Callable[[dict[str, Any]], None] | None = None

    def erase_when_due(self, interval_s: float) -> int:
        return self.erase_due() if self._cadence.due(interval_s) else 0

    def erase_due(self) -> int:
        """Erase every petition whose retention period has passed; returns how many."""
        now = self.clock()
        due = self.notes.due(self.period, now)
        if not due:
            self.metrics.last_run.set(now.timestamp())
            return 0
        followers: dict[str, list[dict[str, Any]]] = {}
        wanted = set(due)
        for doc in self.followers.find({}, {"petition_id": 1, "contact_id": 1}):  # one scan for the whole run
            if doc.get("petition_id") in wanted:
                followers.setdefault(doc["petition_id"], []).append(doc)
        erased = 0
        for pid, ended_at in due.items():
            try:
                erased += self._erase(pid, ended_at, followers.get(pid, []), now)
            except Exception as exc:  # the next run tries again; the others go ahead
                self.metrics.failures.inc()
                log.warning("erasure failed", extra={"petition_id": pid, "error": repr(exc)})
        self.metrics.erased.inc(erased)
        self.metrics.last_run.set(now.timestamp())
        return erased

    def _erase(self, pid: str, ended_at: datetime, followers: list[dict[str, Any]], now: datetime) -> int:
        state = self.petitions.load(pid).state
        if state is None or state["status"] not in domain.TERMINAL:
            self.notes.drop(pid)  # its ending commit failed: noted again when it ends
            return 0
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
        with contextlib.suppress(DuplicateKeyError):  # recorded by a run that died before deleting the note
            self.erasures.insert_one(record)
        self.notes.drop(pid)
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
