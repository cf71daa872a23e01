"""bulk_update on the real FerretDB: a batch of projections larger than FerretDB's connection pool
(100 per database) is written in chunks, because one update command of 100 statements holds 100
connections until it ends and then waits forever (docs/ferretdb.md)."""

from __future__ import annotations

from pymongo import DeleteOne, MongoClient, ReplaceOne

from petition_common.mongo import bulk_update
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
