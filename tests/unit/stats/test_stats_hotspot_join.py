"""The detector task joins submissions with their first assignment in either order, counts each
petition once, and resumes from its saved blocks exactly where it stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.stats.domain.area_history import AreaKey
from services.stats.domain.facts import Change, to_us
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.write.checkpoints import pack, unpack
from services.stats.write.detector_state import HotspotState, retention

T0 = datetime(2024, 7, 1, tzinfo=UTC)


def sub(i: int, hours: float, category: str = "drainage", duplicate: bool = False) -> Change:
    return Change(
        f"JZ20240701{i:06d}", "submitted", to_us(T0 + timedelta(hours=hours)), f"s{i}", (category, "web", duplicate)
    )


def asg(i: int, hours: float, grid: str = "T01V01G001") -> Change:
    return Change(f"JZ20240701{i:06d}", "assigned", to_us(T0 + timedelta(hours=hours, seconds=3)), f"a{i}",
                  (grid, "东村新村", "城关街道", "dept"))  # fmt: skip


def test_a_grid_burst_alerts_once_whatever_arrives_first():
    for assigned_first in (False, True):
        state = HotspotState(HotspotConfig())
        alerts = []
        for i in range(6):
            pair = [asg(i, i), sub(i, i)] if assigned_first else [sub(i, i), asg(i, i)]
            for change in pair + pair:  # every event delivered twice
                alerts.extend(state.apply(change))
        grid_concentrated = [a for a, _ in alerts if a.kind == "concentrated" and a.area.level == "grid"]
        assert len(grid_concentrated) == 1
        assert grid_concentrated[0].count == 4  # the grid threshold
        assert all(town == "城关街道" for _, town in alerts)
        assert len(state.observed) == 6 and not state.pending_sub and not state.pending_asg


def test_duplicates_and_transfers_are_not_counted():
    state = HotspotState(HotspotConfig())
    for i in range(6):
        state.apply(sub(i, i, duplicate=True))
        state.apply(asg(i, i))
    assert state.apply(Change("JZ20240701000000", "transferred", 0, "t", ("G", "V", "T", "d"))) == []
    assert state.detector.keys_for({"grid": "T01V01G001"}, "drainage")
    assert len(state.detector) == 0  # duplicates never reach the detector's counts


def test_saved_state_resumes_identically():
    config = HotspotConfig()
    changes = [c for i in range(40) for c in (sub(i, i * 2, grid_category(i)), asg(i, i * 2, grid_of(i)))]
    live = HotspotState(config)
    for c in changes[:37]:
        live.apply(c)
    blocks = live.encode_dirty()
    manifest = {name: name for name in blocks}
    resumed = HotspotState.load(config, manifest, blocks.get)
    assert resumed.pending_sub == live.pending_sub and resumed.observed == live.observed
    rest_live = [a.alert_id for c in changes[37:] for a, _ in live.apply(c)]
    rest_resumed = [a.alert_id for c in changes[37:] for a, _ in resumed.apply(c)]
    assert rest_live == rest_resumed
    assert resumed.detector.to_dict() == live.detector.to_dict()


def test_only_changed_shards_are_rewritten():
    state = HotspotState(HotspotConfig())
    state.apply(sub(1, 1))
    state.apply(asg(1, 1))
    first = state.encode_dirty()
    state.saved()
    state.apply(sub(2, 2))
    second = state.encode_dirty()
    assert len(second) == 1 and len(first) > len(second)  # one join shard, not everything


def test_old_petitions_are_forgotten():
    config = HotspotConfig()
    state = HotspotState(config)
    state.apply(sub(1, 0))
    state.apply(asg(1, 0))
    horizon = retention(config)
    late = int(horizon / timedelta(hours=1)) + 48
    state.apply(sub(2, late))
    state.apply(asg(2, late))
    state.prune()
    assert "JZ20240701000001" not in state.observed and "JZ20240701000002" in state.observed
    assert pack({"x": 1})  # blocks are compressed JSON


def grid_of(i: int) -> str:
    return f"T01V01G00{i % 3 + 1}"


def grid_category(i: int) -> str:
    return "drainage" if i % 2 else "roads"


def test_a_checkpoint_encodes_only_the_keys_changed_since_the_last_and_saves_them_all(monkeypatch):
    """Issue #23: nearly every key shard is dirty by the next checkpoint, but a petition changes three
    keys; the others are written as encoded before, and every shard still holds every key as it is now."""
    state = HotspotState(HotspotConfig())
    for i in range(300):  # 300 grids' keys over 64 shards
        state.apply(sub(i, i * 0.2, grid_category(i)))
        state.apply(asg(i, i * 0.2, f"T01V01G{i:03d}"))
    state.encode_dirty()
    state.saved()
    encoded: list[AreaKey] = []
    state_doc = state.detector.state_doc
    monkeypatch.setattr(state.detector, "state_doc", lambda key: encoded.append(key) or state_doc(key))
    state.apply(sub(300, 60.5, "roads"))
    state.apply(asg(300, 60.5, grid_of(300)))
    blocks = state.encode_dirty()
    areas = {"grid": grid_of(300), "village": "东村新村", "town": "城关街道"}
    assert sorted(encoded) == sorted(state.detector.keys_for(areas, "roads"))
    saved = {
        (d["level"], d["area_id"], d["category"]): d
        for name, block in blocks.items()
        if name.startswith("k:")
        for d in unpack(block)["states"]
    }
    in_dirty_shards = [key for name in blocks if name.startswith("k:") for key in state.keys[name]]
    assert len(in_dirty_shards) > len(encoded)  # the shards hold keys this petition did not change
    for key in in_dirty_shards:
        assert saved[key.level, key.area_id, key.category] == state_doc(key)  # stale for none
