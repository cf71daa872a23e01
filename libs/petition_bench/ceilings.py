"""The raw speed of the parts, measured in the same run: the limits the services are compared with.

- Kafka produce: kafka-python sends N messages of the size of our events with our producer's
  settings (acks=all, idempotent, linger 1 ms) and waits for every acknowledgement.
- Kafka consume: one KafkaConsumer reads them back (bytes only, no parsing), as fast as it can.
- Database: pymongo, one thread, single-document `insert_one`, `find_one` by `_id` and
  `update_one` by `_id` against the local FerretDB, documents of the size of our commits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from pymongo import MongoClient

from petition_devtools.kafka_access import admin_client_config

Progress = Callable[[int], None]


def kafka_rates(bootstrap: str, message: bytes, n: int, partitions: int, progress: Progress) -> dict[str, Any]:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**admin_client_config(bootstrap), client_id="bench-raw")
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        producer = KafkaProducer(**admin_client_config(bootstrap), acks="all", enable_idempotence=True, linger_ms=1)
        producer.send(topic, key=b"warm-up", value=message).get(timeout=30)
        t0 = time.perf_counter()
        futures = []
        for i in range(n):
            futures.append(producer.send(topic, key=f"JZ{i:09d}".encode(), value=message))
            if i % 5000 == 4999:
                progress(5000)
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        produce_s = time.perf_counter() - t0
        producer.close()

        consumer = KafkaConsumer(
            topic,
            **admin_client_config(bootstrap),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=500,
        )
        seen = 0
        t0 = time.perf_counter()
        while seen < n + 1:
            for records in consumer.poll(timeout_ms=1000).values():
                seen += len(records)
                progress(len(records) // 2)
        consume_s = time.perf_counter() - t0
        consumer.close()
    finally:
        admin.delete_topics([topic])
        admin.close()
    return {
        "messages": n,
        "message_bytes": len(message),
        "partitions": partitions,
        "produce_per_s": n / produce_s,
        "consume_per_s": (n + 1) / consume_s,
    }


def mongo_rates(uri: str, document: dict[str, Any], n: int, progress: Progress) -> dict[str, Any]:
    client: MongoClient = MongoClient(uri)
    db_name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    coll = client[db_name]["docs"]
    try:
        coll.insert_one({"_id": "warm-up", **document})
        rates = {}
        t0 = time.perf_counter()
        for i in range(n):
            coll.insert_one({"_id": f"doc:{i:09d}", **document})
            if i % 500 == 499:
                progress(500)
        rates["insert_per_s"] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            coll.find_one({"_id": f"doc:{i:09d}"})
            if i % 500 == 499:
                progress(500)
        rates["find_by_id_per_s"] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            coll.update_one({"_id": f"doc:{i:09d}"}, {"$set": {"seq": i}})
            if i % 500 == 499:
                progress(500)
        rates["update_by_id_per_s"] = n / (time.perf_counter() - t0)
    finally:
        client.drop_database(db_name)
        client.close()
    return {"documents": n, **rates}
