"""A petition's record following intake's and routing's events: the one state transition of `clocks`.

The kernel's `apply` only adds facts, idempotent by event id and order-free, so a redelivered event
leaves an equal record: `Followed.changed` is False and there is nothing to commit (the caller only
makes sure the projection is there, which a crash may have cost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from petition_common.envelope import Event
from petition_kernel.sla.clock import ClockState
from petition_kernel.sla.record import SlaRecord, apply
from services.sla.domain.clocks import clocks_of
from services.sla.domain.config import SlaConfig


@dataclass(frozen=True)
class Followed:
    record: SlaRecord
    changed: bool  # False: every event was known already (a redelivery); nothing to commit


def follow(record: SlaRecord | None, events: Iterable[Event]) -> Followed:
    """The record after `events`, in order; raises EventDataError for data the rules cannot use."""
    new = record
    for event in events:
        new = apply(new, event.type, event.data, event.id)
    if new is None:
        raise ValueError("follow needs at least one event")
    return Followed(new, record is None or new != record)


def met_transitions(before: list[ClockState], after: list[ClockState]) -> list[tuple[str, bool]]:
    """(clock, on_time) for every clock that `after` has met and `before` had not."""
    was_met = {c.id for c in before if c.outcome == "met"}
    return [
        (c.clock, c.ended_at is not None and c.ended_at <= c.deadline)
        for c in after
        if c.outcome == "met" and c.id not in was_met
    ]


def newly_met(old: SlaRecord | None, new: SlaRecord, config: SlaConfig) -> list[tuple[str, bool]]:
    """(clock, on_time) for every clock the step from `old` to `new` met."""
    policy, calendar = config.policy, config.calendar
    before = clocks_of(old, None, policy, calendar).states if old is not None else []
    return met_transitions(before, clocks_of(new, None, policy, calendar).states)
