"""The rehearsal's summary: what counts after the warm-up, and the rate per 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.stats.domain.facts import to_us
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.rehearse import summarise
from services.stats.write.detector_state import HotspotState

T0 = datetime(2025, 1, 1, 1, tzinfo=UTC)


def _alert(kind: str, level: str, category: str, window_end: datetime) -> dict:
    data = {"kind": kind, "area": {"level": level, "id": "x", "name": "x"}, "category": category,
            "window_end": window_end.isoformat().replace("+00:00", "Z")}  # fmt: skip
    return {"data": data, "grid": None}


def test_alerts_of_the_warm_up_are_set_aside_and_the_rest_scaled_to_30_days():
    state = HotspotState(HotspotConfig())
    state.observed = {"p1": to_us(T0), "p2": to_us(T0 + timedelta(days=20))}
    state.watermark = to_us(T0 + timedelta(days=67))  # 60 days after a 7-day warm-up
    state.pending_alerts = [
        _alert("concentrated", "village", "roads", T0 + timedelta(days=3)),  # in the warm-up
        _alert("concentrated", "village", "roads", T0 + timedelta(days=10)),
        _alert("concentrated", "village", "roads", T0 + timedelta(days=30)),
        _alert("concentrated", "town", "environment", T0 + timedelta(days=40)),
        _alert("emerging", "grid", "roads", T0 + timedelta(days=66)),
    ]

    result = summarise(state, timedelta(days=7), busiest=2)

    assert result["petitions_observed"] == 2
    assert result["measured_days"] == 60.0
    assert result["alerts_in_warm_up"] == 1
    assert result["alerts"] == {"concentrated/town": 1, "concentrated/village": 2, "emerging/grid": 1}
    assert result["per_30_days"] == {"concentrated/town": 0.5, "concentrated/village": 1.0, "emerging/grid": 0.5}
    assert result["busiest"] == [{"level": "village", "category": "roads", "alerts": 2},
                                 {"level": "town", "category": "environment", "alerts": 1}]  # fmt: skip
    assert len(result["raised"]) == 4


def test_nothing_observed_is_an_empty_summary():
    result = summarise(HotspotState(HotspotConfig()), timedelta(days=7))
    assert result["petitions_observed"] == 0 and result["alerts"] == {}
