"""The aggregate store and outbox on the real FerretDB and Kafka: the guarantees docs/reliability.md
argues, checked one by one."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pymongo import MongoClient, monitoring

from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, PublishFailed, ensure_topics
from petition_common.store import AggregateStore, Conflict, Loaded, OutboxRelay, commit_id
from petition_common.topics import INTAKE
from petition_kernel.times import utc_now
from tests.conftest import make_settings
from tests.support import read_topic


@pytest.fixture
def env(unique_prefix):
    settings = make_settings("storetest", unique_prefix)
    client = MongoClient(settings.mongo_uri, tz_aware=True)
    db = client[settings.database]
    publisher = EventPublisher(settings)
    ensure_topics(settings, [INTAKE])
    yield settings, db, publisher
    publisher.close()
    client.close()


def _event(pid: str, n: int) -> Event:
    return Event(
        type="petition.withdrawn",
        source="test",
        subject=pid,
        data={"petition_id": pid, "withdrawn_at": "2024-07-17T00:30:00.000Z", "n": n},
    )


def test_concurrent_writers_exactly_one_wins_each_version(env):
    _, db, _ = env
    store = AggregateStore(db, "race")
    store.commit(Loaded("A", 0, None), {"n": 0})
    wins: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for _ in range(20):
            loaded = store.load("A")
            assert loaded.state is not None
            try:
                store.commit(loaded, {"n": loaded.state["n"] + 1, "by": k})
            except Conflict:
                continue
            with lock:
                wins.append(k)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.load("A")
    # every successful commit incremented n by exactly one: no lost update
    assert final.state is not None
    assert final.state["n"] == len(wins)
    assert final.seq == len(wins) + 1


def test_load_finds_the_newest_commit_with_or_without_a_hint(env):
    _, db, _ = env
    writer = AggregateStore(db, "latest")
    loaded = Loaded("B", 0, None)
    for v in range(1, 12):
        commit = writer.commit(loaded, {"v": v})
        loaded = Loaded("B", commit.seq, commit.state)
    # another process: no hint, finds commit 11 by galloping search
    fresh = AggregateStore(db, "latest")
    assert (fresh.load("B").seq, fresh.load("B").state) == (11, {"v": 11})
    # a stale hint (another writer committed since) is rolled forward
    writer.commit(fresh.load("B"), {"v": 12})
    stale = AggregateStore(db, "latest")
    stale._remember("B", 3)
    assert (stale.load("B").seq, stale.load("B").state) == (12, {"v": 12})
    assert fresh.load("C").state is None and fresh.load("C").seq == 0


def test_events_are_published_in_commit_order_after_a_broker_failure(env):
    settings, db, publisher = env
    pid = "JZ20240717000001"
    topic = settings.topic(INTAKE)

    class FlakyPublisher:
        """Fails for the first two commits, as if the broker were down."""

        def __init__(self) -> None:
            self.calls = 0

        def publish(self, events, force=False):
            self.calls += 1
            if self.calls <= 2:
                raise PublishFailed("broker down")
            publisher.publish(events, force=force)

    store = AggregateStore(db, "ordered", publisher=FlakyPublisher())
    loaded = Loaded(pid, 0, None)
    for n in range(1, 4):
        commit = store.commit(loaded, {"n": n}, [_event(pid, n)])
        loaded = Loaded(pid, commit.seq, commit.state)
    # commits 1 and 2 failed to publish; commit 3's flush published 1, 2, 3 in that order
    messages = read_topic(topic, lambda ms: len([m for m in ms if m["key"] == pid]) >= 3, timeout_s=20)
    assert [m["value"]["data"]["n"] for m in messages if m["key"] == pid] == [1, 2, 3]
    assert store.outbox.count_documents({}) == 0


def test_relay_publishes_what_a_dead_writer_left_and_voids_a_marker_without_commit(env):
    settings, db, publisher = env
    store = AggregateStore(db, "relay", publisher=publisher)
    silent = AggregateStore(db, "relay")  # a writer whose process dies before publishing
    pid = "JZ20240717000002"
    silent.commit(Loaded(pid, 0, None), {"n": 1}, [_event(pid, 1)])
    old = utc_now() - timedelta(seconds=60)
    store.outbox.update_one({"_id": commit_id(pid, 1)}, {"$set": {"at": old}})
    # and a writer that died between its marker and its commit (version 2 of another petition)
    orphan = "JZ20240717000003"
    store.outbox.insert_one(
        {"_id": commit_id(orphan, 1), "store": "relay", "aggregate_id": orphan, "seq": 1, "at": old}
    )

    stats = OutboxRelay({"relay": store}).run_once()
    assert (stats.published, stats.voided) == (1, 1)
    assert store.outbox.count_documents({}) == 0
    # the orphan's version 1 is taken by a void commit: a late writer of it gets Conflict
    with pytest.raises(Conflict):
        store.commit(Loaded(orphan, 0, None), {"n": 1}, [_event(orphan, 1)])
    assert store.load(orphan).state is None
    messages = read_topic(settings.topic(INTAKE), lambda ms: any(m["key"] == pid for m in ms), timeout_s=20)
    assert [m["value"]["data"]["n"] for m in messages if m["key"] == pid] == [1]
    assert not [m for m in messages if m["key"] == orphan]


def test_a_writer_that_lost_the_race_leaves_no_marker(env):
    _, db, _ = env
    store = AggregateStore(db, "loser")
    pid = "JZ20240717000004"
    store.commit(Loaded(pid, 0, None), {"n": 1})
    with pytest.raises(Conflict):
        store.commit(Loaded(pid, 0, None), {"n": 99}, [_event(pid, 99)])
    assert store.outbox.count_documents({}) == 0
    assert store.load(pid).state == {"n": 1}


def test_a_remembered_state_is_never_stale_nor_shared(env):
    _, db, _ = env
    mine, theirs = AggregateStore(db, "cache"), AggregateStore(db, "cache")
    first = mine.commit(Loaded("C", 0, None), {"n": 1, "items": ["a"]})
    loaded = mine.load("C")
    assert (loaded.seq, loaded.state) == (first.seq, {"n": 1, "items": ["a"]})
    loaded.state["items"].append("mutated by a caller")  # type: ignore[index]
    assert mine.load("C").state == {"n": 1, "items": ["a"]}
    # another instance commits: the next load sees its version, not the remembered one
    theirs.commit(theirs.load("C"), {"n": 2, "items": ["a", "b"]})
    assert (mine.load("C").seq, mine.load("C").state) == (2, {"n": 2, "items": ["a", "b"]})


def test_events_stay_in_order_when_another_instance_left_the_previous_marker(env):
    settings, db, publisher = env
    mine = AggregateStore(db, "order2", publisher=publisher)
    theirs = AggregateStore(db, "order2")  # commits but cannot publish: its marker stays
    pid = "JZ20240717000002"
    mine.commit(Loaded(pid, 0, None), {"v": 1}, [_event(pid, 1)])
    theirs.commit(theirs.load(pid), {"v": 2}, [_event(pid, 2)])
    # this store published commit 1 itself, but commit 2 is another's: its marker must be found
    mine.commit(mine.load(pid), {"v": 3}, [_event(pid, 3)])
    messages = read_topic(settings.topic(INTAKE), lambda ms: len([m for m in ms if m["key"] == pid]) >= 3)
    assert [m["value"]["data"]["n"] for m in messages if m["key"] == pid] == [1, 2, 3]
    assert mine.outbox.count_documents({}) == 0


def test_events_stay_in_order_when_a_commit_without_events_lies_on_another_instances_pending_one(env):
    settings, db, publisher = env
    mine = AggregateStore(db, "order3", publisher=publisher)
    theirs = AggregateStore(db, "order3")  # commits but cannot publish: its marker stays
    pid = "JZ20240717000003"
    mine.commit(Loaded(pid, 0, None), {"v": 1}, [_event(pid, 1)])
    theirs.commit(theirs.load(pid), {"v": 2}, [_event(pid, 2)])
    theirs.commit(theirs.load(pid), {"v": 3})  # nothing to publish, so no marker
    # commit 2 is still unpublished behind commit 3: it must go out before commit 4
    mine.commit(mine.load(pid), {"v": 4}, [_event(pid, 4)])
    messages = read_topic(settings.topic(INTAKE), lambda ms: len([m for m in ms if m["key"] == pid]) >= 3)
    assert [m["value"]["data"]["n"] for m in messages if m["key"] == pid] == [1, 2, 4]
    assert mine.outbox.count_documents({}) == 0


def test_a_writer_builds_on_memory_and_a_stale_memory_costs_one_conflict(env):
    settings, _, _ = env
    finds: list[str] = []

    class CountFinds(monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "find":
                finds.append(event.command["filter"]["_id"])

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = MongoClient(settings.mongo_uri, tz_aware=True, event_listeners=[CountFinds()])
    try:
        db = client[settings.database]
        mine, theirs = AggregateStore(db, "memory"), AggregateStore(db, "memory")
        mine.commit(Loaded("D", 0, None), {"n": 1})
        finds.clear()
        assert mine.load_to_write("D") == Loaded("D", 1, {"n": 1})
        assert finds == []  # no round trip: the commit will check
        theirs.commit(theirs.load("D"), {"n": 2})
        stale = mine.load_to_write("D")
        assert stale.seq == 1
        with pytest.raises(Conflict):
            mine.commit(stale, {"n": 99})
        # the conflict made the store forget: the retry reads the newer version
        again = mine.load_to_write("D")
        assert (again.seq, again.state) == (2, {"n": 2})
        mine.commit(again, {"n": 3})
        assert theirs.load("D").state == {"n": 3}
        # nothing remembered yet: it reads like load()
        assert AggregateStore(db, "memory").load_to_write("D") == Loaded("D", 3, {"n": 3})
    finally:
        client.close()


def test_commit_many_commits_each_item_or_reports_its_conflict(env):
    settings, db, publisher = env
    store = AggregateStore(db, "many", publisher=publisher)
    other = AggregateStore(db, "many")
    taken, busy, fresh, quiet = "JZ20240717000010", "JZ20240717000011", "JZ20240717000012", "JZ20240717000013"
    other.commit(Loaded(taken, 0, None), {"by": "other"})  # version 1 of `taken` exists already
    marker = {"_id": commit_id(busy, 1), "store": "many", "aggregate_id": busy, "seq": 1, "at": utc_now()}
    store.outbox.insert_one(marker)
    results = store.commit_many(
        [
            (Loaded(taken, 0, None), {"by": "me"}, [_event(taken, 1)]),
            (Loaded(busy, 0, None), {"by": "me"}, [_event(busy, 1)]),  # another writer's marker is there
            (Loaded(fresh, 0, None), {"by": "me"}, [_event(fresh, 1)]),
            (Loaded(quiet, 0, None), {"by": "me"}, []),
        ]
    )
    assert [type(r).__name__ for r in results] == ["Conflict", "Conflict", "Commit", "Commit"]
    assert store.load(taken).state == {"by": "other"}
    assert store.load(busy).state is None
    assert (store.load(fresh).seq, store.load(quiet).state) == (1, {"by": "me"})
    # the loser's marker is gone, the other writer's stays, the winner's is deleted once published
    assert {m["_id"] for m in store.outbox.find({})} == {commit_id(busy, 1)}
    messages = read_topic(settings.topic(INTAKE), lambda ms: any(m["key"] == fresh for m in ms))
    assert [m["key"] for m in messages if m["key"] in (taken, busy, fresh, quiet)] == [fresh]
    with pytest.raises(ValueError):
        store.commit_many([(Loaded(quiet, 1, None), {}, []), (Loaded(quiet, 1, None), {}, [])])
