import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.stats.domain.area_history import AreaKey
from services.stats.domain.hotspot_config import LEVELS, HotspotConfig, Rule
from services.stats.domain.hotspots import CONCENTRATED, EMERGING, Alert, HotspotDetector, alert_id
from services.stats.domain.poisson import critical_count, poisson_sf

T0 = datetime(2024, 7, 1, tzinfo=UTC)
NEVER = 10**6  # a threshold or min_count that switches that kind of alert off
GRID = {"grid": "G1"}
VILLAGE = {"village": "V1"}


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def config(lateness_hours: float = 24, **rule) -> HotspotConfig:
    return HotspotConfig(levels=dict.fromkeys(LEVELS, Rule(**rule)), lateness_hours=lateness_hours)


def concentrated(threshold: int = 4, **kw) -> HotspotDetector:
    return HotspotDetector(config(threshold=threshold, min_count=NEVER, **kw), history_start=T0)


def feed(det: HotspotDetector, times, area=GRID, category="roads", prefix="p") -> list[Alert]:
    alerts = []
    for i, at in enumerate(times):
        alerts += det.observe(f"{prefix}{i}", area, category, at)
    return alerts


# --- concentrated ---------------------------------------------------------------------------------


def test_concentrated_fires_at_exactly_the_threshold():
    det = concentrated(threshold=4)
    assert feed(det, [h(0), h(10), h(20)]) == []  # N - 1
    (alert,) = det.observe("p3", GRID, "roads", h(30), area_names={"grid": "一网格"})  # N
    assert alert.kind == CONCENTRATED
    assert (alert.area.level, alert.area.id, alert.area.name) == ("grid", "G1", "一网格")
    assert alert.category == "roads"
    assert (alert.window_start, alert.window_end) == (h(30 - 72), h(30))
    assert alert.count == 4
    assert alert.petition_ids == ("p0", "p1", "p2", "p3")
    assert alert.alert_id == alert_id(CONCENTRATED, "grid", "G1", "roads", h(-42))


def test_the_window_is_half_open():
    det = concentrated(threshold=4)
    # (end - 72 h, end]: the petition exactly 72 h before the fourth is outside
    assert feed(det, [h(0), h(1), h(2), h(72)]) == []
    (alert,) = det.observe("p4", GRID, "roads", h(72.5))
    assert alert.petition_ids == ("p1", "p2", "p3", "p4")


def test_other_categories_and_areas_are_counted_apart():
    det = concentrated(threshold=2)
    assert det.observe("a", GRID, "roads", h(0)) == []
    assert det.observe("b", GRID, "drainage", h(1)) == []
    assert det.observe("c", {"grid": "G2"}, "roads", h(2)) == []
    assert len(det.observe("d", GRID, "roads", h(3))) == 1


def test_no_realert_while_hot_and_a_new_burst_after_cooling_alerts_again():
    det = concentrated(threshold=4)
    (first,) = feed(det, [h(0), h(1), h(2), h(3)])
    assert feed(det, [h(5), h(10), h(40)], prefix="hot") == []  # still >= 4 in the window
    # by h(100) the window (h(28), h(100)) holds only h(40): below 4, so the area has cooled
    assert feed(det, [h(100), h(101)], prefix="cool") == []
    (second,) = det.observe("new", GRID, "roads", h(102))
    assert second.window_end == h(102)
    assert second.petition_ids == ("hot2", "cool0", "cool1", "new")  # h(40) is still inside
    assert second.alert_id != first.alert_id


def test_a_count_hovering_at_the_threshold_does_not_realert_for_the_same_burst():
    det = concentrated(threshold=4)
    (first,) = feed(det, [h(0), h(1), h(2), h(3)])
    # h(0) expires (3 left: cooled), one arrives (4 again), but the window still overlaps the alerted one
    assert det.observe("x", GRID, "roads", h(72.5)) == []
    assert feed(det, [h(76), h(77)], prefix="y") == []  # h(1)..h(3) left at h(76): only 3 now
    (second,) = det.observe("z", GRID, "roads", h(78))  # h(72.5) h(76) h(77) h(78): all new
    assert second.window_start == h(6) and second.window_start >= first.window_end
    assert second.petition_ids == ("x", "y0", "y1", "z")


def test_duplicates_and_redeliveries_are_not_counted():
    det = concentrated(threshold=4)
    assert feed(det, [h(0), h(1), h(2)]) == []
    assert det.observe("dup", GRID, "roads", h(3), duplicate_of="p0") == []
    assert det.observe("p2", GRID, "roads", h(4)) == []  # at-least-once delivery: seen already
    (alert,) = det.observe("p3", GRID, "roads", h(5))
    assert alert.count == 4 and "dup" not in alert.petition_ids


def test_alerts_come_grid_first_and_skip_a_missing_grid():
    det = concentrated(threshold=1)
    area = {"grid": "G1", "village": "V1", "town": "T1"}
    assert [a.area.level for a in det.observe("a", area, "roads", h(0))] == ["grid", "village", "town"]
    assert [a.area.level for a in det.observe("b", {**area, "grid": None, "village": "V2"}, "roads", h(1))] == [
        "village"
    ]
    with pytest.raises(ValueError, match="levels"):
        det.observe("c", {"county": "X"}, "roads", h(2))


def test_petition_ids_are_capped_at_the_most_recent_fifty():
    det = concentrated(threshold=60)
    (alert,) = feed(det, [h(i / 10) for i in range(60)])
    assert alert.count == 60
    assert alert.petition_ids == tuple(f"p{i}" for i in range(10, 60))


def test_alert_data_follows_the_contract():
    det = concentrated(threshold=1)
    (alert,) = det.observe("p1", GRID, "roads", h(0.5))
    data = alert.to_data()
    assert set(data) == {
        "alert_id",
        "kind",
        "area",
        "category",
        "window_start",
        "window_end",
        "count",
        "baseline",
        "petition_ids",
        "citizens",  # optional: the distinct citizens the rule counted
    }
    assert data["area"] == {"level": "grid", "id": "G1", "name": "G1"}
    assert data["window_end"] == "2024-07-01T00:30:00.000Z"
    assert data["window_start"] == "2024-06-28T00:30:00.000Z"
    json.dumps(data)


def test_times_must_be_aware_and_are_taken_in_utc():
    det = concentrated(threshold=1)
    with pytest.raises(ValueError, match="timezone"):
        det.observe("p", GRID, "roads", datetime(2024, 7, 1, 8))
    (alert,) = det.observe("q", GRID, "roads", datetime(2024, 7, 1, 8, tzinfo=timezone(timedelta(hours=8))))
    assert alert.window_end == T0 and alert.window_end.tzinfo == UTC


# --- emerging -------------------------------------------------------------------------------------


def emerging(**rule) -> HotspotDetector:
    return HotspotDetector(config(threshold=NEVER, **rule), history_start=T0)


def test_emerging_fires_at_exactly_the_critical_count():
    det = emerging()
    rule = det.config.rule("village", "drainage")
    # baseline: one petition a day at noon for 28 days, then three quiet days
    feed(det, [h(24 * d + 12) for d in range(28)], VILLAGE, "drainage", prefix="base")
    expected = (28 + rule.prior_count) / 28 * 3  # λ·W, with the prior pseudo-petitions
    k = critical_count(expected, rule.alpha)
    burst = [h(24 * 31 + i / 6) for i in range(k)]  # day 31: window starts on day 28
    assert feed(det, burst[:-1], VILLAGE, "drainage") == []  # k - 1
    (alert,) = det.observe("last", VILLAGE, "drainage", burst[-1])  # k
    assert alert.kind == EMERGING and alert.count == k
    assert alert.baseline == pytest.approx(expected)
    assert alert.p_value == pytest.approx(poisson_sf(k, expected)) and alert.p_value < rule.alpha
    assert alert.to_data()["baseline"] == pytest.approx(expected)


def test_emerging_needs_the_minimum_count_even_in_a_silent_area():
    det = emerging(alpha=1e-3)  # so that 4 petitions would be "significant" on their own
    silent = 2 / 28 * 3  # prior only: not zero, so not infinitely surprising
    assert poisson_sf(4, silent) < 1e-3
    # day 31: the window starts on day 28, with 28 silent days before it
    assert feed(det, [h(24 * 31 + i) for i in range(4)], VILLAGE) == []
    (alert,) = det.observe("fifth", VILLAGE, "roads", h(24 * 31 + 4))
    assert alert.count == 5 and alert.baseline == pytest.approx(silent)
    assert alert.p_value == pytest.approx(poisson_sf(5, silent))


def test_emerging_waits_for_enough_history():
    det = emerging(alpha=1e-3, min_baseline_days=7)
    # window (day 4 - 3 days, day 4]: starts on day 1, only 1 observed day before it
    assert feed(det, [h(24 * 4 + i) for i in range(20)], VILLAGE) == []
    later = emerging(alpha=1e-3, min_baseline_days=7)
    assert len(feed(later, [h(24 * 10 + i) for i in range(6)], VILLAGE)) == 1


def test_history_start_defaults_to_the_first_petition_and_partial_days_do_not_count():
    det = HotspotDetector(config(threshold=NEVER, alpha=1e-3, min_baseline_days=7))
    det.observe("first", VILLAGE, "other", h(6))
    assert det.history_start == h(6)
    # day 0 was seen only from 06:00, so a window starting on day 8 has 7 full days (1..7) behind it
    assert feed(det, [h(24 * 10 + i) for i in range(5)], VILLAGE) == []  # starts day 7: 6 days
    assert len(feed(det, [h(24 * 11 + i) for i in range(5)], VILLAGE, prefix="q")) == 1


def test_steady_traffic_does_not_alarm():
    det = emerging()
    rng = random.Random(7)
    times = sorted(h(rng.uniform(0, 24 * 60)) for _ in range(600))  # 10 a day for 60 days
    assert feed(det, times, VILLAGE) == []


# --- out-of-order events --------------------------------------------------------------------------


def test_a_late_petition_completes_the_current_window():
    det = concentrated(threshold=4)
    assert feed(det, [h(0), h(1), h(3)]) == []
    (alert,) = det.observe("late", GRID, "roads", h(2))
    assert alert.window_end == h(3) and alert.count == 4


def test_a_late_petition_is_judged_in_the_past_windows_that_contain_it():
    det = concentrated(threshold=4, lateness_hours=24)
    assert feed(det, [h(0), h(1), h(2), h(80)]) == []
    (alert,) = det.observe("late", GRID, "roads", h(60))  # 20 h late
    assert (alert.window_end, alert.count) == (h(60), 4)
    assert alert.petition_ids == ("p0", "p1", "p2", "late")


def test_a_too_late_petition_counts_but_does_not_reopen_old_windows():
    det = concentrated(threshold=4, lateness_hours=24)
    assert feed(det, [h(0), h(1), h(2), h(100)]) == []
    assert det.observe("late", GRID, "roads", h(50)) == []  # 50 h late: window ending h(50) not reopened
    assert det.observe("next", GRID, "roads", h(101)) == []  # (h(29), h(101)] holds late, p3, next
    (alert,) = det.observe("more", GRID, "roads", h(102))
    assert "late" in alert.petition_ids


def test_jitter_within_the_lateness_finds_the_same_hotspots():
    rng = random.Random(11)
    stream = []
    for b in range(12):  # bursts ten days apart in assorted areas and categories
        area = {"grid": f"G{b % 3}", "village": f"V{b % 2}", "town": "T"}
        cat = ("roads", "drainage")[b % 2]
        stream += [(h(240 * b + rng.uniform(0, 30)), area, cat) for _ in range(rng.randint(3, 7))]
    stream.sort(key=lambda e: e[0])
    ids = [f"p{i}" for i in range(len(stream))]
    arrivals = sorted(range(len(stream)), key=lambda i: stream[i][0] + timedelta(hours=rng.uniform(0, 12)))
    assert arrivals != list(range(len(stream)))

    def hotspots(order):
        det = HotspotDetector(config(threshold=4, min_count=NEVER), history_start=T0)
        found = set()
        for i in order:
            at, area, cat = stream[i]
            found |= {
                (a.area.level, a.area.id, a.category, a.window_end.date()) for a in det.observe(ids[i], area, cat, at)
            }
        return {(lv, area, cat) for lv, area, cat, _ in found}

    in_order = hotspots(range(len(stream)))
    assert in_order and hotspots(arrivals) == in_order


# --- determinism, persistence, bounded state ------------------------------------------------------


def noisy_stream(seed: int, n: int = 3000):
    """Background noise over a few areas plus planted bursts, slightly out of order, some duplicates."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        g = rng.randrange(12)
        area = {"grid": f"G{g}", "village": f"V{g // 4}", "town": "T1"}
        events.append((f"n{i}", area, rng.choice(["roads", "drainage", "other"]), h(rng.uniform(0, 24 * 90))))
    for b in range(6):
        start = rng.uniform(24 * 30, 24 * 88)
        area = {"grid": f"G{b}", "village": f"V{b // 4}", "town": "T1"}
        events += [(f"b{b}-{j}", area, "roads", h(start + rng.uniform(0, 20))) for j in range(12)]
    # arrival order: by `at` plus up to 6 h of delivery delay, so some arrive out of order
    events.sort(key=lambda e: e[3] + timedelta(hours=rng.uniform(0, 6)))
    for i in rng.sample(range(len(events)), 40):  # some duplicates of earlier petitions
        pid, area, cat, at = events[i]
        events[i] = (pid, area, cat, at, f"orig-of-{pid}")
    return [e if len(e) == 5 else (*e, None) for e in events]


def run(det: HotspotDetector, events) -> list[dict]:
    out = []
    for pid, area, cat, at, dup in events:
        out += [a.to_data() for a in det.observe(pid, area, cat, at, dup)]
    return out


def default_detector() -> HotspotDetector:
    return HotspotDetector(HotspotConfig(), history_start=T0)


def test_replay_gives_the_same_alerts_and_ids():
    events = noisy_stream(1)
    first, second = run(default_detector(), events), run(default_detector(), events)
    assert first == second
    kinds = {a["kind"] for a in first}
    assert kinds == {CONCENTRATED, EMERGING}
    assert len({a["alert_id"] for a in first}) == len(first)


def test_state_survives_a_round_trip_through_plain_dicts_mid_stream():
    events = noisy_stream(2)
    whole = default_detector()
    expected = run(whole, events)
    half = len(events) // 2

    a = default_detector()
    got = run(a, events[:half])
    a = HotspotDetector.from_dict(HotspotConfig(), json.loads(json.dumps(a.to_dict())))
    got += run(a, events[half:])
    assert got == expected
    assert a.to_dict() == whole.to_dict()

    # the per-document form the service keeps in MongoDB
    b = default_detector()
    got = run(b, events[:half])
    docs = [
        json.loads(json.dumps(b.state_doc(AreaKey(**d))))
        for d in (
            {"level": s["level"], "area_id": s["area_id"], "category": s["category"]} for s in b.to_dict()["states"]
        )
    ]
    b = HotspotDetector.restore(HotspotConfig(), b.meta(), docs)
    got += run(b, events[half:])
    assert got == expected


def test_keys_for_names_the_documents_a_petition_touches():
    keys = HotspotDetector.keys_for({"grid": None, "village": "V1", "town": "T1"}, "roads")
    assert keys == [AreaKey("village", "V1", "roads"), AreaKey("town", "T1", "roads")]


def test_pruning_idle_keys_changes_nothing():
    events = noisy_stream(3)
    expected = run(default_detector(), events)
    det, got = default_detector(), []
    for i, e in enumerate(events):
        got += run(det, [e])
        if i % 200 == 0:
            det.prune(e[3])
    assert got == expected
    assert det.prune(h(24 * 400)) and len(det) == 0


def test_state_per_key_is_bounded():
    det = default_detector()
    feed(det, [h(i * 24 / 5) for i in range(5 * 200)], VILLAGE, prefix="s")  # 5 a day for 200 days
    doc = det.state_doc(AreaKey("village", "V1", "roads"))
    rule = det.config.rule("village", "roads")
    window_plus_lateness = (rule.window_hours + det.config.lateness_hours) / 24
    assert len(doc["events"]) <= 5 * window_plus_lateness + 1
    assert len(doc["daily"]) <= rule.baseline_days + window_plus_lateness + 2


def test_unknown_state_versions_are_refused():
    with pytest.raises(ValueError, match="version"):
        HotspotDetector.from_dict(HotspotConfig(), {"v": 99, "states": []})
