"""A partition's counters equal the sum of its petitions' contributions, whatever the order and
repetition of events, and survive being saved as blocks and read back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import load_policy
from services.stats.domain.facts import Change, SlaRules, cells_of, contribution, to_us
from services.stats.write.partition_state import PartitionState, Stale, cells_block, facts_block

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> SlaRules:
    return SlaRules(load_policy(REPO / "config" / "sla-policy.yaml"), WorkCalendar.load(REPO / "config" / "calendar"))


def lifecycle(rng: random.Random, i: int) -> list[Change]:
    """A random petition's events (some routed twice, some never contacted, some duplicates)."""
    pid = f"JZ202407{1 + i % 28:02d}{i:06d}"  # the id carries the submission day
    at = T0 + timedelta(days=i % 28, hours=rng.uniform(0, 24))
    us = lambda t: to_us(t)  # noqa: E731
    grid = f"T0{rng.randint(1, 3)}V01G00{rng.randint(1, 4)}"
    out = [
        Change(pid, "submitted", us(at), f"{pid}-s", (rng.choice(["roads", "drainage"]), "web", rng.random() < 0.1)),
        Change(pid, "assigned", us(at + timedelta(seconds=2)), f"{pid}-a", (grid, "V", grid[:3], "dept")),
    ]
    if rng.random() < 0.2:
        out.append(
            Change(pid, "transferred", us(at + timedelta(hours=1)), f"{pid}-t", ("T09V01G001", "W", "T09", "d2"))
        )
    if rng.random() < 0.9:
        out.append(Change(pid, "contacted", us(at + timedelta(hours=rng.uniform(0.1, 9))), f"{pid}-c"))
        out.append(Change(pid, "replied", us(at + timedelta(days=rng.uniform(0.2, 9))), f"{pid}-r"))
        if rng.random() < 0.7:
            sat = rng.choice(["satisfied", "basically_satisfied", "dissatisfied"])
            out.append(Change(pid, "feedback", us(at + timedelta(days=10)), f"{pid}-f", (sat,)))
            out.append(Change(pid, "closed", us(at + timedelta(days=10)), f"{pid}-x"))
    if rng.random() < 0.05:
        out.append(Change(pid, "sla_breached", 0, f"{pid}-b"))
    return out


def events(n: int, seed: int) -> list[Change]:
    rng = random.Random(seed)
    return [c for i in range(n) for c in lifecycle(rng, i)]


def test_counters_are_the_sum_of_contributions_in_any_order(rules):
    changes = events(300, seed=1)
    rng = random.Random(2)
    results = []
    for _ in range(3):
        shuffled = changes + rng.sample(changes, 100)  # with redeliveries
        rng.shuffle(shuffled)
        state = PartitionState(0, rules)
        applied = sum(state.apply(c) for c in shuffled)
        assert applied < len(shuffled)  # the redeliveries changed nothing
        facts = state.all_facts()
        assert state.all_cells() == cells_of(contribution(pid, f, rules) for pid, (f, _) in facts.items())
        results.append(state.all_cells())
    assert results[0] == results[1] == results[2]


def test_saved_blocks_read_back_to_the_same_state(rules):
    changes = events(200, seed=3)
    stored: dict[str, bytes] = {}
    state = PartitionState(0, rules)
    for c in changes[:400]:
        state.apply(c)
    manifest = {name: f"id-{name}-1" for name in state.dirty}
    stored.update({f"id-{name}-1": blob for name, blob in state.encode_dirty().items()})
    state.saved(manifest)

    resumed = PartitionState(0, rules, manifest=manifest, load_block=stored.get)
    for c in changes[400:]:
        state.apply(c)
        resumed.apply(c)
    assert resumed.all_cells() == state.all_cells()
    assert resumed.all_facts() == state.all_facts()


def test_idle_blocks_are_forgotten_and_read_again_when_needed(rules):
    changes = events(100, seed=5)
    stored: dict[str, bytes] = {}
    state = PartitionState(0, rules, load_block=stored.get)
    for c in changes:
        state.apply(c)
    reference = state.all_cells()
    manifest = {name: f"id-{name}" for name in state.dirty}
    stored.update({f"id-{name}": blob for name, blob in state.encode_dirty().items()})
    state.saved(manifest)
    assert state.evict(idle_s=-1) == len(manifest)
    assert not state.facts and not state.cells
    for c in changes:  # everything again: all duplicates now, read back from the blocks
        assert not state.apply(c)
    assert state.all_cells() == reference


def test_a_missing_block_means_the_state_is_stale(rules):
    state = PartitionState(0, rules, manifest={"f:20240701": "gone"}, load_block=lambda _: None)
    with pytest.raises(Stale):
        state.apply(events(1, seed=4)[0])


def test_block_names():
    assert facts_block("JZ20240717000123") == "f:20240717"
    assert facts_block("whatever") == "f:misc"
    assert cells_block(datetime(2024, 2, 29).toordinal()) == "c:20240229"
