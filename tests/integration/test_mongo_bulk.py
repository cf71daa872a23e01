"""bulk_update on the real FerretDB: a batch of projections larger than FerretDB's connection pool
(100 per database) is written in chunks, because one update command of 100 statements holds 100
connections until it ends and then waits forever; and a failed statement is a BulkWriteError, as on
MongoDB, although FerretDB answers it in a shape pymongo cannot read (docs/ferretdb.md)."""

from __future__ import annotations

from collections import Counter

import pytest
from pymongo import DeleteOne, MongoClient, ReplaceOne
from pymongo.errors import BulkWriteError

from petition_common.mongo import CommandCounter, bulk_update, connect
from tests.conftest import make_settings


def test_a_bulk_update_larger_than_the_connection_pool_completes(unique_prefix):
    settings = make_settings("bulktest", unique_prefix)
    # a hang shows as a timeout of this client, not as a stuck test
    client = MongoClient(settings.mongo_uri, socketTimeoutMS=15_000)
    try:
        docs = client[settings.database]["projection"]
        upserts = [ReplaceOne({"_id": f"JZ{i:014d}"}, {"seq": 1}, upsert=True) for i in range(150)]
        assert len(upserts) > 100  # more statements than the pool has connections
        bulk_update(docs, upserts)
        bulk_update(docs, [ReplaceOne({"_id": f"JZ{i:014d}"}, {"seq": 2}, upsert=True) for i in range(150)])
        bulk_update(docs, [DeleteOne({"_id": f"JZ{i:014d}"}) for i in range(0, 150, 2)])
        assert sorted(d["seq"] for d in docs.find({})) == [2] * 75
    finally:
        client.close()


def test_a_failed_statement_is_a_bulk_write_error_and_redoing_the_rest_one_by_one_completes(unique_prefix):
    settings = make_settings("bulktest", unique_prefix)
    client = MongoClient(settings.mongo_uri, socketTimeoutMS=15_000)
    try:
        docs = client[settings.database]["projection"]
        docs.insert_one({"_id": "taken", "seq": 5})
        # the filter misses the existing document, so the upsert inserts its _id again: the same
        # duplicate-key failure as two upserts racing to insert one new document
        ops = [ReplaceOne({"_id": "taken", "seq": 1}, {"seq": 2}, upsert=True)]
        ops += [ReplaceOne({"_id": f"new{i}"}, {"seq": 1}, upsert=True) for i in range(3)]
        with pytest.raises(BulkWriteError):
            bulk_update(docs, ops)
        for op in ops[1:]:  # what the callers do: each statement again, on its own
            bulk_update(docs, [op])
        stored = sorted((d["_id"], d["seq"]) for d in docs.find({}))
        assert stored == [("new0", 1), ("new1", 1), ("new2", 1), ("taken", 5)]
    finally:
        client.close()


def test_the_command_counter_names_each_command_and_its_collection(unique_prefix):
    """What petitions_db_commands_total counts, on the real FerretDB: a getMore under its collection's
    name (not its cursor id), and commands on no collection under ""."""
    settings = make_settings("bulktest", unique_prefix)
    seen: Counter[tuple[str, str]] = Counter()
    client = connect(settings, [CommandCounter(lambda command, collection: seen.update([(command, collection)]))])
    try:
        docs = client[settings.database]["petitions_commits"]
        docs.insert_many([{"_id": f"JZ{i:014d}"} for i in range(5)])
        docs.find_one({"_id": "JZ00000000000001"})
        assert len(list(docs.find({}, batch_size=2))) == 5  # a first batch of 2, then getMores
        docs.delete_one({"_id": "JZ00000000000001"})
        client.admin.command("ping")
    finally:
        client.close()
    assert seen[("insert", "petitions_commits")] == 1
    assert seen[("find", "petitions_commits")] == 2
    assert seen[("getMore", "petitions_commits")] >= 1
    assert seen[("delete", "petitions_commits")] == 1
    assert seen[("ping", "")] == 1
    assert not [key for key in seen if key[0] == "getMore" and key[1] != "petitions_commits"]
