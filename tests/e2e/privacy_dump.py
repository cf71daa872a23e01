"""What someone with a copy of the platform's storage would see: every database of a test's namespace read
raw through pymongo, FerretDB's SQLite files on disk (with their WAL), and every message of its topics."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from kafka import KafkaConsumer, TopicPartition
from pymongo import MongoClient

from petition_common.config import REPO_ROOT
from tests.support import MONGO, kafka_client

RAW = CodecOptions(document_class=RawBSONDocument)


def ferretdb_dir() -> Path:
    """Where the local stack's FerretDB keeps its SQLite files (deploy/local/stack.py's layout)."""
    return Path(os.environ.get("PETITIONS_LOCAL_DIR", REPO_ROOT / ".local")).resolve() / "data" / "ferretdb"


def database_dump(db_prefix: str) -> dict[str, bytes]:
    """Database name -> the BSON of every document of every collection, concatenated."""
    out: dict[str, bytes] = {}
    with MongoClient(MONGO) as client:
        for name in client.list_database_names():
            if not name.startswith(db_prefix):
                continue
            db = client[name]
            out[name] = b"".join(
                doc.raw for coll in db.list_collection_names() for doc in db.get_collection(coll, RAW).find({})
            )
    return out


def sqlite_files(db_prefix: str) -> dict[str, bytes]:
    """File name -> bytes of every SQLite file of the namespace's databases: database, -wal and -shm."""
    files = sorted(ferretdb_dir().glob(f"{db_prefix}*.sqlite*"))
    return {f.name: f.read_bytes() for f in files}


def topic_dump(topic_prefix: str) -> dict[str, bytes]:
    """Topic -> the key, headers and value of every message, decompressed, from the beginning."""
    consumer = KafkaConsumer(**kafka_client(), enable_auto_commit=False, group_id=None)
    try:
        topics = sorted(t for t in consumer.topics() if t.startswith(topic_prefix))
        out: dict[str, bytes] = {}
        for topic in topics:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            ends = consumer.end_offsets(parts)
            chunks: list[bytes] = []
            while any(consumer.position(tp) < ends[tp] for tp in parts):
                for batch in consumer.poll(timeout_ms=500).values():
                    for rec in batch:
                        chunks += [rec.key or b"", rec.value or b""]
                        chunks += [v for _, v in rec.headers or []]
            out[topic] = b"\n".join(chunks)
        return out
    finally:
        consumer.close()


_DIGITS = re.compile(r"[0-9Xx]{11,}")
# what a name or an address is written with: CJK characters and digits (the search looks only at such runs)
_WORDS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff0-9]{2,}")


def found_in(blobs: dict[str, bytes], values: Iterable[str]) -> dict[str, list[str]]:
    """Which of `values` occur in clear (UTF-8) in which blob. Phones and ID numbers are looked up among
    every window of every run of digits; names and addresses among the runs of CJK characters and digits
    (deduplicated, so a text stored in a hundred commits is searched once)."""
    values = set(values)
    digits = {v for v in values if v[:-1].isdigit()}
    texts = values - digits
    widths = {len(v) for v in digits}
    hits: dict[str, list[str]] = {}
    for name, blob in blobs.items():
        text = blob.decode("utf-8", errors="replace")
        windows: set[str] = set()
        for run in set(_DIGITS.findall(text)):
            for width in widths:
                windows.update(run[i : i + width].upper() for i in range(len(run) - width + 1))
        words = "\x00".join(set(_WORDS.findall(text)))
        for value in digits:
            if value.upper() in windows:
                hits.setdefault(value, []).append(name)
        for value in texts:
            if value in words:
                hits.setdefault(value, []).append(name)
    return hits
