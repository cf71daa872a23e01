"""The injected clock: real UTC time, or an instant read from a file when SLA_FAKE_CLOCK_FILE is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from petition_common.timesource import (
    Cadence,
    FakeClockError,
    FileClock,
    SystemClock,
    clock_from_env,
    parse_fake_instant,
)


def test_the_real_clock_is_utc_and_now() -> None:
    now = clock_from_env("sla", {})()
    assert isinstance(clock_from_env("sla", {"SLA_FAKE_CLOCK_FILE": ""}), SystemClock)
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("2026-11-26T15:00:00Z\n")
    clock = clock_from_env("sla", {"SLA_FAKE_CLOCK_FILE": str(path)})
    assert isinstance(clock, FileClock)
    assert clock() == datetime(2026, 11, 26, 15, tzinfo=UTC)
    path.write_text("2026-12-01T08:00:00+08:00")
    assert clock() == datetime(2026, 12, 1, 0, tzinfo=UTC)
    # a half-written or emptied file keeps the last good instant
    path.write_text("2026-12-0")
    assert clock() == datetime(2026, 12, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "tomorrow", "2026-11-26T15:00:00", "2026-11-26"])
def test_an_instant_needs_a_time_zone(text: str) -> None:
    with pytest.raises(FakeClockError):
        parse_fake_instant(text)


def test_a_missing_or_bad_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(FakeClockError, match="cannot read"):
        FileClock(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("soon")
    with pytest.raises(FakeClockError, match="not an ISO 8601 instant"):
        FileClock(bad)


class _Ticks:
    """A settable clock of either kind."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value


def test_a_cadence_is_due_after_the_interval_by_either_clock() -> None:
    service_clock = _Ticks(datetime(2025, 3, 1, tzinfo=UTC))
    wall = _Ticks(100.0)
    cadence = Cadence(service_clock, monotonic=wall)
    assert not cadence.due(30)  # the first run is one interval after creation
    wall.value = 131.0
    assert cadence.due(30)  # the wall clock passed it
    assert not cadence.due(30)  # and counts from now
    service_clock.value += timedelta(hours=6)  # a step of a simulated clock, no wall time
    assert cadence.due(30)
    assert not cadence.due(30)
    wall.value, service_clock.value = 150.0, service_clock.value + timedelta(seconds=29)
    assert not cadence.due(30)  # neither clock has passed 30 s
