"""A batch of submissions (`submit_many`, issue #23's bulk path) on the fakes: each petition ends as
`submit` with its Idempotency-Key would leave it, the batch writes each collection once, and what is
not the plain case (a retry, a mismatch, a second petition of one phone and category, an index held
by another writer, an event the contract refuses) is decided on its own without failing the others."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from petition_common.config import Settings
from petition_common.contract import SchemaViolation
from petition_common.mongo import BULK_CHUNK
from petition_common.store import Conflict
from services.intake import domain
from services.intake.bootstrap import bootstrap
from services.intake.service import BatchItem, IdempotencyMismatch
from tests.unit.held_group import queued_behind_a_held_write
from tests.unit.intake.test_intake_usecases import Intake, _body


@pytest.fixture
def intake() -> Intake:
    return Intake()


def _item(intake: Intake, key: str, content: str = "小区门口下水道堵了三天", phone: str = "13812340002", **loc: Any):
    body = _body(content, phone, **loc)
    sub = domain.validate_submission(body, intake.parts.config.categories)
    return BatchItem(sub, domain.body_fingerprint(body), key)


def _phones(n: int) -> list[str]:
    return [f"1381234{i:04d}" for i in range(n)]


def test_a_batch_stores_each_petition_as_a_single_submission_would(intake: Intake) -> None:
    items = [
        _item(intake, f"k{i}", f"第{i}件：路灯坏了", phone, lat=30.27, lon=120.15) for i, phone in enumerate(_phones(3))
    ]
    outcomes = intake.handlers["submit_many"](items)
    assert [replayed for _, replayed in outcomes] == [False, False, False]
    for (receipt, _), item in zip(outcomes, items, strict=True):
        pid = receipt["petition_id"]
        state = intake.state(pid)
        assert state["status"] == "submitted" and receipt["status"] == "submitted"
        assert intake.service.read(pid, receipt["tracking_code"])["petition_id"] == pid  # the code opens it
        assert intake.published_types(pid) == ["petition.submitted"]
        staff_view = intake.service.contacts.get(state["citizen"]["contact_id"])
        assert staff_view is not None and staff_view["phone"] == item.submission.citizen_phone
    assert len({receipt["petition_id"] for receipt, _ in outcomes}) == 3
    assert intake.db["open_points"].count_documents({}) == 3  # "near me" knows them


def test_a_batch_writes_each_collection_once(intake: Intake) -> None:
    intake.submit(phone="13900000000")  # the numbers' block is claimed
    intake.db.commands.clear()
    items = [_item(intake, f"k{i}", phone=phone, lat=30.27, lon=120.15) for i, phone in enumerate(_phones(50))]
    outcomes = intake.handlers["submit_many"](items)
    assert all(not isinstance(o, Exception) for o in outcomes)
    writes = Counter({k: v for k, v in intake.db.commands.items() if k[0] != "find"})
    assert writes == Counter(
        {
            ("insert", "idempotency"): 1,
            ("insert", "duplicates_commits"): 1,
            ("insert", "contacts"): 1,
            ("insert", "outbox"): 1,
            ("insert", "petitions_commits"): 1,
            ("delete", "outbox"): 1,  # the published markers
            ("update", "open_points"): math.ceil(50 / BULK_CHUNK),  # FerretDB's bound on a bulk write
        }
    ), writes
    assert sum(v for k, v in intake.db.commands.items() if k[0] == "find") == 0


def test_a_batch_sent_again_replays_every_petition_and_stores_none_twice(intake: Intake) -> None:
    items = [_item(intake, f"k{i}", phone=phone) for i, phone in enumerate(_phones(4))]
    first = intake.handlers["submit_many"](items)
    again = intake.handlers["submit_many"](items)
    assert [r for r, _ in again] == [r for r, _ in first]  # the same numbers and tracking codes
    assert all(replayed for _, replayed in again)
    assert intake.db["petitions_commits"].count_documents({}) == 4
    assert len(intake.published.events) == 4


def test_a_key_reused_with_another_petition_refuses_that_item_alone(intake: Intake) -> None:
    intake.handlers["submit_many"]([_item(intake, "k0", "路灯坏了")])
    outcomes = intake.handlers["submit_many"]([_item(intake, "k0", "下水道堵了"), _item(intake, "k1", "垃圾没人收")])
    assert isinstance(outcomes[0], IdempotencyMismatch)
    receipt, replayed = outcomes[1]
    assert not replayed and intake.state(receipt["petition_id"])["status"] == "submitted"


def test_a_second_petition_of_one_phone_and_category_in_a_batch_is_linked_to_the_first(intake: Intake) -> None:
    outcomes = intake.handlers["submit_many"](
        [_item(intake, "k0", "东街路口下水道堵了"), _item(intake, "k1", "东街路口下水道堵了。")]
    )
    (first, _), (second, _) = outcomes
    assert first["duplicate_of"] is None
    assert second["duplicate_of"] == first["petition_id"]
    assert intake.state(first["petition_id"])["affected_citizens"] == 2


def test_an_index_another_instance_holds_sends_that_item_the_one_petition_way(intake: Intake) -> None:
    other = bootstrap(Settings(service="intake"), db=intake.db, publisher=intake.published, clock=intake.clock)
    earlier = other.handlers["submit"](*_single(intake, "东街路口下水道堵了"))[0]  # this instance does not know it
    outcomes = intake.handlers["submit_many"](
        [_item(intake, "k0", "东街路口下水道堵了"), _item(intake, "k1", "路灯坏了", "13900000001")]
    )
    (linked, _), (plain, _) = outcomes
    assert linked["duplicate_of"] == earlier["petition_id"]  # found once the commit lost to the stored index
    assert plain["duplicate_of"] is None


def _single(intake: Intake, content: str) -> tuple[domain.Submission, str, None]:
    body = _body(content, "13812340002")
    return domain.validate_submission(body, intake.parts.config.categories), domain.body_fingerprint(body), None


def test_a_petition_the_contract_refuses_is_refused_alone_before_anything_of_it_is_written(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_item(intake, "k0", "路灯坏了"), _item(intake, "k1", "垃圾没人收", "13900000001")]
    check = intake.service.petitions.check

    def refuse_the_second(events):  # the stores' contract check, failing for one petition's event
        if any(e.data.get("content") == "垃圾没人收" for e in events):
            raise SchemaViolation("petition.submitted", {"content": "refused"})
        check(events)

    monkeypatch.setattr(intake.service.petitions, "check", refuse_the_second)
    outcomes = intake.handlers["submit_many"](items)
    assert not isinstance(outcomes[0], Exception)
    assert isinstance(outcomes[1], SchemaViolation)
    assert intake.db["idempotency"].count_documents({}) == 1  # nothing of the refused one
    assert intake.db["contacts"].count_documents({}) == 1


def test_a_commit_that_loses_refuses_its_item_and_takes_back_its_index_entry(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_item(intake, "k0", "路灯坏了"), _item(intake, "k1", "垃圾没人收", "13900000001")]
    commit_many = intake.service.petitions.commit_many

    def second_loses(batch):
        results = commit_many(batch[:1])
        return [*results, Conflict("lost")]  # as if the relay had voided the second's number

    monkeypatch.setattr(intake.service.petitions, "commit_many", second_loses)
    outcomes = intake.handlers["submit_many"](items)
    assert not isinstance(outcomes[0], Exception) and isinstance(outcomes[1], Conflict)
    index = intake.service.duplicates.load(intake.service.codes.duplicate_key("13900000001", "drainage"))
    assert index.state == {"recent": []}


def test_a_database_error_at_the_commit_takes_back_the_index_entries_and_is_raised(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import AutoReconnect

    def database_away(batch):
        raise AutoReconnect("away")

    monkeypatch.setattr(intake.service.petitions, "commit_many", database_away)
    with pytest.raises(AutoReconnect):
        intake.handlers["submit_many"]([_item(intake, "k0", "路灯坏了")])
    monkeypatch.undo()
    # the client sends the batch again with the same key: the petition is stored, once, unlinked
    ((receipt, _),) = intake.handlers["submit_many"]([_item(intake, "k0", "路灯坏了")])
    assert receipt["duplicate_of"] is None and intake.state(receipt["petition_id"])["status"] == "submitted"
    assert intake.db["petitions_commits"].count_documents({}) == 1


# ---- single submissions written together (group_commit.py)


def test_single_submissions_arriving_during_a_write_are_written_as_one_batch(intake: Intake) -> None:
    """While one submission is being written, the others wait and are then written together: each
    collection once for the group, and each request gets its own receipt."""
    intake.submit(phone="13900000000")  # the numbers' block is claimed
    items = [_item(intake, f"k{i}", phone=phone) for i, phone in enumerate(_phones(5))]
    items[3] = BatchItem(items[3].submission, items[3].fingerprint, None)  # sent without a key
    receipts: dict[int, Any] = {}

    def submit(i: int) -> Callable[[], None]:
        def run() -> None:
            item = items[i]
            receipts[i] = intake.handlers["submit"](item.submission, item.fingerprint, item.key)

        return run

    queued_behind_a_held_write(
        intake.service.submissions, submit(0), [submit(i) for i in range(1, 5)], while_held=intake.db.commands.clear
    )
    assert sorted(receipts) == [0, 1, 2, 3, 4]
    pids = {receipt["petition_id"] for receipt, _ in receipts.values()}
    assert len(pids) == 5 and not any(replayed for _, replayed in receipts.values())
    for pid in pids:
        assert intake.state(pid)["status"] == "submitted"
        assert intake.published_types(pid) == ["petition.submitted"]
    # the held first submission's inserts, then the group of four's: one insert per collection
    for collection in ("petitions_commits", "outbox", "idempotency", "duplicates_commits", "contacts"):
        assert intake.db.commands[("insert", collection)] == 2, collection
    assert intake.db["idempotency"].count_documents({}) == 4  # claims only of the four sent with a key


def test_one_key_twice_in_a_group_stores_one_petition_and_replays_it_to_the_other(intake: Intake) -> None:
    item = _item(intake, "double-click")
    outcomes = intake.service.submit_many([item, item])
    (first, replayed_first), (second, replayed_second) = outcomes
    assert first == second and not replayed_first and replayed_second
    assert intake.db["petitions_commits"].count_documents({}) == 1
    assert len(intake.published.events) == 1


def test_submissions_without_a_key_in_a_batch_claim_nothing(intake: Intake) -> None:
    items = [BatchItem(i.submission, i.fingerprint, None) for i in (_item(intake, "x", phone=p) for p in _phones(3))]
    outcomes = intake.service.submit_many(items)
    assert len({receipt["petition_id"] for receipt, _ in outcomes}) == 3
    assert intake.db["idempotency"].count_documents({}) == 0
