"""The group commit (petition_common.group_insert) on the real FerretDB: concurrent requests' inserts
travel together, a duplicate `_id` fails only its own document, and nothing is lost or stored twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo import MongoClient

from petition_common.group_insert import GroupInsert
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

REQUESTS = 240


def test_concurrent_requests_share_commands_and_each_learns_its_own_duplicates(unique_prefix):
    settings = make_settings("grouptest", unique_prefix)
    client = MongoClient(settings.mongo_uri, socketTimeoutMS=15_000)
    try:
        collection = client[settings.database]["commits"]
        collection.insert_one({"_id": "taken"})
        group = GroupInsert(collection)

        def request(n: int) -> list[int]:
            # its own two documents, one every request tries, one that exists already
            return group.insert_many([{"_id": f"{n}:a"}, {"_id": "contended"}, {"_id": f"{n}:b"}, {"_id": "taken"}])

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(request, range(REQUESTS)))
        assert sum(r == [3] for r in results) == 1  # exactly one request stored "contended"
        assert all(r in ([3], [1, 3]) for r in results)
        assert collection.count_documents({}) == 2 * REQUESTS + 2
        assert group.documents == 4 * REQUESTS
        print(f"{group.commands} commands for {REQUESTS} requests")
        assert group.commands < REQUESTS  # requests waiting for one insert went together in the next
    finally:
        client.drop_database(settings.database)
        client.close()
