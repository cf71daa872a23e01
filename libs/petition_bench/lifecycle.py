"""What happens to each petition of the year replay, and when: pure planning, no I/O.

Every petition gets a `Plan` drawn from `Shares` (withdrawn before contact, contacted late, transferred,
the working day of the reply, the citizen's rating, a second handling after a dissatisfied rating).
`build_schedule` turns the plans into slots: four moments of each simulated day (Beijing time) at
which the driver sets the services' clock and performs the slot's actions over HTTP.

    08:00 morning  ratings of yesterday's replies, late contacts, second contacts after a reopening
    09:00 submit   the day's submissions
    12:00 contact  on-time contacts (3 h after submission), transfers, withdrawals
    16:00 reply    replies due that day (first and second handlings)

A contact at 12:00 meets the 6 h clock (and misses the 2 h one of emergencies, as a real desk
sometimes does); a late contact the next morning misses it. A reply on working day n > 5 misses the
reply clock. A petition nobody rates is closed by routing's feedback timeout 7 days after the reply.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from petition_kernel.times import BEIJING

Phase = Literal["morning", "submit", "contact", "reply"]
PHASES: tuple[Phase, ...] = ("morning", "submit", "contact", "reply")
PHASE_TIME: Mapping[Phase, time] = {"morning": time(8), "submit": time(9), "contact": time(12), "reply": time(16)}

ActionKind = Literal["submit", "withdraw", "contact", "transfer", "reply", "feedback"]
Rating = Literal["satisfied", "basically_satisfied", "dissatisfied", "none"]


def _default_reply_days() -> dict[int, float]:
    return {1: 0.20, 2: 0.25, 3: 0.20, 4: 0.15, 5: 0.12, 6: 0.05, 7: 0.03}


def _default_first() -> dict[str, float]:
    return {"satisfied": 0.64, "basically_satisfied": 0.21, "dissatisfied": 0.12, "none": 0.03}


def _default_second() -> dict[str, float]:
    return {"satisfied": 0.35, "basically_satisfied": 0.20, "dissatisfied": 0.45}


@dataclass(frozen=True)
class Shares:
    """The shares the replay draws from. The defaults give a satisfaction rate near the reference
    county's 94 %: 12 % are rated dissatisfied first (and reopened), 45 % of those stay dissatisfied."""

    withdraw: float = 0.01
    late_contact: float = 0.04
    transfer: float = 0.05
    reply_working_day: Mapping[int, float] = field(default_factory=_default_reply_days)
    first_rating: Mapping[str, float] = field(default_factory=_default_first)
    second_rating: Mapping[str, float] = field(default_factory=_default_second)
    second_reply_working_day: int = 2


@dataclass(frozen=True)
class Plan:
    withdraw: bool = False
    late_contact: bool = False
    transfer: bool = False
    reply_working_day: int = 3
    first_rating: Rating = "satisfied"
    second_rating: Rating | None = None  # set when the first rating is dissatisfied

    @property
    def reopened(self) -> bool:
        return self.first_rating == "dissatisfied" and not self.withdraw

    @property
    def final_rating(self) -> Rating | None:
        if self.withdraw:
            return None
        return self.second_rating if self.reopened else self.first_rating


def _pick(rng: random.Random, shares: Mapping[str, float] | Mapping[int, float]):  # type: ignore[no-untyped-def]
    keys = list(shares)
    return rng.choices(keys, weights=[shares[k] for k in keys], k=1)[0]  # type: ignore[index]


def draw_plan(rng: random.Random, shares: Shares) -> Plan:
    if rng.random() < shares.withdraw:
        return Plan(withdraw=True)
    first = _pick(rng, shares.first_rating)
    return Plan(
        late_contact=rng.random() < shares.late_contact,
        transfer=rng.random() < shares.transfer,
        reply_working_day=_pick(rng, shares.reply_working_day),
        first_rating=first,
        second_rating=_pick(rng, shares.second_rating) if first == "dissatisfied" else None,
    )


@dataclass(frozen=True)
class Action:
    index: int  # the petition's index in the replay
    kind: ActionKind
    rating: Rating | None = None  # for feedback
    round: int = 1  # first or second handling


Slot = tuple[date, Phase]


def slot_instant(slot: Slot) -> datetime:
    day, phase = slot
    return datetime.combine(day, PHASE_TIME[phase], tzinfo=BEIJING)


def build_schedule(
    days: Iterable[date], plans: Iterable[Plan], add_working_days: Callable[[date, int], date], shares: Shares
) -> dict[Slot, list[list[Action]]]:
    """Slot → tasks; a task is one petition's actions in that slot, performed in order.

    `days[i]` is the Beijing submission day of petition i. `add_working_days(d, n)` is the sla
    calendar's: the n-th working day after d.
    """
    slots: dict[Slot, dict[int, list[Action]]] = defaultdict(dict)

    def at(slot: Slot, action: Action) -> None:
        slots[slot].setdefault(action.index, []).append(action)

    for i, (day, plan) in enumerate(zip(days, plans, strict=True)):
        at((day, "submit"), Action(i, "submit"))
        if plan.withdraw:
            at((day, "contact"), Action(i, "withdraw"))
            continue
        contact_slot: Slot = (day + timedelta(days=1), "morning") if plan.late_contact else (day, "contact")
        at(contact_slot, Action(i, "contact"))
        if plan.transfer:
            at(contact_slot, Action(i, "transfer"))
        reply_day = add_working_days(day, plan.reply_working_day)
        at((reply_day, "reply"), Action(i, "reply"))
        if plan.first_rating == "none":
            continue
        rated = reply_day + timedelta(days=1)
        at((rated, "morning"), Action(i, "feedback", rating=plan.first_rating))
        if plan.reopened:
            again = rated + timedelta(days=1)
            at((again, "morning"), Action(i, "contact", round=2))
            second_reply = add_working_days(again, shares.second_reply_working_day)
            at((second_reply, "reply"), Action(i, "reply", round=2))
            at((second_reply + timedelta(days=1), "morning"), Action(i, "feedback", rating=plan.second_rating, round=2))
    order = {p: n for n, p in enumerate(PHASES)}
    return {
        slot: list(tasks.values()) for slot, tasks in sorted(slots.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    }


@dataclass(frozen=True)
class Expected:
    """What stats must show at the end, given which petitions intake accepted (not duplicates)."""

    accepted: int
    withdrawn: int
    closed: int
    reopened: int
    transferred: int


def expected_outcome(plans: Iterable[Plan], accepted: Iterable[bool]) -> Expected:
    n = withdrawn = reopened = transferred = 0
    for plan, ok in zip(plans, accepted, strict=True):
        if not ok:
            continue
        n += 1
        withdrawn += plan.withdraw
        reopened += plan.reopened
        transferred += plan.transfer and not plan.withdraw
    return Expected(accepted=n, withdrawn=withdrawn, closed=n - withdrawn, reopened=reopened, transferred=transferred)
