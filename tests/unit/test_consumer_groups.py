"""`by_petition`: how the batch handlers split a poll batch."""

from __future__ import annotations

from petition_common.consumer import MessageMeta, by_petition
from petition_common.envelope import Event


def _event(pid: str, offset: int) -> tuple[Event, MessageMeta]:
    data = {"petition_id": pid, "withdrawn_at": f"2024-07-17T00:{offset:02d}:00.000Z"}
    event = Event(type="petition.withdrawn", source="petitions/intake", subject=pid, data=data)
    return event, MessageMeta("petitions.intake", 0, offset, pid)


def test_groups_keep_batch_order_within_a_petition_and_first_appearance_across_them():
    batch = [_event("B", 0), _event("A", 1), _event("B", 2), _event("C", 3), _event("A", 4)]

    groups = by_petition(batch)

    assert list(groups) == ["B", "A", "C"]
    assert [meta.offset for _, meta in groups["B"]] == [0, 2]
    assert [meta.offset for _, meta in groups["A"]] == [1, 4]
    assert groups["C"] == [batch[3]]


def test_an_empty_batch_has_no_groups():
    assert by_petition([]) == {}
