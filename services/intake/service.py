"""Intake's use cases: submit, read, feedback, withdraw, and following routing's events.

HTTP requests and Kafka messages both end here. Every change of a petition is one commit of the
`petitions` aggregate store (store.py): the petition's new state and the events it publishes are
stored by one insert, so an accepted petition (201) always has its `petition.submitted` event
durably queued, even if Kafka is down at that moment.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from petition_common.auth import Staff
from petition_common.consumer import MessageMeta, by_petition
from petition_common.credentials import Signer
from petition_common.envelope import Event
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_kernel.access import Area, may_read
from petition_kernel.times import format_time, from_bson, local_date, utc_now
from services.intake import domain, redact
from services.intake.contacts import ContactStore
from services.intake.ids import PetitionNumbers

log = logging.getLogger(__name__)

SOURCE = "petitions/intake"
MAX_CONFLICT_RETRIES = 8


SUBMITTER, FOLLOWER = "submitter", "follower"
# a follower's credential: "F<follower id>.<signature>"; submitters' codes are URL-safe base64
# (token_urlsafe), which can start with "F" too but never contain ".", and a wrong guess only fails
FOLLOWER_PREFIX = "F"
_PETITION_ID = re.compile(r"^[A-Z]{2}[0-9]{14}$")


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Access:
    state: dict[str, Any]
    role: str  # SUBMITTER: may read and act; FOLLOWER: may read the follower's view only


class IdempotencyMismatch(Exception):
    pass


TRACKING = "tracking"  # the purpose of tracking-code digests and derivations (credentials.Signer)
CITIZEN = "citizen"  # the purpose of citizens' pseudonymous references (`citizen.ref` in events)
CITIZEN_REF_LENGTH = 22  # base64 characters: 132 bits
CONTACT = "contact"  # the purpose of contact ids, derived from the petition (retries find the same record)
DUPLICATES = "duplicates"  # the purpose of the duplicate index's blind keys (phone and category)
FINGERPRINT = "fingerprint"  # the purpose of the digests of request bodies an Idempotency-Key is bound to


def duplicate_key(signer: Signer, phone: str, category: str) -> str:
    """The duplicate index's key of a citizen's petitions in one category: a blind index (keyed HMAC),
    never a plain hash of the phone, which anyone can reverse by hashing every number there is."""
    return signer.sign(DUPLICATES, phone, category, length=32)


class IntakeService:
    def __init__(
        self,
        db: Database,
        petitions: AggregateStore,
        duplicates: AggregateStore,
        categories: set[str],
        signer: Signer,
        contacts: ContactStore,
        id_prefix: str = "JZ",
        clock: Callable[[], datetime] = utc_now,
    ):
        self.petitions = petitions
        self.signer = signer
        # names, phones, addresses and original texts, encrypted; everything else holds masked forms
        self.contacts = contacts
        # citizens who joined a petition, one document each: `<petition id>:<follower id>`
        self.followers = db["followers"]
        self.duplicates = duplicates
        self.idempotency = db["idempotency"]
        # open petitions that carry a point (only its ~100 m cell), for "near me" before filing;
        # small: closed ones leave
        self.open_points = db["open_points"]
        self.numbers = PetitionNumbers(db["petition_numbers"], id_prefix)
        self.categories = categories
        self.clock = clock
        # notes ended petitions for the erasure of their contact details (retention.py); set by the app
        self.on_end: Callable[[dict[str, Any], dict[str, Any]], None] = lambda before, after: None

    # ---- submit

    def submit(
        self, sub: domain.Submission, fingerprint: str, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Accept a validated petition; returns (response, replayed).

        Raises SchemaViolation before anything is written if its event would not be the contract's
        (a bug: the request checks should have caught it), IdempotencyMismatch for a key reused with
        another body, and Conflict (503) while another request holds the petition's first version.
        """
        now = self.clock()
        pid = self.numbers.next_id(local_date(now))
        nonce = secrets.token_urlsafe(12)
        code = self._tracking_code(pid, nonce)
        # the event this petition will publish, checked now: after this point a write may happen
        self.petitions.check([self._submitted(pid, code, sub, now, duplicate_of=None)[1]])
        if idempotency_key is None:
            return self._create(pid, code, sub, now)
        key_id = "idem:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        # no tracking code in the claim: the nonce it is derived from, useless without the server key;
        # and the body's fingerprint keyed, as a plain hash of a body is tested by guessing its phone
        digest = self.signer.digest(FINGERPRINT, fingerprint)
        claim = {"_id": key_id, "fingerprint": digest, "at": now, "petition_id": pid, "nonce": nonce}
        try:
            self.idempotency.insert_one(claim)
            replayed = False
        except DuplicateKeyError:
            existing = self.idempotency.find_one({"_id": key_id})
            if existing is None:  # pragma: no cover - keys are never deleted while in use
                raise
            stored = existing["fingerprint"]
            # claims written before keyed fingerprints hold the plain one
            if stored != fingerprint and not self.signer.matches(stored, FINGERPRINT, fingerprint):
                raise IdempotencyMismatch from None
            claim, replayed = existing, True
        # The claim is not undone when what follows fails: a failure may hide a commit that happened
        # (a lost acknowledgement), and the client's retry with the same key completes or replays
        # this very petition number, never a second one.
        code = self._tracking_code(claim["petition_id"], claim["nonce"]) if "nonce" in claim else claim["tracking_code"]
        receipt, committed_before = self._create(claim["petition_id"], code, sub, from_bson(claim["at"]))
        return receipt, replayed or committed_before

    def citizen_ref(self, phone: str) -> str:
        """A pseudonym of the citizen with this normalised phone: the same for all their petitions, so
        that stats can count distinct citizens and the rate limits count per citizen, but useless to
        anyone without the server key (a plain hash of a phone number is reversed by trying all of
        them). It changes when the first key of SECRET_KEYS does."""
        return self.signer.sign(CITIZEN, phone, length=CITIZEN_REF_LENGTH)

    def _tracking_code(self, pid: str, nonce: str) -> str:
        """A submitter's tracking code: 96 bits the server derives from a random nonce with its key, so
        that a replayed Idempotency-Key can be answered with the same code without storing it."""
        return self.signer.sign(TRACKING, pid, nonce, length=16)

    def _create(self, pid: str, code: str, sub: domain.Submission, now: datetime) -> tuple[dict[str, Any], bool]:
        """Commit the petition `pid` unless an earlier attempt did; returns (receipt, whether an earlier
        attempt had). Its duplicate-index entry, written before the commit, is taken back when the
        commit fails."""
        loaded = self.petitions.load(pid)
        if loaded.exists:  # an earlier attempt with this Idempotency-Key got as far as its commit
            assert loaded.state is not None
            return self._receipt(loaded.state, code), True
        key = duplicate_key(self.signer, sub.citizen_phone, sub.category)
        duplicate_of, indexed = self._index_for_duplicates(key, pid, sub, now)
        state, event = self._submitted(pid, code, sub, now, duplicate_of)
        # the one place the citizen's details are kept, before the commit that names it (a commit whose
        # contacts are missing would show staff nothing); a record left by a failed commit holds only
        # ciphertext, and the retry with the same Idempotency-Key reuses it
        self.contacts.put(state["citizen"]["contact_id"], _contact_fields(sub))
        try:
            # on top of whatever the number holds: nothing, or the void commit the relay wrote for an
            # attempt that died between its outbox marker and its commit
            self.petitions.commit(Loaded(pid, loaded.seq, None), state, [event])
        except Conflict:
            current = self.petitions.load(pid)
            if current.exists:  # a concurrent attempt with the same key committed it
                assert current.state is not None
                return self._receipt(current.state, code), True
            self._undo_index(indexed, key, pid)
            raise  # an attempt is between its marker and its commit: 503, retry shortly
        except BaseException:
            self._undo_index(indexed, key, pid)
            raise
        self._after_submit(pid, sub, duplicate_of=duplicate_of)
        return self._receipt(state, code), False

    def _submitted(
        self, pid: str, code: str, sub: domain.Submission, now: datetime, duplicate_of: str | None
    ) -> tuple[dict[str, Any], Event]:
        """The new petition's first state and its `petition.submitted` event."""
        submitted_at = format_time(now)
        masked = {
            "name_masked": domain.mask_name(sub.citizen_name),
            "phone_masked": domain.mask_phone(sub.citizen_phone),
        }
        content, location = masked_content(sub), masked_location(sub.location)
        data: dict[str, Any] = {
            "petition_id": pid,
            "channel": sub.channel,
            "category": sub.category,
            "content": content,
            "location": location,
            "citizen": {**masked, "ref": self.citizen_ref(sub.citizen_phone)},
            "submitted_at": submitted_at,
            "duplicate_of": duplicate_of,
        }
        state = {
            "petition_id": pid,
            "tracking_digest": self.signer.digest(TRACKING, code),
            "channel": sub.channel,
            "category": sub.category,
            "content": content,
            "location": location,
            "citizen": {"contact_id": "c" + self.signer.sign(CONTACT, pid, length=22), **masked},
            "submitted_at": submitted_at,
            "status": domain.SUBMITTED,
            "duplicate_of": duplicate_of,
            "affected_citizens": 1,
            "timeline": [{"at": submitted_at, "event": "petition.submitted", "status": domain.SUBMITTED}],
            "reply_round": 0,
            "feedback_round": 0,
        }
        event = Event(type="petition.submitted", source=SOURCE, subject=pid, data=data, time=submitted_at)
        return state, event

    def _after_submit(self, pid: str, sub: domain.Submission, duplicate_of: str | None) -> None:
        """What follows an accepted petition; it is accepted whatever happens here (201), so a failure
        is logged and costs only a count or a "near me" entry."""
        try:
            if duplicate_of is not None:
                self.update(duplicate_of, lambda s: {**s, "affected_citizens": int(s.get("affected_citizens", 1)) + 1})
            elif "lat" in sub.location:
                cell_lat, cell_lon = domain.coarse_point(sub.location["lat"], sub.location["lon"])
                self.open_points.replace_one(
                    {"_id": pid},
                    {"_id": pid, "category": sub.category, "cell_lat": cell_lat, "cell_lon": cell_lon},
                    upsert=True,
                )
        except Exception as exc:
            log.warning("after-submit step failed", extra={"petition_id": pid, "error": repr(exc)})

    @staticmethod
    def _receipt(state: dict[str, Any], code: str) -> dict[str, Any]:
        return {
            "petition_id": state["petition_id"],
            "tracking_code": code,
            "status": state["status"],
            "duplicate_of": state.get("duplicate_of"),
        }

    def _index_for_duplicates(
        self, key: str, pid: str, sub: domain.Submission, now: datetime
    ) -> tuple[str | None, bool]:
        """Record the petition in its citizen's duplicate index (same phone and category, 24 h) and
        link it to an earlier near-identical one; returns (duplicate_of, whether an entry was written).

        Entries of petitions that never committed (their commit failed and the undo did too, or the
        process died in between) are dropped when met: they must not refuse or mislink anyone.
        """
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded = self.duplicates.load(key)
            recent = [{**e, "at": from_bson(e["at"])} for e in (loaded.state or {}).get("recent", [])]
            mine = next((e for e in recent if e["petition_id"] == pid), None)
            if mine is not None:  # a retry of this very petition
                return mine.get("duplicate_of"), False
            # the masked text: the index is stored, and a phone written twice is the same mask twice
            content = masked_content(sub)
            first = domain.find_duplicate(content, now, recent)
            while first is not None and not self.petitions.load(first).exists:
                recent = [e for e in recent if first not in (e["petition_id"], e.get("duplicate_of"))]
                first = domain.find_duplicate(content, now, recent)
            try:
                self.duplicates.commit(
                    loaded, {"recent": domain.remember_for_duplicates(recent, pid, content, now, first)}
                )
                return first, True
            except Conflict:
                continue
        return None, False  # a burst from one phone: this one goes unlinked rather than refused

    def _undo_index(self, indexed: bool, key: str, pid: str) -> None:
        """Take the petition's entry out of the duplicate index again (its commit failed)."""
        if not indexed:
            return
        try:
            for _ in range(MAX_CONFLICT_RETRIES):
                loaded = self.duplicates.load(key)
                recent = (loaded.state or {}).get("recent", [])
                kept = [e for e in recent if e["petition_id"] != pid]
                if len(kept) == len(recent):
                    return
                try:
                    self.duplicates.commit(loaded, {"recent": kept})
                    return
                except Conflict:
                    continue
        except Exception as exc:  # the entry stays; _index_for_duplicates drops it when it meets it
            log.warning("could not undo a duplicate-index entry", extra={"petition_id": pid, "error": repr(exc)})

    # ---- read

    def load(self, petition_id: str) -> dict[str, Any]:
        state = self.petitions.load(petition_id).state
        if state is None:
            raise NotFound(petition_id)
        return state

    def authorize_citizen(self, petition_id: str, tracking_code: str | None) -> dict[str, Any]:
        """The petition if `tracking_code` is its submitter's; NotFound otherwise (never reveal that it
        exists). Only the submitter may act on a petition (withdraw, rate); see `authorize_reader`."""
        access = self.authorize_reader(petition_id, tracking_code)
        if access.role != SUBMITTER:
            raise NotFound(petition_id)
        return access.state

    def authorize_reader(self, petition_id: str, tracking_code: str | None) -> Access:
        """The petition and who presents the code: its submitter, or a follower who joined it."""
        if not tracking_code:
            raise NotFound(petition_id)
        if _is_follower_credential(tracking_code):
            return Access(self._follower_state(petition_id, tracking_code), FOLLOWER)
        state = self.load(petition_id)
        if self.signer.matches(state["tracking_digest"], TRACKING, tracking_code):
            return Access(state, SUBMITTER)
        # followers of petitions joined before followers had their own credentials: follow-only now
        if any(
            self.signer.matches(f.get("tracking_digest", ""), TRACKING, tracking_code)
            for f in state.get("followers", [])
        ):
            return Access(state, FOLLOWER)
        raise NotFound(petition_id)

    def _follower_state(self, petition_id: str, credential: str) -> dict[str, Any]:
        follower_id, _, tag = credential.removeprefix(FOLLOWER_PREFIX).partition(".")
        if not self.signer.verify(tag, "follow", petition_id, follower_id):
            raise NotFound(petition_id)
        # signed, and still there: a follower whose join was taken back has no access
        if self.followers.find_one({"_id": f"{petition_id}:{follower_id}"}, {"_id": 1}) is None:
            raise NotFound(petition_id)
        return self.load(petition_id)

    @staticmethod
    def authorize_staff(state: dict[str, Any], staff: Staff) -> None:
        assignment = state.get("assignment") or {}
        if not may_read(staff, Area(grid_id=assignment.get("grid_id"), town_id=state.get("town_id"))):
            raise NotFound(state["petition_id"])

    @staticmethod
    def citizen_view(state: dict[str, Any]) -> dict[str, Any]:
        assignment = state.get("assignment") or {}
        return {
            "petition_id": state["petition_id"],
            "status": state["status"],
            "category": state["category"],
            "channel": state["channel"],
            "submitted_at": state["submitted_at"],
            "duplicate_of": state.get("duplicate_of"),
            "affected_citizens": state.get("affected_citizens", 1),
            "assigned_to": {k: assignment.get(k) for k in ("town", "village", "grid_id", "department")}
            if assignment
            else None,
            "reply": state.get("reply"),
            "feedback": state.get("feedback"),
            "timeline": state.get("timeline", []),
        }

    @classmethod
    def follower_view(cls, state: dict[str, Any]) -> dict[str, Any]:
        """What a citizen who joined sees: how the shared problem progresses, not what the submitter
        wrote or was told (notes, the reply's text, the rating's comment may be about them)."""
        view = cls.citizen_view(state)
        reply = view.get("reply")
        return {
            **{k: v for k, v in view.items() if k not in ("reply", "feedback", "timeline", "duplicate_of")},
            "reply": {"resolution": reply.get("resolution"), "replied_at": reply.get("replied_at")} if reply else None,
            "timeline": [{k: e.get(k) for k in ("at", "event", "status")} for e in view["timeline"]],
        }

    def staff_view(self, state: dict[str, Any]) -> dict[str, Any]:
        """What staff who cover the petition see: the citizen's contact details and original text,
        decrypted from the contacts record (the one read of it); after erasure, the masked text and
        no contact details."""
        citizen = state["citizen"]
        content, location = state["content"], state["location"]
        if "contact_id" in citizen:
            contact = self.contacts.get(citizen["contact_id"]) or {}
            content = contact.get("content", content)
            if "address" in contact:
                location = {**location, "address": contact["address"]}
            person = {"name": contact.get("name", ""), "phone": contact.get("phone", "")}
        elif "erased_at" in citizen:
            person = {"name": "", "phone": "", "erased_at": citizen["erased_at"]}
        else:  # petitions stored before the contacts records kept the details in their state
            person = {"name": citizen["name"], "phone": citizen["phone"]}
        return {
            **self.citizen_view(state),
            "content": content,
            "location": location,
            "citizen": person,
            "affected_citizens": state.get("affected_citizens", 1),
            "assignment": state.get("assignment"),
        }

    # ---- citizen actions

    def give_feedback(
        self, petition_id: str, tracking_code: str | None, satisfaction: str, comment: str | None
    ) -> dict[str, Any]:
        self.authorize_citizen(petition_id, tracking_code)
        now = format_time(self.clock())

        def change(state: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
            domain.check_feedback(state)
            round_ = int(state.get("reply_round", 0))
            new = {
                **state,
                "feedback_round": round_,
                # kept in the petition's commits: identifiers masked like the petition's text
                "feedback": {
                    "satisfaction": satisfaction,
                    "comment": redact.mask_identifiers(comment) if comment else comment,
                    "received_at": now,
                    "round": round_,
                },
                "timeline": [
                    *state["timeline"],
                    {"at": now, "event": "petition.feedback_received", "status": state["status"], "note": satisfaction},
                ],
            }
            event = Event(
                type="petition.feedback_received",
                source=SOURCE,
                subject=petition_id,
                time=now,
                data={"petition_id": petition_id, "satisfaction": satisfaction, "received_at": now, "round": round_},
            )
            return new, [event]

        return self._act(petition_id, change)

    def withdraw(self, petition_id: str, tracking_code: str | None) -> dict[str, Any]:
        self.authorize_citizen(petition_id, tracking_code)
        now = format_time(self.clock())

        def change(state: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
            domain.check_withdraw(state)
            new = {
                **state,
                "status": domain.WITHDRAWN,
                "timeline": [
                    *state["timeline"],
                    {"at": now, "event": "petition.withdrawn", "status": domain.WITHDRAWN},
                ],
            }
            self.on_end(state, new)
            event = Event(
                type="petition.withdrawn",
                source=SOURCE,
                subject=petition_id,
                time=now,
                data={"petition_id": petition_id, "withdrawn_at": now},
            )
            return new, [event]

        return self._act(petition_id, change)

    def _act(
        self, petition_id: str, change: Callable[[dict[str, Any]], tuple[dict[str, Any], list[Event]]]
    ) -> dict[str, Any]:
        for _ in range(MAX_CONFLICT_RETRIES):
            loaded = self.petitions.load(petition_id)
            if loaded.state is None:
                raise NotFound(petition_id)
            new, events = change(loaded.state)
            try:
                self.petitions.commit(loaded, new, events)
                return new
            except Conflict:
                continue
        raise Conflict(petition_id)

    def update(self, petition_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Commit `fn(state)` as the petition's next state, publishing nothing."""
        self._act(petition_id, lambda s: (fn(s), []))

    # ---- following routing (consumer handler)

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
            self.on_end(loaded.state, new)
            self.petitions.commit(loaded, new)  # Conflict -> the consumer loop retries on fresh state
            if new["status"] in domain.TERMINAL:
                self.open_points.delete_one({"_id": pid})

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
                self.on_end(loaded.state, state)
                items.append((loaded, state, []))
        for (loaded, state, _), result in zip(items, self.petitions.commit_many(items), strict=True):
            pid = loaded.aggregate_id
            if isinstance(result, Conflict):
                for event, meta in groups[pid]:
                    self.on_routing_event(event, meta)
            elif state["status"] in domain.TERMINAL:
                self.open_points.delete_one({"_id": pid})

    # ---- near me, and joining an open petition instead of filing again

    def nearby(self, lat: float, lon: float, category: str, radius_m: float, limit: int = 10) -> list[dict[str, Any]]:
        """Open petitions of this category near the point, nearest first: what, how far in 100 m
        bands, and the village and town routing placed it in. Never its text or its position: the
        index keeps only the ~100 m cell a point falls in (domain.coarse_point), so no number of
        queries from well-chosen points locates a petition closer than its cell."""
        candidates = []
        for doc in self.open_points.find({}):
            if doc["category"] != category:
                continue
            # documents written before cells were kept hold the exact point: coarsen it here too
            cell = domain.coarse_point(doc.get("cell_lat", doc.get("lat")), doc.get("cell_lon", doc.get("lon")))
            distance = domain.distance_m(lat, lon, *cell)
            if distance <= radius_m:
                candidates.append((distance, doc["_id"]))
        found = []
        for distance, pid in sorted(candidates):
            state = self.petitions.load(pid).state
            if state is None or state["status"] in domain.TERMINAL:
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
        follower_id = self.signer.sign("follower", petition_id, citizen.phone, length=16)
        doc_id = f"{petition_id}:{follower_id}"
        state = self._open_petition(petition_id)
        contact_id = "c" + self.signer.sign(CONTACT, petition_id, follower_id, length=22)
        comment = citizen.comment
        self.contacts.put(contact_id, {"name": citizen.name, "phone": citizen.phone, "comment": comment or ""})
        try:
            self.followers.insert_one(
                {
                    "_id": doc_id,
                    "petition_id": petition_id,
                    "contact_id": contact_id,
                    "channel": citizen.channel,
                    "comment": redact.mask_identifiers(comment, [citizen.name]) if comment else comment,
                    "joined_at": format_time(self.clock()),
                }
            )
        except DuplicateKeyError:  # this phone joined before: the same follower again
            return self._joined(state, follower_id)
        try:
            state = self._act(petition_id, _count_one_more)
        except BaseException:
            # the follower counted nowhere must not hold a credential, nor leave their details behind
            self.followers.delete_one({"_id": doc_id})
            self.contacts.shred([contact_id])
            raise
        return self._joined(state, follower_id)

    def _open_petition(self, petition_id: str) -> dict[str, Any]:
        state = self.petitions.load(petition_id).state if _PETITION_ID.match(petition_id) else None
        if state is None or state["status"] in domain.TERMINAL:
            raise NotFound(petition_id)
        return state

    def _joined(self, state: dict[str, Any], follower_id: str) -> dict[str, Any]:
        pid = state["petition_id"]
        return {
            "petition_id": pid,
            "tracking_code": f"{FOLLOWER_PREFIX}{follower_id}.{self.signer.sign('follow', pid, follower_id)}",
            "status": state["status"],
            "affected_citizens": state.get("affected_citizens", 1),
        }


def _contact_fields(sub: domain.Submission) -> dict[str, str]:
    """What the contacts record keeps: the details, and the text as written when masking changed it."""
    content = sub.content if masked_content(sub) != sub.content else ""
    return {
        "name": sub.citizen_name,
        "phone": sub.citizen_phone,
        "address": sub.location.get("address") or "",
        "content": content,
    }


def masked_content(sub: domain.Submission) -> str:
    known = [sub.citizen_name, sub.location.get("address") or ""]
    return redact.mask_identifiers(sub.content, known)


def masked_location(location: dict[str, Any]) -> dict[str, Any]:
    if not location.get("address"):
        return location
    return {**location, "address": redact.mask_address(location["address"])}


def _is_follower_credential(code: str) -> bool:
    return code.startswith(FOLLOWER_PREFIX) and "." in code


def _count_one_more(state: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    if state["status"] in domain.TERMINAL:  # closed while the follower was being added
        raise NotFound(state["petition_id"])
    return {**state, "affected_citizens": int(state.get("affected_citizens", 1)) + 1}, []
