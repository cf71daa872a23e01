"""The hotspot detector's whole state: the join of submissions with their areas, and the detector.

The detector counts petitions per area, so it must see every partition: one task (run by the
instance that owns partition 0, see detector.py) reads `petition.submitted` and `petition.assigned`
from all partitions. A petition is observed once both have arrived, in either order:
- time and category from `petition.submitted` (a petition with `duplicate_of` is not counted);
- grid, village and town from routing's FIRST `petition.assigned` (transfers do not move a petition
  between areas here: an alert cannot be taken back). Not from the submitted location: its names
  are as typed by the citizen, and its grid_id unchecked; routing resolves both against the registry.
Area ids in alerts: the grid id; for villages and towns their names (the events carry names only).

Persistence: the state is split into blocks for checkpoints.py: "m" (meta, pending alerts),
"k:NN" (64 shards of per-key detector states) and "j:NN" (16 shards of the join), so that a
checkpoint rewrites only the shards that changed. A petition changes the states of its three keys
only, but nearly every key shard is dirty by the next checkpoint, so each key's state is kept
encoded until it changes: a checkpoint encodes the keys changed since the last one, not every key
of the dirty shards (which was a fifth of stats' CPU in the year replay).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson

from services.stats.domain.area_history import AreaKey
from services.stats.domain.facts import Change, from_us
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.domain.hotspots import Alert, HotspotDetector
from services.stats.write.checkpoints import pack, pack_json, unpack

Area = tuple[int, str | None, str | None, str | None]
KEY_SHARDS = 64
JOIN_SHARDS = 16
VERSION = 1


def _key_shard(key: AreaKey) -> str:
    return f"k:{zlib.crc32(f'{key.level}|{key.area_id}|{key.category}'.encode()) % KEY_SHARDS:02d}"


def _join_shard(petition_id: str) -> str:
    return f"j:{zlib.crc32(petition_id.encode()) % JOIN_SHARDS:02d}"


def retention(config: HotspotConfig) -> timedelta:
    """How far behind the newest submission a petition can still matter to any rule (plus 2 days)."""
    rules = [*config.levels.values(), *config.overrides.values()]
    return max(timedelta(days=r.baseline_days + 1) + r.window for r in rules) + config.lateness + timedelta(days=2)


def alert_doc(alert: Alert, town: str | None) -> dict[str, Any]:
    """The `alert.hotspot` data, plus the town of the area (an optional field, for filtering)."""
    data = alert.to_data()
    if town:
        data["town"] = town
    return data


class HotspotState:
    def __init__(self, config: HotspotConfig):
        self.config = config
        self.retain_us = int(retention(config) / timedelta(microseconds=1))
        self.detector = HotspotDetector(config)
        # pid -> (submitted at, category, duplicate, citizen ref or None)
        self.pending_sub: dict[str, tuple[int, str, bool, str | None]] = {}
        self.pending_asg: dict[str, Area] = {}  # pid -> (assigned at, grid, village, town)
        self.observed: dict[str, int] = {}  # pid -> submitted at, for petitions already counted
        self.watermark = 0  # the newest submission time observed
        # raised, saved in checkpoints until confirmed published: {"data": alert data, "grid": grid of the
        # petition that raised it (decides which staff see the alert)}
        self.pending_alerts: list[dict[str, Any]] = []
        self.offsets: dict[str, int] = {}
        self.keys: dict[str, set[AreaKey]] = {}  # shard -> keys held by the detector
        self.dirty: set[str] = set()
        self.encoded: dict[AreaKey, bytes] = {}  # key -> its state document as JSON, until the key changes

    # ---- applying

    def apply(self, change: Change) -> list[tuple[Alert, str | None]]:
        """Feed a `submitted` or `assigned` change; returns the alerts (with the area's town) it raises."""
        pid = change.petition_id
        if change.kind not in ("submitted", "assigned") or pid in self.observed:
            return []
        if change.kind == "submitted":
            category, _channel, duplicate = change.value[:3]
            citizen = change.value[3] if len(change.value) > 3 else None  # changes_of gives it; older callers not
            current = self.pending_sub.get(pid)
            if current is not None and current[0] <= change.at:
                return []
            self.pending_sub[pid] = (change.at, category, duplicate, citizen)
        else:
            current_asg = self.pending_asg.get(pid)
            if current_asg is not None and current_asg[0] <= change.at:
                return []
            grid, village, town, _department = change.value
            self.pending_asg[pid] = (change.at, grid, village, town)
        self.dirty.add(_join_shard(pid))
        if pid in self.pending_sub and pid in self.pending_asg:
            return self._observe(pid)
        return []

    def _observe(self, pid: str) -> list[tuple[Alert, str | None]]:
        at, category, duplicate, citizen = self.pending_sub.pop(pid)
        _, grid, village, town = self.pending_asg.pop(pid)
        self.observed[pid] = at
        if at < self.watermark - self.retain_us:
            return []  # too old to matter to any window or baseline still in use
        self.watermark = max(self.watermark, at)
        self.dirty.add("m")
        if duplicate:
            return []  # its original was counted
        areas = {"grid": grid, "village": village, "town": town}
        alerts = self.detector.observe(pid, areas, category, from_us(at), citizen=citizen)
        for key in self.detector.keys_for(areas, category):
            self.keys.setdefault(_key_shard(key), set()).add(key)
            self._changed(key)
        out = [(alert, town) for alert in alerts]
        self.pending_alerts.extend({"data": alert_doc(a, town), "grid": grid} for a in alerts)
        return out

    def prune(self) -> None:
        """Forget what no rule can use any more (by the newest submission time, not the wall clock)."""
        if not self.watermark:
            return
        horizon = self.watermark - self.retain_us
        for key in self.detector.prune(from_us(self.watermark)):
            self.keys.get(_key_shard(key), set()).discard(key)
            self._changed(key)
        for table in (self.observed,):
            for pid in [p for p, at in table.items() if at < horizon]:
                del table[pid]
                self.dirty.add(_join_shard(pid))
        for pending in (self.pending_sub, self.pending_asg):
            for pid in [p for p, v in pending.items() if v[0] < horizon]:
                del pending[pid]
                self.dirty.add(_join_shard(pid))

    def _changed(self, key: AreaKey) -> None:
        self.dirty.add(_key_shard(key))
        self.encoded.pop(key, None)

    def _encoded(self, key: AreaKey) -> bytes | None:
        data = self.encoded.get(key)
        if data is None:
            doc = self.detector.state_doc(key)
            if doc is None:
                return None
            data = self.encoded[key] = orjson.dumps(doc)
        return data

    def confirm_published(self, alert_ids: set[str]) -> None:
        before = len(self.pending_alerts)
        self.pending_alerts = [a for a in self.pending_alerts if a["data"]["alert_id"] not in alert_ids]
        if len(self.pending_alerts) != before:
            self.dirty.add("m")

    # ---- saving and loading

    def encode_dirty(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name in sorted(self.dirty):
            if name == "m":
                out[name] = pack(
                    {
                        "v": VERSION,
                        "detector": self.detector.meta(),
                        "watermark": self.watermark,
                        "pending_alerts": self.pending_alerts,
                    }
                )
            elif name.startswith("k:"):
                docs = [d for k in sorted(self.keys.get(name, ())) if (d := self._encoded(k)) is not None]
                out[name] = pack_json(b'{"v":%d,"states":[%b]}' % (VERSION, b",".join(docs)))
            # join shards ("j:NN") are encoded below, in one pass over the join
        join = sorted(n for n in self.dirty if n.startswith("j:"))
        if join:
            parts: dict[str, dict[str, dict[str, Any]]] = {n: {"s": {}, "a": {}, "o": {}} for n in join}
            for table, values in (("s", self.pending_sub), ("a", self.pending_asg), ("o", self.observed)):
                for pid, value in values.items():
                    part = parts.get(_join_shard(pid))
                    if part is not None:
                        part[table][pid] = list(value) if isinstance(value, tuple) else value
            for name in join:
                out[name] = pack({"v": VERSION, **parts[name]})
        return out

    def saved(self) -> None:
        self.dirty.clear()

    @classmethod
    def load(cls, config: HotspotConfig, manifest: dict[str, str], read: Callable[[str], bytes | None]) -> HotspotState:
        """Rebuild from the blocks a checkpoint's manifest names; raises KeyError if one is gone."""
        state = cls(config)

        def block(name: str) -> Any:
            blob = read(manifest[name])
            if blob is None:
                raise KeyError(manifest[name])
            doc = unpack(blob)
            if doc.get("v") != VERSION:
                raise ValueError(f"unsupported hotspot block version {doc.get('v')!r}")
            return doc

        meta = block("m") if "m" in manifest else {"detector": state.detector.meta(), "watermark": 0}
        docs = []
        for name in sorted(manifest):
            if name.startswith("k:"):
                shard_docs = block(name)["states"]
                docs.extend(shard_docs)
                state.keys[name] = {AreaKey(d["level"], d["area_id"], d["category"]) for d in shard_docs}
            elif name.startswith("j:"):
                part = block(name)
                # the citizen ref (4th) is absent from checkpoints saved before it existed
                state.pending_sub.update(
                    {p: (v[0], v[1], bool(v[2]), v[3] if len(v) > 3 else None) for p, v in part["s"].items()}
                )
                state.pending_asg.update({p: (v[0], v[1], v[2], v[3]) for p, v in part["a"].items()})
                state.observed.update(part["o"])
        state.detector = HotspotDetector.restore(config, meta["detector"], docs)
        state.watermark = int(meta.get("watermark", 0))
        state.pending_alerts = list(meta.get("pending_alerts", []))
        return state
