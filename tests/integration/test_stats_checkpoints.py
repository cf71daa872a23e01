"""Stats' checkpoint chains on the real FerretDB: fencing, garbage collection, floors, generations."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pymongo import MongoClient

from petition_common.mongo import CommandCounter
from petition_common.store import Conflict
from services.stats.write.checkpoints import (
    CheckpointStore,
    collect,
    collection_names,
    drop_earlier_generations,
    namespace,
    sweep,
)
from tests.conftest import make_settings


@pytest.fixture
def db(unique_prefix):
    settings = make_settings("statsckpt", unique_prefix)
    client = MongoClient(settings.mongo_uri, tz_aware=True)
    yield client[settings.database]
    client.close()


def test_two_writers_on_one_version_exactly_one_wins(db):
    a = CheckpointStore(db, namespace(0, "p0"))
    b = CheckpointStore(db, namespace(0, "p0"))
    base = a.commit(None, {"t:0": 1}, {"f:1": b"one"})
    assert (b.latest().seq, b.latest().manifest, b.latest().offsets) == (1, base.manifest, {"t:0": 1})
    a.commit(base, {"t:0": 2}, {"f:1": b"two"})
    with pytest.raises(Conflict):
        b.commit(base, {"t:0": 2}, {"f:1": b"other"})  # b read version 1 too: it must reload
    head = b.latest()
    assert head.seq == 2 and head.offsets == {"t:0": 2}
    assert b.read_block(head.manifest["f:1"]) == b"two"


def test_concurrent_writers_never_fork_the_chain(db):
    stores = [CheckpointStore(db, namespace(0, "p1")) for _ in range(4)]
    stores[0].commit(None, {"n": 0}, {})
    wins: list[int] = []
    lock = threading.Lock()

    def writer(store: CheckpointStore) -> None:
        for _ in range(10):
            head = store.latest()
            try:
                store.commit(head, {"n": head.offsets["n"] + 1}, {"x": b"%d" % head.seq})
                with lock:
                    wins.append(head.seq + 1)
            except Conflict:
                pass

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    head = stores[0].latest()
    assert sorted(wins) == list(range(2, head.seq + 1))  # each version won by exactly one writer
    assert head.offsets["n"] == head.seq - 1


def test_replaced_blocks_are_deleted_unless_the_head_names_them(db):
    store = CheckpointStore(db, namespace(0, "p2"), garbage_grace=timedelta(0))
    first = store.commit(None, {}, {"a": b"a1", "b": b"b1"})
    store.commit(first, {}, {"a": b"a2"})
    assert collect([store]) == 1  # a1 went; b1 is still named by the head
    head = store.latest()
    assert store.read_block(first.manifest["a"]) is None
    assert store.read_block(head.manifest["b"]) == b"b1"


def test_a_paused_writer_cannot_delete_what_the_chain_still_uses(db):
    live = CheckpointStore(db, namespace(0, "p3"), garbage_grace=timedelta(0))
    zombie = CheckpointStore(db, namespace(0, "p3"), garbage_grace=timedelta(0))
    base = live.commit(None, {}, {"jan": b"january", "jul": b"july-1"})
    head = live.commit(base, {}, {"jul": b"july-2"})
    with pytest.raises(Conflict):
        zombie.commit(base, {}, {"jan": b"january-late"})  # its new block is garbage at once
    collect([zombie, live])
    assert live.read_block(head.manifest["jan"]) == b"january"


def test_old_commits_go_below_a_floor_and_the_head_is_still_found(db):
    store = CheckpointStore(db, namespace(0, "p4"), keep_commits=5)
    head = None
    for i in range(12):
        head = store.commit(head, {"i": i}, {})
        if i % 4 == 3:
            collect([store])
    fresh = CheckpointStore(db, namespace(0, "p4"))
    assert fresh.latest().offsets == {"i": 11}
    assert fresh.latest_seq() == 12
    commits_name, _ = collection_names(0)
    assert db[commits_name].count_documents({"ns": namespace(0, "p4"), "seq": {"$lt": 8}}) == 0


@pytest.fixture
def counted(unique_prefix):
    """The same database through a client that counts the finds it sends."""
    settings = make_settings("statsckpt", unique_prefix)
    finds: list[str] = []
    counter = CommandCounter(lambda command, collection: finds.append(collection) if command == "find" else None)
    client = MongoClient(settings.mongo_uri, tz_aware=True, event_listeners=[counter])
    yield client[settings.database], finds
    client.close()


def test_a_reader_asking_for_an_unchanged_head_reads_two_ids_and_still_sees_every_change(db, counted):
    reader_db, finds = counted
    writer = CheckpointStore(db, namespace(0, "p6"), keep_commits=3)
    reader = CheckpointStore(reader_db, namespace(0, "p6"))
    assert reader.latest_seq() == 0
    head = writer.commit(None, {"i": 0}, {})
    assert reader.latest_seq() == 1

    finds.clear()
    assert reader.latest_seq() == 1  # the refresh's usual case: nothing new
    assert len(finds) == 2

    head = writer.commit(head, {"i": 1}, {})
    finds.clear()
    assert reader.latest_seq() == 2  # the other usual case: one checkpoint more
    assert len(finds) == 3
    for i in range(2, 5):
        head = writer.commit(head, {"i": i}, {})
    assert reader.latest_seq() == 5
    collect([writer])  # a new floor at 5; the commits below it go
    head = writer.commit(head, {"i": 5}, {})
    assert reader.latest_seq() == 6 and reader.latest().offsets == {"i": 5}
    for i in range(6, 10):
        head = writer.commit(head, {"i": i}, {})
    collect([writer])  # the floor moves past the reader's hint, whose commit is deleted
    assert reader.latest_seq() == 10 and reader.latest().offsets == {"i": 9}
    assert reader.at(10).offsets == {"i": 9}
    assert reader.at(1) is None  # below the floor: deleted
    finds.clear()
    assert reader.latest_seq() == 10
    assert len(finds) == 2


def test_earlier_generations_are_dropped_and_orphans_swept(db):
    old = CheckpointStore(db, namespace(0, "p0"))
    old.commit(None, {}, {"a": b"old"})
    new = CheckpointStore(db, namespace(1, "p0"))
    head = new.commit(None, {}, {"a": b"new"})
    new.blocks.insert_one({"_id": "g1:p0:b:orphan", "ns": namespace(1, "p0"), "at": head.at - timedelta(hours=2)})
    assert set(drop_earlier_generations(db, 1)) == set(collection_names(0))
    assert sweep(db, 1, {namespace(1, "p0"): new.latest()}, min_age=timedelta(hours=1)) == 1
    assert new.read_block(head.manifest["a"]) == b"new"
