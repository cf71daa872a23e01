"""A generated month of a county's petitions, with every petition's lifecycle, as contract events.

Submissions come from countysim (noise over the whole county, plus planted hotspots); what happens
afterwards (routing, contact, reply, feedback, closure, transfers, reopenings, pauses, withdrawals,
duplicates, SLA notices) is drawn here with a seeded random generator, as intake, routing and sla
would publish it. Each petition's `Truth` records what was drawn, so that a test can compute the
expected figures without the stats service's code. Nothing here imports the stats service.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from countysim import County, GeneratedPetition
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import BEIJING, format_time

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = load_categories(REPO / "config" / "categories.yaml")
INTAKE, ROUTING, SLA = "petitions.intake.v1", "petitions.routing.v1", "petitions.sla.v1"


@dataclass
class Truth:
    """What happened to one petition (the generator's record, for independent expectations)."""

    petition_id: str
    submitted_at: datetime
    category: str
    channel: str
    planted: str | None = None  # the name of the planted hotspot it belongs to
    duplicate_of: str | None = None
    grid: str | None = None  # the first assignment's area (what the hotspot detector uses)
    village: str | None = None
    town: str | None = None
    final_grid: str | None = None  # the latest assignment's area (what the statistics use)
    final_village: str | None = None
    final_town: str | None = None
    department: str | None = None
    transferred: bool = False
    contacted_at: datetime | None = None
    replies: list[datetime] = field(default_factory=list)
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    reopened: bool = False
    closed: bool = False
    withdrawn: bool = False
    ratings: list[tuple[datetime, str]] = field(default_factory=list)
    sla_warned: bool = False
    sla_breached: bool = False


@dataclass
class Message:
    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def _mask_phone(phone: str) -> str:
    if "-" in phone:
        area, number = phone.split("-", 1)
        return f"{area}-****{number[-4:]}"
    return f"{phone[:3]}****{phone[-4:]}"


class World:
    """The month: `truths` (one per petition) and `messages` (every event, in a publishing order)."""

    def __init__(self, county: County, petitions: list[tuple[GeneratedPetition, str | None]], seed: int):
        self.county = county
        self.rng = random.Random(seed)
        self.truths: list[Truth] = []
        self.messages: list[Message] = []
        self._assign_ids(petitions)

    # ---- ids and events

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _event(self, topic: str, type_: str, source: str, pid: str, at: datetime, data: dict) -> None:
        eid = self._uuid()
        body = {
            "specversion": "1.0",
            "id": eid,
            "source": source,
            "type": type_,
            "subject": pid,
            "time": format_time(at),
            "datacontenttype": "application/json",
            "data": {"petition_id": pid, **data},
        }
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", eid.encode()),
            ("ce_type", type_.encode()),
            ("ce_source", source.encode()),
        ]
        self.messages.append(Message(topic, pid, orjson.dumps(body), headers, eid))

    def _assign_ids(self, petitions: list[tuple[GeneratedPetition, str | None]]) -> None:
        per_day: dict[str, int] = {}
        self._items = []
        for g, planted in sorted(petitions, key=lambda p: p[0].truth.submitted_at):
            day = g.truth.submitted_at.astimezone(BEIJING).strftime("%Y%m%d")
            per_day[day] = per_day.get(day, 0) + 1
            self._items.append((f"JZ{day}{per_day[day]:06d}", g, planted))

    # ---- lifecycles

    def build(self) -> World:
        recent: list[Truth] = []
        for pid, g, planted in self._items:
            t = Truth(pid, g.truth.submitted_at, g.body["category"], g.body["channel"], planted)
            if planted is None and recent and self.rng.random() < 0.02:
                t.duplicate_of = self.rng.choice(recent[-50:]).petition_id
            self._lifecycle(t, g)
            self.truths.append(t)
            if t.duplicate_of is None:
                recent.append(t)
        return self

    def _area(self, g: GeneratedPetition) -> tuple[str | None, str | None, str | None]:
        grid = self.county.grids_by_id[g.truth.grid_id]
        village = self.county.villages_by_id[grid.village_id].name
        town = self.county.towns_by_id[grid.town_id].name
        if g.truth.route == "triage":
            return None, None, town if self.rng.random() < 0.5 else None
        return grid.grid_id, village, town

    def _lifecycle(self, t: Truth, g: GeneratedPetition) -> None:
        rng, pid, at = self.rng, t.petition_id, t.submitted_at
        body = g.body
        location = {k: v for k, v in body["location"].items()}
        citizen = body["citizen"]
        self._event(
            INTAKE,
            "petition.submitted",
            "petitions/intake",
            pid,
            at,
            {
                "channel": body["channel"],
                "category": body["category"],
                "content": body["content"],
                "location": location,
                "citizen": {"name_masked": citizen["name"][:1] + "*", "phone_masked": _mask_phone(citizen["phone"])},
                "submitted_at": format_time(at),
                "duplicate_of": t.duplicate_of,
            },
        )
        grid, village, town = self._area(g)
        t.grid, t.village, t.town = grid, village, town
        t.final_grid, t.final_village, t.final_town = grid, village, town
        t.department = CATEGORIES[t.category].department
        assigned_at = at + timedelta(seconds=rng.uniform(0.5, 30))
        self._assignment("petition.assigned", t, assigned_at, "grid_leader" if grid else "county_dispatcher")
        if t.duplicate_of is not None and rng.random() < 0.5:
            self._timed("petition.contacted", t, assigned_at + timedelta(minutes=30), "contacted_at")
            return  # a repeat is usually merged into its original: little else happens to it
        if rng.random() < 0.02:  # withdrawn before anyone calls
            w = assigned_at + timedelta(minutes=rng.uniform(5, 120))
            self._event(INTAKE, "petition.withdrawn", "petitions/intake", pid, w, {"withdrawn_at": format_time(w)})
            t.withdrawn = True
            return
        now = assigned_at
        if grid is not None and rng.random() < 0.04:  # sent to a neighbouring grid of the same village
            neighbours = [x for x in self.county.grids_in("village", grid[:6]) if x.grid_id != grid]
            if neighbours:
                target = rng.choice(neighbours)
                now = now + timedelta(minutes=rng.uniform(5, 90))
                t.final_grid = target.grid_id
                t.transferred = True
                self._assignment("petition.transferred", t, now, "grid_leader")
        if rng.random() < 0.07:
            return  # never contacted (yet)
        limit = {"emergency": 2, "utilities": 24}.get(t.category, 6)
        late = rng.random() < 0.15
        delay = rng.uniform(limit * 1.05, limit * 3) if late else rng.uniform(0.05, limit * 0.95)
        t.contacted_at = at + timedelta(hours=delay)
        if t.contacted_at < now:
            t.contacted_at = now + timedelta(minutes=1)
        self._timed("petition.contacted", t, t.contacted_at, "contacted_at")
        if t.contacted_at - at > timedelta(hours=limit):
            self._sla(t, "sla.warning", at + timedelta(hours=limit * 0.8), limit)
            self._sla(t, "sla.breached", at + timedelta(hours=limit), limit)
        now = t.contacted_at
        if rng.random() < 0.03:  # a third party must act first
            start = now + timedelta(hours=1)
            end = start + timedelta(hours=rng.uniform(20, 72))
            t.pauses.append((start, end))
            self._pause(t, start, end)
            now = end
        if rng.random() < 0.06:
            return  # no reply (yet)
        reply = now + timedelta(hours=rng.choice((rng.uniform(1, 48), rng.uniform(48, 200), rng.uniform(100, 260))))
        self._reply(t, reply)
        if rng.random() < 0.05:  # closed by staff without waiting for the citizen
            self._close(t, reply + timedelta(hours=rng.uniform(1, 24)), "staff")
            return
        if rng.random() < 0.25:  # never rated: the feedback window closes it
            self._close(t, reply + timedelta(days=7), "timeout")
            return
        rated = reply + timedelta(hours=rng.uniform(1, 72))
        rating = rng.choices(("satisfied", "basically_satisfied", "dissatisfied"), (0.7, 0.2, 0.1))[0]
        self._rate(t, rated, rating)
        if rating == "dissatisfied" and rng.random() < 0.7:  # reopened, replied again, rated again
            t.reopened = True
            self._timed("petition.reopened", t, rated, "reopened_at", reason="诉求人不满意")
            again = rated + timedelta(hours=rng.uniform(4, 60))
            self._reply(t, again)
            rated = again + timedelta(hours=rng.uniform(1, 24))
            self._rate(t, rated, rng.choice(("satisfied", "basically_satisfied", "dissatisfied")))
        self._close(t, rated, "feedback")

    def _assignment(self, type_: str, t: Truth, at: datetime, role: str) -> None:
        grid = t.final_grid
        village = t.final_village
        if grid is not None:
            g = self.county.grids_by_id[grid]
            village = self.county.villages_by_id[g.village_id].name
        self._event(
            ROUTING,
            type_,
            "petitions/routing",
            t.petition_id,
            at,
            {
                "grid_id": grid,
                "village": village,
                "town": t.final_town,
                "department": t.department,
                "assignee": {"staff_id": "S000001", "role": role},
                "reason": "generated",
                "assigned_at": format_time(at),
            },
        )

    def _timed(self, type_: str, t: Truth, at: datetime, field_name: str, **extra: str) -> None:
        data = {field_name: format_time(at), **extra}
        if type_ == "petition.contacted":
            data["staff_id"] = "S000001"
        self._event(ROUTING, type_, "petitions/routing", t.petition_id, at, data)

    def _reply(self, t: Truth, at: datetime) -> None:
        t.replies.append(at)
        data = {"staff_id": "S000001", "replied_at": format_time(at), "resolution": "resolved", "summary": "已处理"}
        self._event(ROUTING, "petition.replied", "petitions/routing", t.petition_id, at, data)

    def _rate(self, t: Truth, at: datetime, rating: str) -> None:
        t.ratings.append((at, rating))
        data = {"satisfaction": rating, "received_at": format_time(at)}
        self._event(INTAKE, "petition.feedback_received", "petitions/intake", t.petition_id, at, data)

    def _close(self, t: Truth, at: datetime, by: str) -> None:
        t.closed = True
        data = {"closed_at": format_time(at), "closed_by": by}
        self._event(ROUTING, "petition.closed", "petitions/routing", t.petition_id, at, data)

    def _pause(self, t: Truth, start: datetime, end: datetime) -> None:
        pid = t.petition_id
        data = {"staff_id": "S000001", "at": format_time(start), "reason": "third_party"}
        self._event(ROUTING, "petition.sla_paused", "petitions/routing", pid, start, data)
        self._event(
            ROUTING,
            "petition.sla_resumed",
            "petitions/routing",
            pid,
            end,
            {"staff_id": "S000001", "at": format_time(end)},
        )

    def _sla(self, t: Truth, type_: str, at: datetime, hours: float) -> None:
        deadline = t.submitted_at + timedelta(hours=hours)
        data = {
            "clock": "contact",
            "deadline": format_time(deadline),
            "grid_id": t.final_grid,
            "town": t.final_town,
            "level": 1,
        }
        if type_ == "sla.warning":
            t.sla_warned = True
            data["remaining_seconds"] = int((deadline - at).total_seconds())
        else:
            t.sla_breached = True
            data["overdue_seconds"] = 0
        self._event(SLA, type_, "petitions/sla", t.petition_id, at, data)

    # ---- publishing order

    def publishing_order(self, redeliver: float = 0.01) -> Iterator[Message]:
        """Every message, in an order where a petition's events on one topic keep their order but
        the topics interleave freely (routing's events often come before the submission), with a
        share of messages delivered twice (same event id), as at-least-once delivery does."""
        by_topic: dict[str, list[Message]] = {INTAKE: [], ROUTING: [], SLA: []}
        for m in self.messages:
            by_topic[m.topic].append(m)
        rng = random.Random(self.rng.random())
        cursors = {k: 0 for k in by_topic}
        while any(cursors[k] < len(v) for k, v in by_topic.items()):
            live = [k for k, v in by_topic.items() if cursors[k] < len(v)]
            topic = rng.choices(live, [len(by_topic[k]) - cursors[k] for k in live])[0]
            burst = rng.randint(1, 400)
            for m in by_topic[topic][cursors[topic] : cursors[topic] + burst]:
                yield m
                if rng.random() < redeliver:
                    yield m
            cursors[topic] += burst
