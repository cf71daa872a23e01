"""Stats follows a calendar change: the on-time verdicts of a petition are derived again, with the
calendar as it is now, when sla says its deadline changed (sla.deadline_changed)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from petition_kernel.calendar import CalendarDirectory
from petition_kernel.sla.policy import load_policy
from services.stats.domain.changes import change_of
from services.stats.domain.facts import INDEX, N_COUNTERS, Change, Facts, SlaRules, to_us
from services.stats.write.partition_state import PartitionState, decode_cells_raw, encode_cells

REPO = Path(__file__).resolve().parents[3]
PID = "JZ20261228000001"


def cst(text: str) -> int:
    return to_us(datetime.fromisoformat(f"{text}+08:00"))


def test_a_deadline_change_derives_the_verdict_again_with_the_new_calendar(tmp_path: Path) -> None:
    for file in (REPO / "config" / "calendar").glob("*.yaml"):
        (tmp_path / file.name).write_bytes(file.read_bytes())
    files = CalendarDirectory(tmp_path, today=lambda: date(2026, 12, 28))
    rules = SlaRules(load_policy(REPO / "config" / "sla-policy.yaml"), files.calendar, files)
    state = PartitionState(0, rules)
    for change in (
        Change(PID, "submitted", cst("2026-12-28T10:00"), "s", ("roads", "web", False)),
        Change(PID, "contacted", cst("2026-12-28T11:00"), "c"),
        Change(PID, "replied", cst("2027-01-05T12:00"), "r"),  # day 5 on the provisional calendar
    ):
        state.apply(change)

    def totals() -> dict[str, int]:
        [row] = state.all_cells().values()
        return {name: row[i] for name, i in INDEX.items() if name in ("replied_on_time", "replied_provisional")}

    assert totals() == {"replied_on_time": 1, "replied_provisional": 1}
    # the notice makes Saturday 2 January a working day: the deadline is the end of 4 January
    (tmp_path / "2027.yaml").write_text("holidays: [2027-01-01]\nworkdays: [2027-01-02]\n", encoding="utf-8")
    assert rules.refresh_calendar() and not rules.refresh_calendar()
    state.apply(Change(PID, "feedback", cst("2027-01-06T09:00"), "f", ("satisfied",)))
    assert totals() == {"replied_on_time": 1, "replied_provisional": 1}  # kept until sla says it changed
    event = change_of(
        "sla.deadline_changed",
        {"petition_id": PID, "clock": "reply", "generation": 0, "deadline": "2027-01-04T16:00:00Z"},
        "d1",
    )
    assert event == Change(PID, "deadline_changed", 0, "d1")
    assert state.apply(event) and not state.apply(event)  # a redelivery changes nothing
    assert totals() == {"replied_on_time": 0, "replied_provisional": 0}


def test_blocks_written_before_the_new_fields_still_read() -> None:
    old_facts = Facts(submitted=(1, "roads", "web", False)).to_list()[:11]
    assert Facts.from_list(old_facts) == Facts(submitted=(1, "roads", "web", False))
    key = [740_000, "G", "V", "T", "roads", "d", "web"]
    blob = encode_cells({tuple(key): [1] * (N_COUNTERS - 1)})  # type: ignore[dict-item]
    _, [row] = decode_cells_raw(blob)
    assert len(row) == N_COUNTERS and row[-1] == 0
