"""Intake's use cases: submit, read, feedback, withdraw, join, "near me", following routing's events,
and erasing a citizen's details after retention.

A use case loads, asks the domain (domain/) for the change, commits it and keeps the small
collections around the petition in step (followers, "near me", retention notes). Every change of a
petition is one commit of the `petitions` aggregate store (store.py): the petition's new state and
the events it publishes are stored by one insert, so an accepted petition (201) always has its
`petition.submitted` event durably queued, even if Kafka is down at that moment. HTTP views and the
Kafka consumer reach these through one table (handlers.py); bootstrap.py builds the service.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from petition_common.aggregates import act_on_remembered, commit_batch, retry_on_conflict
from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.contract import SchemaViolation
from petition_common.envelope import Event
from petition_common.group_commit import GroupCommit
from petition_common.mongo import bulk_update, insert_new
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_common.timesource import Clock
from petition_kernel.access import may_read
from petition_kernel.petition_ids import PETITION_ID
from petition_kernel.times import format_time, from_bson, local_date
from services.intake import domain
from services.intake.codes import Codes, is_follower_credential
from services.intake.contacts import ContactStore
from services.intake.ids import PetitionNumbers
from services.intake.retention import RetentionNotes

log = logging.getLogger(__name__)

SUBMITTER, FOLLOWER = "submitter", "follower"


class NotFound(Exception):
    pass


class IdempotencyMismatch(Exception):
    pass


@dataclass(frozen=True)
class Access:
    state: dict[str, Any]
    role: str  # SUBMITTER: may read and act; FOLLOWER: may read the follower's view only


@dataclass(frozen=True)
class BatchItem:
    """One petition of a batch: validated, with its body's fingerprint and its Idempotency-Key (None:
    a single submission sent without one)."""

    submission: domain.Submission
    fingerprint: str
    key: str | None


# an item's outcome: (receipt, replayed), or why it was refused
Outcome = tuple[dict[str, Any], bool] | Exception
# what refuses one petition of a batch and not the others
REFUSALS = (IdempotencyMismatch, Conflict, SchemaViolation)


@dataclass
class _Pending:
    """A petition of a batch on its way: its number, tracking code and claim, then its index entry."""

    index: int
    item: BatchItem
    pid: str
    code: str
    claim: dict[str, Any] | None
    index_key: str = ""
    duplicate_of: str | None = None


def _refused_or(submit: Callable[[], tuple[dict[str, Any], bool]]) -> Outcome:
    try:
        return submit()
    except REFUSALS as exc:
        return exc


class IntakeService:
    def __init__(
        self,
        *,
        db: Database,
        petitions: AggregateStore,
        duplicates: AggregateStore,
        contacts: ContactStore,
        numbers: PetitionNumbers,
        notes: RetentionNotes,
        codes: Codes,
        clock: Clock,
    ):
        self.petitions = petitions
        self.duplicates = duplicates
        # names, phones, addresses and original texts, encrypted; everything else holds masked forms
        self.contacts = contacts
        self.numbers = numbers
        # ended petitions, noted before the commit that ends them, for the retention job
        self.notes = notes
        self.codes = codes
        self.clock = clock
        # citizens who joined a petition, one document each: `<petition id>:<follower id>`
        self.followers = db["followers"]
        self.idempotency = db["idempotency"]
        # open petitions that carry a point (only its ~100 m cell), for "near me" before filing;
        # small: closed ones leave
        self.open_points = db["open_points"]
        # single submissions that arrive while others are being written are written with the next
        # group, as a batch is (group_commit.py): about a quarter of the database's work a petition
        self.submissions: GroupCommit[BatchItem, Outcome] = GroupCommit(self.submit_many)

    # ---- submit

    def submit(
        self, sub: domain.Submission, fingerprint: str, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Accept a validated petition; returns (response, replayed).

        Raises SchemaViolation before anything is written if its event would not be the contract's
        (a bug: the request checks should have caught it), IdempotencyMismatch for a key reused with
        another body, and Conflict (503) while another request holds the petition's first version.
        Written together with the submissions that arrive meanwhile (`submit_many`).
        """
        return self.submissions.run(BatchItem(sub, fingerprint, idempotency_key))  # type: ignore[return-value]

    def submit_one(
        self, sub: domain.Submission, fingerprint: str, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """`submit`, written on its own."""
        now = self.clock()
        pid = self.numbers.next_id(local_date(now))
        nonce = secrets.token_urlsafe(12)
        code = self.codes.tracking_code(pid, nonce)
        # the event this petition will publish, checked now: after this point a write may happen
        self.petitions.check([self._submitted(pid, code, sub, now, duplicate_of=None)[1]])
        if idempotency_key is None:
            return self._create(pid, code, sub, now, fresh=True)
        claim = self._claim(idempotency_key, fingerprint, pid, nonce, now)
        key_id = claim["_id"]
        try:
            self.idempotency.insert_one(claim)
            replayed = False
        except DuplicateKeyError:
            existing = self.idempotency.find_one({"_id": key_id})
            if existing is None:  # pragma: no cover - keys are never deleted while in use
                raise
            if not self.codes.same_fingerprint(existing["fingerprint"], fingerprint):
                raise IdempotencyMismatch from None
            claim, replayed = existing, True
        # The claim is not undone when what follows fails: a failure may hide a commit that happened
        # (a lost acknowledgement), and the client's retry with the same key completes or replays
        # this very petition number, never a second one.
        if "nonce" in claim:
            code = self.codes.tracking_code(claim["petition_id"], claim["nonce"])
        else:  # claims written before codes were derived held the code itself
            code = claim["tracking_code"]
        receipt, committed_before = self._create(claim["petition_id"], code, sub, from_bson(claim["at"]), not replayed)
        return receipt, replayed or committed_before

    def _claim(self, idempotency_key: str, fingerprint: str, pid: str, nonce: str, now: datetime) -> dict[str, Any]:
        """The idempotency record that binds a key to a body and a petition number."""
        key_id = "idem:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        # no tracking code in the claim: the nonce it is derived from, useless without the server key;
        # and the body's fingerprint keyed, as a plain hash of a body is tested by guessing its phone
        digest = self.codes.fingerprint_digest(fingerprint)
        return {"_id": key_id, "fingerprint": digest, "at": now, "petition_id": pid, "nonce": nonce}

    # ---- a batch of submissions (the hotline's and other systems' hand-over)

    def submit_many(self, items: Sequence[BatchItem]) -> list[Outcome]:
        """Accept several validated petitions, each exactly as `submit_one` would,
        writing each collection once for the whole batch instead of once per petition: the claims, the
        duplicate-index entries, the contacts records, the outbox markers and the commits.

        Whatever is not the plain case goes through the one-petition path after the batch: a key
        claimed before (a retry: replayed, or IdempotencyMismatch), a duplicate index another writer
        holds, or a second petition of the batch for the same phone and category (so that it is linked
        to the first). The outcome at each index is (receipt, replayed) or the refusal `submit` would
        have raised (IdempotencyMismatch, Conflict, SchemaViolation). A database error is raised: the
        client's retry with the same keys completes or replays each petition, never a second one.
        """
        now = self.clock()
        outcomes: list[Outcome | None] = [None] * len(items)
        pending: list[_Pending] = []
        for index, item in enumerate(items):
            pid = self.numbers.next_id(local_date(now))
            nonce = secrets.token_urlsafe(12)
            code = self.codes.tracking_code(pid, nonce)
            try:  # before anything of the batch is written, as in `submit`
                self.petitions.check([self._submitted(pid, code, item.submission, now, duplicate_of=None)[1]])
            except SchemaViolation as exc:
                outcomes[index] = exc
                continue
            claim = None if item.key is None else self._claim(item.key, item.fingerprint, pid, nonce, now)
            pending.append(_Pending(index, item, pid, code, claim))
        keyed = [p for p in pending if p.claim is not None]
        claimed_before = {id(keyed[k]) for k in insert_new(self.idempotency, [p.claim for p in keyed])}
        retries = [p for p in pending if id(p) in claimed_before]
        pending = [p for p in pending if id(p) not in claimed_before]
        indexed, alone = self._index_many(pending, now)
        for p, outcome in zip(indexed, self._commit_many(indexed, now), strict=True):
            outcomes[p.index] = outcome
        # the claims of these are this batch's: the rest of `submit` after its claim
        for p in alone:
            outcomes[p.index] = _refused_or(lambda p=p: self._create(p.pid, p.code, p.item.submission, now, True))
        for p in retries:
            item = p.item
            outcomes[p.index] = _refused_or(lambda i=item: self.submit_one(i.submission, i.fingerprint, i.key))
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    def _index_many(self, pending: list[_Pending], now: datetime) -> tuple[list[_Pending], list[_Pending]]:
        """The batch's duplicate-index entries in one commit of new versions: (the petitions indexed,
        those left to the one-petition path). Like `_index_for_duplicates`' first attempt: an index
        this instance does not remember is taken to be new, and the commit checks."""
        first_of_key: dict[str, _Pending] = {}
        alone: list[_Pending] = []
        for p in pending:
            key = self.codes.duplicate_key(p.item.submission.citizen_phone, p.item.submission.category)
            p.index_key = key
            if key in first_of_key:
                alone.append(p)  # after the first is committed, so that it can be linked to it
            else:
                first_of_key[key] = p
        grouped = list(first_of_key.values())
        changes = []
        for p in grouped:
            loaded = self.duplicates.load_to_write(p.index_key, new=True)
            p.duplicate_of, index = self._index_change(loaded, p.pid, domain.masked_content(p.item.submission), now)
            assert index is not None  # a new number is in no index yet
            changes.append((loaded, index, []))
        indexed = []
        for p, result in zip(grouped, self.duplicates.commit_many(changes), strict=True):
            if isinstance(result, Conflict):
                p.duplicate_of = None
                alone.append(p)
            else:
                indexed.append(p)
        alone.sort(key=lambda p: p.index)  # the batch's order decides which of two is the earlier
        return indexed, alone

    def _commit_many(self, indexed: list[_Pending], now: datetime) -> list[Outcome]:
        """The contacts records and the commits of indexed petitions, one insert each for the batch."""
        built = [self._submitted(p.pid, p.code, p.item.submission, now, p.duplicate_of) for p in indexed]
        try:
            self.contacts.put_many(
                (state["citizen"]["contact_id"], domain.contact_fields(p.item.submission))
                for p, (state, _) in zip(indexed, built, strict=True)
            )
            results = self.petitions.commit_many(
                [(Loaded(p.pid, 0, None), state, [event]) for p, (state, event) in zip(indexed, built, strict=True)]
            )
        except BaseException:
            for p in indexed:
                self._undo_index(True, p.index_key, p.pid)
            raise
        outcomes: list[Outcome] = []
        accepted: list[_Pending] = []
        for p, (state, _), result in zip(indexed, built, results, strict=True):
            if isinstance(result, Conflict):  # a number nobody else is given: only a void commit of the relay
                self._undo_index(True, p.index_key, p.pid)
                outcomes.append(result)
            else:
                outcomes.append((_receipt(state, p.code), False))
                accepted.append(p)
        self._after_submit_many(accepted)
        return outcomes

    def citizen_ref(self, phone: str) -> str:
        """The citizen's pseudonym (codes.py): what the rate limits count a citizen by."""
        return self.codes.citizen_ref(phone)

    def _create(
        self, pid: str, code: str, sub: domain.Submission, now: datetime, fresh: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Commit the petition `pid` unless an earlier attempt did; returns (receipt, whether an earlier
        attempt had). Its duplicate-index entry, written before the commit, is taken back when the
        commit fails. `fresh`: the number was allocated by this very request, so nothing can be
        stored under it yet, and there is nothing to read (a replayed claim's number is read)."""
        loaded = Loaded(pid, 0, None) if fresh else self.petitions.load(pid)
        if loaded.exists:  # an earlier attempt with this Idempotency-Key got as far as its commit
            assert loaded.state is not None
            return _receipt(loaded.state, code), True
        key = self.codes.duplicate_key(sub.citizen_phone, sub.category)
        duplicate_of, indexed = self._index_for_duplicates(key, pid, sub, now)
        state, event = self._submitted(pid, code, sub, now, duplicate_of)
        # the one place the citizen's details are kept, before the commit that names it (a commit whose
        # contacts are missing would show staff nothing); a record left by a failed commit holds only
        # ciphertext, and the retry with the same Idempotency-Key reuses it
        self.contacts.put(state["citizen"]["contact_id"], domain.contact_fields(sub))
        try:
            # on top of whatever the number holds: nothing, or the void commit the relay wrote for an
            # attempt that died between its outbox marker and its commit
            self.petitions.commit(Loaded(pid, loaded.seq, None), state, [event])
        except Conflict:
            current = self.petitions.load(pid)
            if current.exists:  # a concurrent attempt with the same key committed it
                assert current.state is not None
                return _receipt(current.state, code), True
            self._undo_index(indexed, key, pid)
            raise  # an attempt is between its marker and its commit: 503, retry shortly
        except BaseException:
            self._undo_index(indexed, key, pid)
            raise
        self._after_submit(pid, sub, duplicate_of=duplicate_of)
        return _receipt(state, code), False

    def _submitted(
        self, pid: str, code: str, sub: domain.Submission, now: datetime, duplicate_of: str | None
    ) -> tuple[dict[str, Any], Event]:
        keys = domain.Credentials(
            tracking_digest=self.codes.tracking_digest(code),
            citizen_ref=self.codes.citizen_ref(sub.citizen_phone),
            contact_id=self.codes.contact_id(pid),
        )
        return domain.submit(pid, sub, now, keys, duplicate_of)

    def _after_submit(self, pid: str, sub: domain.Submission, duplicate_of: str | None) -> None:
        """What follows an accepted petition; it is accepted whatever happens here (201), so a failure
        is logged and costs only a count or a "near me" entry."""
        try:
            if duplicate_of is not None:
                self._act(duplicate_of, lambda s: (domain.add_duplicate(s), []))
            elif "lat" in sub.location:
                point = domain.open_point(pid, sub.category, sub.location["lat"], sub.location["lon"])
                self.open_points.replace_one({"_id": pid}, point, upsert=True)
        except Exception as exc:
            log.warning("after-submit step failed", extra={"petition_id": pid, "error": repr(exc)})

    def _after_submit_many(self, accepted: list[_Pending]) -> None:
        """`_after_submit` for a batch: the "near me" entries in one bulk write."""
        points = []
        for p in accepted:
            sub = p.item.submission
            if p.duplicate_of is not None:
                self._after_submit(p.pid, sub, p.duplicate_of)
            elif "lat" in sub.location:
                point = domain.open_point(p.pid, sub.category, sub.location["lat"], sub.location["lon"])
                points.append(ReplaceOne({"_id": p.pid}, point, upsert=True))
        try:
            bulk_update(self.open_points, points)
        except Exception as exc:
            log.warning("after-submit step failed", extra={"petitions": len(points), "error": repr(exc)})

    def _index_for_duplicates(
        self, key: str, pid: str, sub: domain.Submission, now: datetime
    ) -> tuple[str | None, bool]:
        """Record the petition in its citizen's duplicate index (same phone and category, 24 h) and
        link it to an earlier near-identical one; returns (duplicate_of, whether an entry was written).

        Entries of petitions that never committed (their commit failed and the undo did too, or the
        process died in between) are dropped when met: they must not refuse or mislink anyone.
        """
        # the masked text: the index is stored, and a phone written twice is the same mask twice
        content = domain.masked_content(sub)
        first_attempt = [True]

        def attempt() -> tuple[str | None, bool]:
            # most phones have no index for this category yet: the first attempt does not look for one
            # when this instance remembers none (the commit's unique insert checks; a retry reads). The
            # "a retry of this very petition" decision below holds on any newer version: only this
            # request writes or takes back its own entry
            new, first_attempt[0] = first_attempt[0], False
            loaded = self.duplicates.load_to_write(key, new=new)
            first, index = self._index_change(loaded, pid, content, now)
            if index is None:  # a retry of this very petition
                return first, False
            self.duplicates.commit(loaded, index)
            return first, True

        try:
            return retry_on_conflict(attempt, key)
        except Conflict:
            return None, False  # a burst from one phone: this one goes unlinked rather than refused

    def _index_change(
        self, loaded: Loaded, pid: str, content: str, now: datetime
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(duplicate_of, the index's next state) for petition `pid` on the index `loaded`; (its
        duplicate_of, None) when the index holds the petition already (a retry of it)."""
        recent = [{**e, "at": from_bson(e["at"])} for e in (loaded.state or {}).get("recent", [])]
        mine = domain.entry_of(recent, pid)
        if mine is not None:
            return mine.get("duplicate_of"), None
        first = domain.find_duplicate(content, now, recent)
        while first is not None and not self.petitions.load(first).exists:
            recent = domain.without_petition(recent, first)
            first = domain.find_duplicate(content, now, recent)
        return first, {"recent": domain.remember_for_duplicates(recent, pid, content, now, first)}

    def _undo_index(self, indexed: bool, key: str, pid: str) -> None:
        """Take the petition's entry out of the duplicate index again (its commit failed)."""
        if not indexed:
            return

        def attempt() -> None:
            loaded = self.duplicates.load(key)
            recent = (loaded.state or {}).get("recent", [])
            kept = domain.without_entry(recent, pid)
            if len(kept) != len(recent):
                self.duplicates.commit(loaded, {"recent": kept})

        try:
            retry_on_conflict(attempt, key)
        except Exception as exc:  # the entry stays; _index_for_duplicates drops it when it meets it
            log.warning("could not undo a duplicate-index entry", extra={"petition_id": pid, "error": repr(exc)})

    # ---- read

    def load(self, petition_id: str, remembered: bool = False) -> dict[str, Any]:
        """The petition's newest state; `remembered`: the state this instance remembers, if any, which
        may be older (for deciding what never changes, such as whose tracking code it is)."""
        loaded = self.petitions.load_to_write(petition_id) if remembered else self.petitions.load(petition_id)
        if loaded.state is None:
            raise NotFound(petition_id)
        return loaded.state

    def read(self, petition_id: str, tracking_code: str | None) -> dict[str, Any]:
        """What the holder of this code sees: the citizen's view for the submitter, the follower's for a
        citizen who joined; NotFound for anyone else."""
        access = self.authorize_reader(petition_id, tracking_code)
        return domain.citizen_view(access.state) if access.role == SUBMITTER else domain.follower_view(access.state)

    def read_as_staff(self, petition_id: str, staff: Staff) -> dict[str, Any]:
        """The staff view for staff who cover the petition (decrypting the citizen's contacts record:
        the one read of it); NotFound outside their area, as for a petition that does not exist."""
        state = self.load(petition_id)
        if not may_read(staff, domain.area_of(state)):
            raise NotFound(petition_id)
        contact_id = state["citizen"].get("contact_id")
        return domain.staff_view(state, self.contacts.get(contact_id) if contact_id else None)

    def authorize_citizen(self, petition_id: str, tracking_code: str | None) -> dict[str, Any]:
        """The petition if `tracking_code` is its submitter's; NotFound otherwise (never reveal that it
        exists). Only the submitter may act on a petition (withdraw, rate); see `authorize_reader`.
        Decided on the state this instance remembers: a petition's codes never change (the action that
        follows is decided on the newest state)."""
        access = self.authorize_reader(petition_id, tracking_code, remembered=True)
        if access.role != SUBMITTER:
            raise NotFound(petition_id)
        return access.state

    def authorize_reader(self, petition_id: str, tracking_code: str | None, remembered: bool = False) -> Access:
        """The petition and who presents the code: its submitter, or a follower who joined it."""
        if not tracking_code:
            raise NotFound(petition_id)
        if is_follower_credential(tracking_code):
            return Access(self._follower_state(petition_id, tracking_code), FOLLOWER)
        state = self.load(petition_id, remembered)
        if self.codes.is_tracking_code(state["tracking_digest"], tracking_code):
            return Access(state, SUBMITTER)
        # followers of petitions joined before followers had their own credentials: follow-only now
        if any(
            self.codes.is_tracking_code(f.get("tracking_digest", ""), tracking_code) for f in state.get("followers", [])
        ):
            return Access(state, FOLLOWER)
        raise NotFound(petition_id)

    def _follower_state(self, petition_id: str, credential: str) -> dict[str, Any]:
        follower_id = self.codes.follower_of(petition_id, credential)
        if follower_id is None:
            raise NotFound(petition_id)
        # signed, and still there: a follower whose join was taken back has no access
        if self.followers.find_one({"_id": f"{petition_id}:{follower_id}"}, {"_id": 1}) is None:
            raise NotFound(petition_id)
        return self.load(petition_id)

    # ---- the submitter's actions

    def give_feedback(
        self, petition_id: str, tracking_code: str | None, satisfaction: str, comment: str | None
    ) -> dict[str, Any]:
        """The submitter rates the reply; the citizen's view after it. ActionRefused when the petition
        has no reply to rate, or the reply was rated."""
        self.authorize_citizen(petition_id, tracking_code)
        now = self.clock()
        state = self._act(petition_id, lambda s: domain.give_feedback(s, satisfaction, comment, now))
        return domain.citizen_view(state)

    def withdraw(self, petition_id: str, tracking_code: str | None) -> dict[str, Any]:
        """The submitter withdraws the petition; the citizen's view after it. ActionRefused once
        replied to or ended."""
        self.authorize_citizen(petition_id, tracking_code)
        now = self.clock()

        def change(state: dict[str, Any]) -> domain.Change:
            new, events = domain.withdraw(state, now)
            self.notes.note_if_ended(state, new)
            return new, events

        return domain.citizen_view(self._act(petition_id, change))

    def _act(self, petition_id: str, change: Callable[[dict[str, Any]], domain.Change]) -> dict[str, Any]:
        """Load the petition, apply `change`, commit; again on fresh state when another writer was
        first, and on the newest version when refused (`act_on_remembered`)."""

        def attempt(to_write: bool) -> dict[str, Any]:
            loaded = self.petitions.load_to_write(petition_id) if to_write else self.petitions.load(petition_id)
            if loaded.state is None:
                raise NotFound(petition_id)
            new, events = change(loaded.state)
            self.petitions.commit(loaded, new, events)
            return new

        return act_on_remembered(attempt, (NotFound, domain.ActionRefused, domain.PetitionClosed), petition_id)

    # ---- following routing (the consumer's handlers)

    def on_routing_event(self, event: Event, meta: MessageMeta) -> None:
        """Idempotent: the petition remembers the ids of the events it applied."""
        pid = event.data["petition_id"]
        # the commit checks this is the newest version; "already applied" (None below) holds on newer ones
        loaded = self.petitions.load_to_write(pid)
        if loaded.state is None:
            # routing only routes petitions it read from our topic, so ours is committed; a missing
            # one means a foreign or corrupt event: surface it instead of inventing a petition
            raise ValueError(f"routing event for unknown petition {pid}")
        new = domain.apply_lifecycle(loaded.state, event.type, event.data, event.id, event.time)
        if new is not None:
            self.notes.note_if_ended(loaded.state, new)
            self.petitions.commit(loaded, new)  # Conflict -> the consumer loop retries on fresh state
            self._leave_nearby_if_ended(new)

    def on_routing_events(self, events: list[tuple[Event, MessageMeta]]) -> None:
        """A poll batch at once (the consumer's batch handler): each petition's events applied in
        order and the changed petitions committed in one insert; a petition whose commit lost a
        race goes through `on_routing_event`, event by event."""
        groups = by_petition(events)
        items: list[tuple[Loaded, dict[str, Any], list[Event]]] = []
        for pid, petition_events in groups.items():
            loaded = self.petitions.load_to_write(pid)
            if loaded.state is None:
                raise ValueError(f"routing event for unknown petition {pid}")  # one by one: dead-lettered
            state = loaded.state
            for event, _ in petition_events:
                state = domain.apply_lifecycle(state, event.type, event.data, event.id, event.time) or state
            if state is not loaded.state:
                items.append((loaded, state, []))
        self.notes.note_many([(loaded.state, state) for loaded, state, _ in items])  # type: ignore[misc]
        batch = commit_batch(self.petitions, items)
        for (_, state, _), _commit in batch.committed:
            self._leave_nearby_if_ended(state)
        for pid in batch.lost_ids:
            for event, meta in groups[pid]:
                self.on_routing_event(event, meta)

    def _leave_nearby_if_ended(self, state: dict[str, Any]) -> None:
        # only a petition with a map point was ever put in the index (_after_submit)
        if not domain.is_open(state) and "lat" in (state.get("location") or {}):
            self.open_points.delete_one({"_id": state["petition_id"]})

    # ---- near me, and joining an open petition instead of filing again

    def nearby(self, lat: float, lon: float, category: str, radius_m: float, limit: int = 10) -> list[dict[str, Any]]:
        """Open petitions of this category near the point, nearest first: what, how far in 100 m
        bands, and the village and town routing placed it in. Never its text or its position: the
        index keeps only the ~100 m cell a point falls in (domain/nearby.py)."""
        found = []
        for distance, pid in domain.within(self.open_points.find({}), lat, lon, category, radius_m):
            state = self.petitions.load(pid).state
            if state is None or not domain.is_open(state):
                continue  # closed since: its index entry goes with the next routing event
            assignment = state.get("assignment") or {}
            found.append(
                {
                    "petition_id": pid,  # what a citizen needs to join it
                    "category": state["category"],
                    "status": state["status"],
                    "distance_m": domain.distance_band(distance),
                    "village": assignment.get("village"),
                    "town": assignment.get("town"),
                }
            )
            if len(found) >= limit:
                break
        return found

    def join(self, petition_id: str, citizen: domain.Follower) -> dict[str, Any]:
        """Add a citizen to an open petition as a follower of their own: a document keyed by the
        petition and their phone (so one phone joins once, and the petition does not grow with its
        followers), and a credential that lets them follow it and nothing more.

        NotFound for a petition that does not exist and for one that is no longer open alike, so
        that probing sequential numbers tells no more than "open or not" (docs/security.md).
        """
        follower_id = self.codes.follower_id(petition_id, citizen.phone)
        doc_id = f"{petition_id}:{follower_id}"
        state = self._open_petition(petition_id)
        contact_id = self.codes.contact_id(petition_id, follower_id)
        comment = citizen.comment
        self.contacts.put(contact_id, {"name": citizen.name, "phone": citizen.phone, "comment": comment or ""})
        try:
            self.followers.insert_one(
                {
                    "_id": doc_id,
                    "petition_id": petition_id,
                    "contact_id": contact_id,
                    "channel": citizen.channel,
                    "comment": domain.masked_comment(comment, [citizen.name]),
                    "joined_at": format_time(self.clock()),
                }
            )
        except DuplicateKeyError:  # this phone joined before: the same follower again
            return self._joined(state, follower_id)
        try:
            state = self._act(petition_id, lambda s: (domain.add_follower(s), []))
        except BaseException as exc:
            # the follower counted nowhere must not hold a credential, nor leave their details behind
            self.followers.delete_one({"_id": doc_id})
            self.contacts.shred([contact_id])
            if isinstance(exc, domain.PetitionClosed):  # closed while the follower was being added
                raise NotFound(petition_id) from exc
            raise
        return self._joined(state, follower_id)

    def _open_petition(self, petition_id: str) -> dict[str, Any]:
        state = self.petitions.load(petition_id).state if PETITION_ID.fullmatch(petition_id) else None
        if state is None or not domain.is_open(state):
            raise NotFound(petition_id)
        return state

    def _joined(self, state: dict[str, Any], follower_id: str) -> dict[str, Any]:
        pid = state["petition_id"]
        return {
            "petition_id": pid,
            "tracking_code": self.codes.follower_credential(pid, follower_id),
            "status": state["status"],
            "affected_citizens": state.get("affected_citizens", 1),
        }

    # ---- retention (retention.py runs the job)

    def erase_contacts(self, petition_id: str, now: datetime) -> None:
        """Commit the petition without its citizen's details (their contacts records are shredded by
        the retention job); nothing is published."""
        self._act(petition_id, lambda s: (domain.erase_contacts(s, now), []))


def _receipt(state: dict[str, Any], code: str) -> dict[str, Any]:
    return {
        "petition_id": state["petition_id"],
        "tracking_code": code,
        "status": state["status"],
        "duplicate_of": state.get("duplicate_of"),
    }
