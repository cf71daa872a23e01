"""The hotspot rules count distinct citizens (`citizen.ref`), not petitions: one sender cannot raise
an alert, a petition without a ref is a citizen of its own, and the baseline counts citizens too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.stats.domain.area_history import AreaKey, KeyState
from services.stats.domain.changes import BadEvent, change_of
from services.stats.domain.facts import Change, to_us
from services.stats.domain.hotspot_config import LEVELS, HotspotConfig, Rule
from services.stats.domain.hotspots import HotspotDetector
from services.stats.write.detector_state import HotspotState

T0 = datetime(2024, 7, 1, tzinfo=UTC)
GRID = {"grid": "G1"}
NEVER = 10**6


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def detector(threshold: int = 4, **rule: float) -> HotspotDetector:
    levels = dict.fromkeys(LEVELS, Rule(threshold=threshold, **rule))
    return HotspotDetector(HotspotConfig(levels=levels), history_start=T0)


def test_one_citizen_filing_many_petitions_raises_nothing():
    det = detector(threshold=4, min_count=NEVER)
    alerts = [a for i in range(200) for a in det.observe(f"p{i}", GRID, "roads", h(i / 100), citizen="sender")]
    assert alerts == []


def test_distinct_citizens_alert_at_the_threshold_with_count_and_citizens():
    det = detector(threshold=4, min_count=NEVER)
    for i in range(5):  # one loud citizen first: five petitions, one citizen
        assert det.observe(f"loud{i}", GRID, "roads", h(i / 10), citizen="loud") == []
    assert det.observe("a", GRID, "roads", h(1), citizen="A") == []
    assert det.observe("b", GRID, "roads", h(2), citizen="B") == []
    (alert,) = det.observe("c", GRID, "roads", h(3), citizen="C")  # loud, A, B, C: four citizens
    assert (alert.citizens, alert.count) == (4, 8)
    assert alert.to_data()["citizens"] == 4 and alert.to_data()["count"] == 8


def test_a_petition_without_a_ref_is_a_citizen_of_its_own():
    det = detector(threshold=4, min_count=NEVER)
    assert det.observe("p0", GRID, "roads", h(0), citizen="same") == []
    assert det.observe("p1", GRID, "roads", h(1), citizen="same") == []
    assert det.observe("old1", GRID, "roads", h(2)) == []  # events from before the ref: each one counts
    assert det.observe("old2", GRID, "roads", h(3)) == []
    (alert,) = det.observe("old3", GRID, "roads", h(4))
    assert (alert.citizens, alert.count) == (4, 5)


def test_a_citizen_out_of_the_window_counts_again_when_back():
    det = detector(threshold=3, min_count=NEVER, window_hours=10)
    assert det.observe("x0", GRID, "roads", h(0), citizen="X") == []
    assert det.observe("y0", GRID, "roads", h(1), citizen="Y") == []
    assert det.observe("x1", GRID, "roads", h(12), citizen="X") == []  # window (2, 12]: X only
    assert det.observe("z0", GRID, "roads", h(13), citizen="Z") == []  # (3, 13]: X, Z
    (alert,) = det.observe("y1", GRID, "roads", h(14), citizen="Y")
    assert alert.citizens == 3


def emerging_after_a_flood(flood_ref: str | None) -> list[str]:
    """A flood of 500 petitions on day 5, then 9 citizens on day 12: the emerging alerts raised."""
    det = detector(threshold=NEVER, min_count=5, alpha=1e-5, baseline_days=7, min_baseline_days=7, prior_count=1)
    flood_day = T0 + timedelta(days=5)
    for i in range(500):
        det.observe(f"f{i}", GRID, "roads", flood_day + timedelta(minutes=i), citizen=flood_ref)
    later = T0 + timedelta(days=12)  # its 72 h window starts on day 9; the baseline is days 2-8
    return [
        a.kind
        for i in range(9)
        for a in det.observe(f"n{i}", GRID, "roads", later + timedelta(hours=i), citizen=f"c{i}")
    ]


def test_the_baseline_counts_a_flooding_citizen_once_so_it_cannot_blind_the_emerging_rule():
    assert emerging_after_a_flood(flood_ref="flood") == ["emerging"]
    assert emerging_after_a_flood(flood_ref=None) == []  # 500 citizens that week: 9 now is no surprise


def test_key_state_round_trips_citizens_and_reads_the_old_format():
    state = KeyState(AreaKey("grid", "G1", "roads"))
    state.add(h(1), "p1", "ref-a", keep_timestamp=True)
    state.add(h(2), "p2", None, keep_timestamp=True)
    doc = state.to_doc()
    assert doc["events"] == [[h(1).isoformat(), "p1", "ref-a"], [h(2).isoformat(), "p2"]]
    again = KeyState.from_doc(doc)
    assert again.events == state.events and again.citizens(h(0), h(3)) == 2
    again.add(h(3), "p3", "ref-a", keep_timestamp=True)
    assert again.citizens(h(0), h(3)) == 2 and sum(again.daily.values()) == 2  # ref-a was held already
    again.prune(h(2.5), 0)
    assert again.held == {"ref-a": 1}


def test_the_ref_travels_from_the_event_through_the_join_to_the_detector():
    citizen = {"name_masked": "王*", "phone_masked": "139****0001", "ref": "q3H0tJ9vXk2mR8sLw1ZbYc"}
    data = {"petition_id": "JZ20240701000001", "category": "roads", "channel": "web",
            "submitted_at": "2024-07-01T00:00:00Z", "citizen": citizen}  # fmt: skip
    change = change_of("petition.submitted", data, "e1")
    assert change is not None and change.value[3] == "q3H0tJ9vXk2mR8sLw1ZbYc"
    assert change_of("petition.submitted", {**data, "citizen": {}}, "e2").value[3] is None
    with pytest.raises(BadEvent):
        change_of("petition.submitted", {**data, "citizen": {"ref": 12}}, "e3")

    state = HotspotState(HotspotConfig())  # grid threshold 4
    alerts = []
    for i in range(10):
        pid = f"JZ20240701{i:06d}"
        at = to_us(T0 + timedelta(minutes=i))
        alerts += state.apply(Change(pid, "submitted", at, f"s{i}", ("roads", "web", False, "one-sender")))
        alerts += state.apply(Change(pid, "assigned", at + 1, f"a{i}", ("T01V01G001", "东村新村", "城关街道", "d")))
    assert alerts == []
    blocks = state.encode_dirty()
    resumed = HotspotState.load(HotspotConfig(), {n: n for n in blocks}, blocks.get)
    assert resumed.detector.to_dict() == state.detector.to_dict()
