"""The local FerretDB uses its _id index for point lookups (our build fixes v1.24's mismatch between
the index expression and the filter expression; see deploy/local/stack.py and docs/ferretdb.md).
Without it every load of an aggregate would scan its whole collection."""

from __future__ import annotations

from pymongo import MongoClient

from tests.support import MONGO


def test_lookup_by_id_searches_the_index(unique_prefix):
    with MongoClient(MONGO) as client:
        db = client[f"{unique_prefix.replace('-', '_')}_indexcheck"]
        db.things.insert_many([{"_id": f"k{i}"} for i in range(100)])
        plan = db.command("explain", {"find": "things", "filter": {"_id": "k77"}})
        if "queryPlanner" in plan and "Plan" in plan["queryPlanner"]:  # FerretDB: SQLite's query plan
            detail = " ".join(plan["queryPlanner"]["Plan"])
            assert "USING INDEX" in detail and "SCAN" not in detail, detail
        else:  # MongoDB
            assert "IDHACK" in str(plan) or "IXSCAN" in str(plan), plan
        assert db.things.find_one({"_id": "k77"}) == {"_id": "k77"}
