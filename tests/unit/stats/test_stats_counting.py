"""The counter as the consumer loop's partition owner, on the in-memory fakes: it seeks where its
checkpoint says, advances on every finished record, checkpoints, and a new owner continues exactly
there (the exactly-once the loop relies on); a stale state is reloaded and its partition rewound."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from petition_common.config import Settings
from petition_common.consumer import MessageMeta, Rewound, Unprocessable
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.fakes import MemoryDatabase, RecordingPublisher
from petition_common.metrics import PlatformMetrics
from petition_common.store import AggregateStore
from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import load_policy
from services.stats.domain.facts import INDEX, SlaRules
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.generations import Generations
from services.stats.handlers import handlers
from services.stats.metrics import StatsMetrics
from services.stats.write.alerts import AlertPublisher
from services.stats.write.context import Context
from services.stats.write.counting import IncompleteAssignment, PartitionCounter
from services.stats.write.partition_state import Stale

REPO = Path(__file__).resolve().parents[3]
SETTINGS = Settings(service="stats", topic_prefix="t-")
INTAKE, ROUTING, SLA = "t-petitions.intake.v1", "t-petitions.routing.v1", "t-petitions.sla.v1"


class Consumer:
    """The KafkaConsumer calls the counter makes: seeks."""

    def __init__(self) -> None:
        self.positions: dict[TopicPartition, int | str] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.positions[tp] = "beginning"


def context(db: MemoryDatabase) -> Context:
    metrics = StatsMetrics(CollectorRegistry())
    rules = SlaRules(load_policy(REPO / "config" / "sla-policy.yaml"), WorkCalendar.load(REPO / "config" / "calendar"))
    return Context(
        settings=SETTINGS,
        db=db,  # type: ignore[arg-type]
        rules=rules,
        hotspots=HotspotConfig(),
        generations=Generations(AggregateStore(db, "stats_generation")),  # type: ignore[arg-type]
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        validator=ContractValidator(REPO / "contract"),
        platform=PlatformMetrics(CollectorRegistry(), "stats"),
        metrics=metrics,
        alerts=AlertPublisher(AggregateStore(db, "alerts"), metrics),  # type: ignore[arg-type]
        checkpoint_interval_s=0.0,  # every poll checkpoints what changed
    )


def submitted(pid: str) -> Event:
    data = {
        "petition_id": pid,
        "channel": "web",
        "category": "drainage",
        "content": "下水道堵了",
        "location": {"town": "城关街道", "village": "东村"},
        "citizen": {"name_masked": "刘*", "phone_masked": "138****1234"},
        "submitted_at": "2024-07-01T02:00:00.000Z",
    }
    return Event(type="petition.submitted", source="petitions/intake", subject=pid, data=data)


def tps(p: int) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in (INTAKE, ROUTING, SLA)]


def accepted(counter: PartitionCounter, p: int) -> int:
    return sum(values[INDEX["accepted"]] for values in counter.owned[p].state.all_cells().values())


def test_a_new_owner_continues_exactly_where_the_last_checkpoint_left_off():
    db = MemoryDatabase()
    first = PartitionCounter(context(db), threading.Event())
    apply = handlers(first)["petition.submitted"]
    consumer = Consumer()
    first.assigned(consumer, tps(1))  # type: ignore[arg-type]
    assert set(consumer.positions.values()) == {"beginning"}  # no checkpoint yet
    intake = TopicPartition(INTAKE, 1)
    for offset in range(3):
        pid = f"JZ20240701{offset:06d}"
        assert apply(submitted(pid), MessageMeta(INTAKE, 1, offset, pid)) == "applied"
        first.done(intake, offset)
    first.done(intake, 3)  # a record the loop ignored or dead-lettered moves the offset on too
    assert first.next_offset(intake) == 4
    durable = first.polled(consumer, idle=True)  # type: ignore[arg-type]
    assert {tp.topic: o.offset for tp, o in durable.items()} == {INTAKE: 4}  # only checkpointed offsets
    # the same petition again is a duplicate: counted once
    pid = "JZ20240701000000"
    assert apply(submitted(pid), MessageMeta(INTAKE, 1, 4, pid)) == "duplicate"
    first.done(intake, 4)  # ... applied but never checkpointed: the process dies here

    second = PartitionCounter(context(db), threading.Event())
    consumer = Consumer()
    second.assigned(consumer, tps(1))  # type: ignore[arg-type]
    assert consumer.positions[intake] == 4  # the checkpoint's offset, not the one applied after it
    assert consumer.positions[TopicPartition(ROUTING, 1)] == "beginning"
    assert accepted(second, 1) == 3
    assert second.next_offset(TopicPartition(INTAKE, 2)) is None  # not owned: the loop skips it


def test_unusable_events_are_dead_lettered_and_a_stale_state_rewinds_its_partition():
    db = MemoryDatabase()
    counter = PartitionCounter(context(db), threading.Event())
    consumer = Consumer()
    counter.assigned(consumer, tps(0))  # type: ignore[arg-type]
    event = submitted("JZ20240701000001")
    with pytest.raises(Unprocessable) as refused:  # the key names another petition
        counter.apply(event, MessageMeta(INTAKE, 0, 0, "JZ20240701000002"))
    assert refused.value.reason == "schema_invalid"

    def gone(block_id: str) -> bytes | None:
        return None  # the garbage collector deleted a block this state still names

    counter.owned[0].state.manifest["f:20240701"] = "deleted"
    counter.owned[0].state._load_block = gone
    consumer.positions.clear()
    with pytest.raises(Rewound):
        counter.apply(event, MessageMeta(INTAKE, 0, 7, event.data["petition_id"]))
    assert set(consumer.positions) == set(tps(0))  # reloaded: every topic of the partition sought again
    assert counter.next_offset(TopicPartition(ROUTING, 0)) is None  # the rest of this batch waits
    counter.polled(consumer, idle=False)  # type: ignore[arg-type]
    assert counter.next_offset(TopicPartition(ROUTING, 0)) == 0


def test_stale_is_what_a_missing_block_raises():
    """The rewind above rests on this: a state naming a deleted block raises Stale."""
    db = MemoryDatabase()
    counter = PartitionCounter(context(db), threading.Event())
    counter.assigned(Consumer(), tps(0))  # type: ignore[arg-type]
    state = counter.owned[0].state
    state.manifest["f:20240701"] = "deleted"
    state._load_block = lambda block_id: None
    with pytest.raises(Stale):
        state._facts("f:20240701")


class NoWait(threading.Event):
    """A stop event whose back-off waits return at once (never set)."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


class FailingLoop:
    """A consumer loop that fails `times` times with `error`, then returns as if stopped."""

    def __init__(self, error: Exception, times: int) -> None:
        self.error, self.left = error, times

    def __call__(self, handlers: object) -> FailingLoop:
        return self

    def run(self) -> None:
        if self.left:
            self.left -= 1
            raise self.error


def test_an_assignment_missing_a_topic_while_metadata_settles_is_waited_out():
    """A controller failing over, or topics just created, can leave a topic's partition metadata out
    of an assignment for a while; the counter keeps trying instead of stopping for good (CI once saw
    stats count nothing in the controller-leader fault scenario)."""
    counter = PartitionCounter(context(MemoryDatabase()), NoWait())
    counter.assigned(Consumer(), [TopicPartition(INTAKE, 0), TopicPartition(ROUTING, 0)])  # type: ignore[arg-type]
    with pytest.raises(IncompleteAssignment) as incomplete:
        counter.polled(Consumer(), idle=True)  # type: ignore[arg-type]
    loop = FailingLoop(incomplete.value, times=20)
    counter.loop = loop  # type: ignore[method-assign]
    counter.run(handlers(counter), max_failures=5)
    assert loop.left == 0  # tried until it went through


def test_any_other_failure_five_times_in_a_row_stops_the_counter():
    counter = PartitionCounter(context(MemoryDatabase()), NoWait())
    loop = FailingLoop(ValueError("a bug"), times=20)
    counter.loop = loop  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        counter.run(handlers(counter), max_failures=5)
    assert loop.left == 15
