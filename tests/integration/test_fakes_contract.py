"""The contract the fakes (petition_common.fakes) keep: every check runs against the in-memory database
and against the real FerretDB (and the recording publisher against the real broker), so a fast
use-case test on the fakes means what it would mean on the real parts.

The checks are exactly the database behaviour the project relies on (petition_common.store, mongo,
aggregates, audit_log, and the services' projections); a fake that passes them but differs elsewhere
cannot mislead a test, because nothing else is used.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import DESCENDING, DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.aggregates import Projection, commit_batch, retry_on_conflict
from petition_common.envelope import Event
from petition_common.fakes import ManualClock, MemoryDatabase, RecordingPublisher
from petition_common.kafka_io import EventPublisher, ensure_topics
from petition_common.mongo import CommandCounter, connect
from petition_common.store import AggregateStore, Conflict, OutboxRelay
from petition_common.topics import INTAKE
from tests.conftest import make_settings
from tests.support import read_topic


@pytest.fixture(params=["memory", "ferretdb"])
def db(request):
    if request.param == "memory":
        yield MemoryDatabase()
        return
    request.getfixturevalue("stack")
    settings = make_settings("fakescontract", request.getfixturevalue("unique_prefix"))
    client = MongoClient(settings.mongo_uri, tz_aware=True)
    yield client[settings.database]
    client.drop_database(settings.database)
    client.close()


# ---- documents


def test_a_document_reads_back_as_pymongo_returns_it(db):
    moment = datetime(2026, 12, 5, 8, 30, 1, 123456, tzinfo=UTC)
    doc = {"_id": "p1", "at": moment, "tags": ("a", "b"), "n": 3, "nested": {"x": [1, 2]}, "blob": b"\x00\x01"}
    db.things.insert_one(doc)
    found = db.things.find_one({"_id": "p1"})
    assert found == {
        "_id": "p1",
        "at": moment.replace(microsecond=123000),  # BSON keeps milliseconds
        "tags": ["a", "b"],
        "n": 3,
        "nested": {"x": [1, 2]},
        "blob": b"\x00\x01",
    }
    assert found["at"].tzinfo is not None
    found["nested"]["x"].append(3)  # a copy: changing it changes nothing stored
    assert db.things.find_one({"_id": "p1"})["nested"] == {"x": [1, 2]}
    assert db.things.find_one({"_id": "absent"}) is None


def test_an_id_is_unique(db):
    db.things.insert_one({"_id": "p1", "v": 1})
    with pytest.raises(DuplicateKeyError) as caught:
        db.things.insert_one({"_id": "p1", "v": 2})
    assert caught.value.code == 11000
    assert db.things.find_one({"_id": "p1"})["v"] == 1


def test_an_unordered_insert_keeps_the_new_and_names_the_duplicates(db):
    db.things.insert_one({"_id": "b"})
    with pytest.raises(BulkWriteError) as caught:
        db.things.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}, {"_id": "a"}], ordered=False)
    errors = caught.value.details["writeErrors"]
    assert sorted(e["index"] for e in errors) == [1, 3]
    assert {e["code"] for e in errors} == {11000}
    assert sorted(d["_id"] for d in db.things.find({})) == ["a", "b", "c"]


def test_filters_projections_sorting_and_limits(db):
    db.things.insert_many(
        [
            {"_id": "r1", "kid": "k1", "n": 1, "area": {"town": "T01"}},
            {"_id": "r2", "kid": "k2", "n": 5, "area": {"town": "T02"}},
            {"_id": "r3", "kid": "k1", "n": 9},
        ]
    )

    def ids(query):
        return sorted(d["_id"] for d in db.things.find(query))

    assert ids({}) == ["r1", "r2", "r3"]
    assert ids({"kid": "k1"}) == ["r1", "r3"]
    assert ids({"kid": {"$ne": "k1"}}) == ["r2"]
    assert ids({"_id": {"$in": ["r1", "r3", "zz"]}}) == ["r1", "r3"]
    assert ids({"n": {"$lte": 5}}) == ["r1", "r2"]
    assert ids({"n": {"$gt": 1, "$lt": 9}}) == ["r2"]
    assert ids({"area.town": "T02"}) == ["r2"]
    assert ids({"area": {"$exists": False}}) == ["r3"]
    assert ids({"_id": "r2", "kid": "k1"}) == []
    assert db.things.find_one({"_id": "r2"}, {"kid": 1}) == {"_id": "r2", "kid": "k2"}
    assert db.things.find_one({"_id": "r2"}, {"_id": 0, "n": 1}) == {"n": 5}
    assert db.things.find_one({"_id": "r2"}, {"_id": 0}) == {"kid": "k2", "n": 5, "area": {"town": "T02"}}
    assert [d["_id"] for d in db.things.find({}, {"_id": 1}).sort("_id", DESCENDING).limit(2)] == ["r3", "r2"]
    assert db.things.count_documents({}) == 3
    assert db.things.estimated_document_count() == 3


def test_replace_update_and_delete_by_id(db):
    assert db.things.replace_one({"_id": "p"}, {"v": 1}, upsert=True).upserted_id == "p"
    assert db.things.find_one({"_id": "p"}) == {"_id": "p", "v": 1}
    result = db.things.replace_one({"_id": "p"}, {"v": 2}, upsert=True)
    assert (result.matched_count, result.upserted_id) == (1, None)
    # a conditional replace (the key rotation's compare-and-set) matches only the version it read
    assert db.things.replace_one({"_id": "p", "v": 1}, {"v": 3}).matched_count == 0
    assert db.things.replace_one({"_id": "p", "v": 2}, {"v": 3}).matched_count == 1
    assert db.things.find_one({"_id": "p"}) == {"_id": "p", "v": 3}
    assert db.things.replace_one({"_id": "q"}, {"v": 1}).matched_count == 0  # no upsert: nothing written
    assert db.things.find_one({"_id": "q"}) is None
    db.things.update_one({"_id": "p"}, {"$set": {"w": "x"}, "$inc": {"v": 2}})
    db.things.update_one({"_id": "u"}, {"$set": {"w": "y"}}, upsert=True)
    assert db.things.find_one({"_id": "p"}) == {"_id": "p", "v": 5, "w": "x"}
    assert db.things.find_one({"_id": "u"}) == {"_id": "u", "w": "y"}
    assert db.things.delete_one({"_id": "p"}).deleted_count == 1
    assert db.things.delete_one({"_id": "p"}).deleted_count == 0
    db.things.insert_many([{"_id": f"m{i}", "until": i} for i in range(5)])
    assert db.things.delete_many({"_id": {"$in": ["m0", "m1", "nope"]}}).deleted_count == 2
    assert db.things.delete_many({"until": {"$lte": 3}}).deleted_count == 2
    assert sorted(d["_id"] for d in db.things.find({})) == ["m4", "u"]
    assert db.things.delete_many({}).deleted_count == 2


def test_bulk_writes(db):
    db.things.insert_one({"_id": "old"})
    result = db.things.bulk_write(
        [
            ReplaceOne({"_id": "a"}, {"v": 1}, upsert=True),
            ReplaceOne({"_id": "old"}, {"v": 2}, upsert=True),
            UpdateOne({"_id": "a"}, {"$inc": {"v": 10}}),
            InsertOne({"_id": "i"}),
            DeleteOne({"_id": "gone"}),
        ],
        ordered=False,
    )
    assert (result.upserted_count, result.inserted_count, result.deleted_count) == (1, 1, 0)
    assert db.things.find_one({"_id": "a"})["v"] == 11
    assert db.things.find_one({"_id": "old"}) == {"_id": "old", "v": 2}
    with pytest.raises(BulkWriteError):
        db.things.bulk_write([InsertOne({"_id": "i"})], ordered=False)


# ---- the aggregate store, its outbox and the shared mechanics on top of it


def _event(pid: str, n: int) -> Event:
    return Event(type="petition.withdrawn", source="test", subject=pid, data={"petition_id": pid, "n": n})


def test_commits_are_versions_only_one_writer_gets(db):
    publisher = RecordingPublisher()
    store = AggregateStore(db, "orders", publisher)
    first = store.load("P1")
    assert (first.seq, first.state) == (0, None)
    assert store.commit(first, {"v": 1}, [_event("P1", 1)]).seq == 1
    with pytest.raises(Conflict):
        store.commit(first, {"v": "lost"})  # the same version again
    other = AggregateStore(db, "orders")  # another instance, with its own memory
    assert other.load("P1").state == {"v": 1}
    store.commit(store.load("P1"), {"v": 2}, [_event("P1", 2)])
    assert other.latest_seq("P1") == 2 and other.load("P1").state == {"v": 2}
    assert [e.data["n"] for e in publisher.of("P1")] == [1, 2]
    assert db.outbox.count_documents({}) == 0  # published: no marker left
    assert [c["seq"] for c in store.history("P1")] == [1, 2]


def test_a_batch_commits_the_winners_and_hands_back_the_losers(db):
    store = AggregateStore(db, "orders")
    stale = store.load("P2")
    AggregateStore(db, "orders").commit(stale, {"v": "theirs"})  # another instance was first
    batch = commit_batch(store, [(store.load("P1"), {"v": 1}, []), (stale, {"v": "ours"}, [])])
    assert [item[0].aggregate_id for item, _ in batch.committed] == ["P1"]
    assert batch.lost_ids == ["P2"]
    assert store.load("P2").state == {"v": "theirs"}


def test_retry_on_conflict_runs_the_use_case_again_on_fresh_state(db):
    store, rival = AggregateStore(db, "orders"), AggregateStore(db, "orders")
    store.commit(store.load("P1"), {"n": 0})
    attempts = []

    def increment():
        loaded = store.load("P1")
        if not attempts:  # the first attempt loses a race to the rival
            rival.commit(rival.load("P1"), {"n": 10})
        attempts.append(loaded.seq)
        return store.commit(loaded, {"n": loaded.state["n"] + 1})

    assert retry_on_conflict(increment, "P1").state == {"n": 11}
    assert attempts == [1, 2]
    with pytest.raises(Conflict):
        retry_on_conflict(lambda: (_ for _ in ()).throw(Conflict("P1")), "P1", attempts=3)


def test_a_projection_ends_with_the_newest_version(db):
    store = AggregateStore(db, "orders")
    projection = Projection(db.open_orders, store)
    c1 = store.commit(store.load("P1"), {"v": 1})
    c2 = store.commit(store.load("P1"), {"v": 2})
    assert projection.put("P1", c2.seq, {"v": 2}) is False
    assert projection.put("P1", c1.seq, {"v": 1}) is True  # a slower writer of an older version learns it
    store.commit(store.load("P2"), {"v": 1})
    assert projection.put_many([("P1", 2, {"v": 2}), ("P2", 1, None), ("P3", 0, {"v": 0})]) == []
    assert sorted(d["_id"] for d in db.open_orders.find({})) == ["P1", "P3"]


def test_events_of_a_commit_whose_publication_failed_wait_in_the_outbox(db):
    publisher = RecordingPublisher()
    publisher.fail = ConnectionError("broker down")
    store = AggregateStore(db, "orders", publisher)
    store.commit(store.load("P1"), {"v": 1}, [_event("P1", 1)])  # the commit stands
    assert store.load("P1").state == {"v": 1}
    assert db.outbox.count_documents({}) == 1 and publisher.events == []
    publisher.fail = None
    later = ManualClock(datetime.now(UTC) + timedelta(minutes=1))  # past the writers' grace
    OutboxRelay({"orders": store}, clock=later).run_once()
    assert [e.data["n"] for e in publisher.events] == [1]
    assert db.outbox.count_documents({}) == 0


def test_racing_inserts_of_one_id_have_one_winner(db):
    winners, barrier = [], threading.Barrier(4)

    def insert(n):
        barrier.wait()
        try:
            db.things.insert_one({"_id": "slot", "by": n})
            winners.append(n)
        except DuplicateKeyError:
            pass

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and db.things.find_one({"_id": "slot"})["by"] == winners[0]


# ---- the publisher and the clock


@pytest.fixture(params=["recording", "kafka"])
def published(request):
    """(publish, read back the published events of a key in order)."""
    if request.param == "recording":
        fake = RecordingPublisher()
        yield fake.publish, lambda key, n: [e.id for e in fake.events if e.message_key == key]
        return
    settings = make_settings("fakescontract", request.getfixturevalue("unique_prefix"))
    ensure_topics(settings, [INTAKE])
    producer = EventPublisher(settings)
    topic = settings.topic(INTAKE)

    def read(key, n):
        messages = read_topic(topic, lambda ms: sum(m["key"] == key for m in ms) >= n)
        return [m["value"]["id"] for m in messages if m["key"] == key]

    yield producer.publish, read
    producer.close()


def test_published_events_arrive_in_order_per_key(published):
    publish, read_back = published
    key = f"P{uuid.uuid4().hex[:6]}"
    events = [Event(type="petition.withdrawn", source="test", subject=key, data={"n": n}) for n in range(5)]
    publish(events[:2])
    publish(events[2:])
    assert read_back(key, 5) == [e.id for e in events]


# ---- the commands they count


def _script(db) -> None:
    """A bit of everything the project sends, ending in an aggregate's commit and loads."""
    things = db["things"]
    things.insert_one({"_id": "a", "v": 1})
    things.insert_many([{"_id": "b"}, {"_id": "c"}], ordered=False)
    with pytest.raises(BulkWriteError):
        things.insert_many([{"_id": "c"}, {"_id": "d"}], ordered=False)
    things.find_one({"_id": "a"})
    list(things.find({"v": 1}))
    things.replace_one({"_id": "e"}, {"v": 2}, upsert=True)
    things.update_one({"_id": "a"}, {"$set": {"v": 3}})
    things.bulk_write([ReplaceOne({"_id": "a"}, {"v": 4}), DeleteOne({"_id": "b"}), ReplaceOne({"_id": "c"}, {})])
    things.bulk_write(
        [ReplaceOne({"_id": "a"}, {"v": 5}), DeleteOne({"_id": "d"}), InsertOne({"_id": "f"})], ordered=False
    )
    things.delete_one({"_id": "e"})
    things.delete_many({"_id": {"$in": ["a", "f"]}})
    store = AggregateStore(db, "petitions")
    store.commit(store.load("p1"), {"n": 1})
    store.commit(store.load("p1"), {"n": 2})
    AggregateStore(db, "petitions").load("p1")  # a new process: no hint, no remembered state


def test_the_fakes_count_the_commands_a_real_client_sends(unique_prefix, stack):
    """MemoryDatabase.commands is what petition_common.mongo.CommandCounter counts on the real
    FerretDB for the same calls, so a budget of commands asserted on the fakes holds for real."""
    fake = MemoryDatabase()
    _script(fake)
    settings = make_settings("fakescommands", unique_prefix)
    real: Counter[tuple[str, str]] = Counter()
    client = connect(settings, [CommandCounter(lambda command, collection: real.update([(command, collection)]))])
    try:
        _script(client[settings.database])
        client.drop_database(settings.database)
    finally:
        client.close()
    ours = {key: n for key, n in real.items() if key[1] in {"things", "petitions_commits", "outbox"}}
    assert dict(fake.commands) == ours
    assert ours[("find", "things")] == 2 and ours[("update", "things")] == 5  # the script did reach it


def test_the_manual_clock_moves_only_when_told():
    start = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock() == start and clock() == start
    assert clock.advance(timedelta(hours=6)) == start + timedelta(hours=6) == clock()
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 12, 5))
