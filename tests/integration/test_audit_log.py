"""The audit trail's appender on the real FerretDB: appenders of several "processes" (each its own
client, lock and tail) racing on the same chain leave one unbroken chain holding every record once;
a new process finds the tail by point reads; the auditor's filters."""

from __future__ import annotations

import threading

import pytest
from pymongo import MongoClient

from petition_common.audit import chained, seq_id, verify
from petition_common.audit_log import AuditLog
from tests.conftest import make_settings


@pytest.fixture
def db_name(unique_prefix):
    return make_settings("audittest", unique_prefix).database


def test_racing_appenders_keep_one_unbroken_chain(db_name):
    processes, threads_each, per_thread = 3, 2, 15
    clients = [MongoClient(make_settings("x", "x").mongo_uri, tz_aware=True) for _ in range(processes)]
    try:
        logs = [AuditLog(c[db_name], "intake") for c in clients]
        start = threading.Barrier(processes * threads_each)
        errors: list[BaseException] = []

        def append(log: AuditLog, worker: int) -> None:
            try:
                start.wait()
                for i in range(per_thread):
                    log.append({"action": "contact.read", "staff_id": f"W{worker}", "n": i, "outcome": "ok"})
            except BaseException as exc:  # reported below, with the chain's state
                errors.append(exc)

        threads = [
            threading.Thread(target=append, args=(logs[w % processes], w)) for w in range(processes * threads_each)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        stored = list(logs[0].scan())
        verdict = verify(stored)
        assert verdict.ok, verdict.first_break
        total = processes * threads_each * per_thread
        assert verdict.records == total
        assert sorted((d["staff_id"], d["n"]) for d in stored) == sorted(
            (f"W{w}", i) for w in range(processes * threads_each) for i in range(per_thread)
        )
        # a process started now continues the chain where it ends
        later = AuditLog(clients[0][db_name], "intake")
        assert later.find_tail() == verdict.head
        later.append({"action": "workorder.contact", "staff_id": "S1", "petition_id": "JZ1", "outcome": "ok"})
        assert verify(later.scan()).records == total + 1

        found = later.query({"staff_id": "W1"}, None, None, None, 5)
        assert [r["n"] for r in found] == [14, 13, 12, 11, 10]  # newest first
        older = later.query({"staff_id": "W1"}, None, None, found[-1]["seq"], 100)
        assert [r["n"] for r in older] == list(range(9, -1, -1))
        assert later.query({"petition_id": "JZ1"}, None, None, None, 10)[0]["action"] == "workorder.contact"
    finally:
        for c in clients:
            c.close()


def test_a_group_stops_at_a_number_taken_and_is_chained_anew_on_the_real_database(db_name):
    """The group append's ordered insert on FerretDB: the records before a taken number are stored,
    none after it, and the index pymongo reports is that of the taken one."""
    client = MongoClient(make_settings("x", "x").mongo_uri, tz_aware=True)
    try:
        mine, other = AuditLog(client[db_name], "routing"), AuditLog(client[db_name], "routing")
        mine.append({"action": "a", "n": 0, "outcome": "ok"})
        mine.append({"action": "a", "n": 1, "outcome": "ok"})  # mine's tail: 2
        other.find_tail()
        other.append({"action": "a", "n": 2, "outcome": "ok"})  # 3, behind mine's back
        tail_seq, tail_hash = mine._tail
        records = [
            chained({"action": "probe", "n": n, "service": "routing", "at": "x"}, tail_seq + 1 + k, tail_hash)
            for k, n in enumerate((90, 91))
        ]
        assert mine._insert_in_order(records) == 0  # 3 is taken: nothing of the group is stored
        assert mine.records.count_documents({"action": "probe"}) == 0
        stored = mine._append_many([{"action": "a", "n": n, "outcome": "ok"} for n in (3, 4, 5)])
        assert [r["seq"] for r in stored] == [4, 5, 6]
        verdict = verify(mine.scan())
        assert verdict.ok and verdict.records == 6
        # taken in the middle: the one before it is stored, nothing from it on
        bare = AuditLog(client[db_name + "_bare"], "routing")
        bare.records.insert_one({"_id": seq_id(2)})
        group = [chained({"action": "probe", "n": n}, n, "x") for n in (1, 2, 3)]
        assert bare._insert_in_order(group) == 1
        assert sorted(d["_id"] for d in bare.records.find({"action": "probe"})) == [seq_id(1)]
    finally:
        client.close()
