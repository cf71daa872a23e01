"""How long each service's consumer lets the broker gather a batch (petition_common.config.FETCH_WAIT)."""

from __future__ import annotations

from petition_common.config import Settings


def test_routing_takes_each_event_at_once_and_the_others_wait_for_a_batch(monkeypatch):
    for name in ("INTAKE", "ROUTING", "SLA", "STATS"):
        monkeypatch.delenv(f"{name}_FETCH_MIN_BYTES", raising=False)
        monkeypatch.delenv(f"{name}_FETCH_MAX_WAIT_MS", raising=False)
    fetch = {
        s: (Settings.from_env(s).fetch_min_bytes, Settings.from_env(s).fetch_max_wait_ms)
        for s in ("intake", "routing", "sla", "stats")
    }
    assert fetch == {"intake": (16_384, 100), "routing": (1, 500), "sla": (16_384, 100), "stats": (16_384, 100)}


def test_each_service_can_be_told_otherwise(monkeypatch):
    monkeypatch.setenv("SLA_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("SLA_FETCH_MAX_WAIT_MS", "250")
    sla, stats = Settings.from_env("sla"), Settings.from_env("stats")
    assert (sla.fetch_min_bytes, sla.fetch_max_wait_ms) == (1, 250)
    assert (stats.fetch_min_bytes, stats.fetch_max_wait_ms) == (16_384, 100)
