"""Where a service gets "now": the real UTC clock, or, for tests, a time read from a file.

Everything in a service that asks what time it is (scanners, state transitions, HTTP views) calls
one `Clock`. In production that is `SystemClock`. Only when `<SERVICE>_FAKE_CLOCK_FILE` is set (e.g.
`SLA_FAKE_CLOCK_FILE`, `ROUTING_FAKE_CLOCK_FILE`) does a service use `FileClock`, which reads the file
on every call, so an end-to-end test moves time forward by rewriting the file instead of sleeping.
The file holds either an ISO 8601 instant (time stands still there) or `offset:<seconds>` (the real
clock shifted by that much).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from petition_kernel.times import parse_time, utc_now

log = logging.getLogger(__name__)


class Clock(Protocol):
    def __call__(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class Cadence:
    """When a periodic job (a scanner) is due: `interval_s` after its last run by the wall clock or
    by the service's clock, whichever comes first. They are the same clock in production; a clock
    moved forward in steps (the benchmark's simulated year, tests) gets the job right after each
    step, so no deadline is stepped over unscanned. The first run is one interval after creation."""

    def __init__(self, clock: Clock, monotonic: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.monotonic = monotonic
        self._ran_mono, self._ran_at = monotonic(), clock()

    def due(self, interval_s: float) -> bool:
        """True (and counted as a run from now) if the job should run now."""
        mono, now = self.monotonic(), self.clock()
        if max(mono - self._ran_mono, (now - self._ran_at).total_seconds()) < interval_s:
            return False
        self._ran_mono, self._ran_at = mono, now
        return True


class SystemClock:
    def __call__(self) -> datetime:
        return utc_now()


class FakeClockError(ValueError):
    """The fake clock file is missing or does not hold an instant with a time zone."""


def parse_fake_instant(text: str, source: str = "fake clock") -> datetime:
    """An ISO 8601 instant with an offset (`2026-11-26T15:00:00Z`), as UTC; or `offset:<seconds>`,
    the real clock shifted by that many seconds."""
    value = text.strip()
    if value.startswith("offset:"):
        try:
            return utc_now() + timedelta(seconds=float(value.removeprefix("offset:")))
        except ValueError as exc:
            raise FakeClockError(f"{source}: {value!r} is not offset:<seconds>") from exc
    try:
        return parse_time(value)
    except ValueError as exc:
        raise FakeClockError(f"{source}: {value!r} is not an ISO 8601 instant with a time zone offset") from exc


class FileClock:
    """Reads the current instant from a file on every call (tests only).

    The file must hold a valid instant when the clock is created, else the service refuses to
    start. If a later read fails (a test rewriting the file non-atomically), the last good instant
    is used, so a half-written file never fails a message or a scan.
    """

    def __init__(self, path: Path):
        self.path = path
        self._last = self._read()

    def _read(self) -> datetime:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FakeClockError(f"{self.path}: cannot read the fake clock file: {exc}") from exc
        return parse_fake_instant(text, str(self.path))

    def __call__(self) -> datetime:
        try:
            self._last = self._read()
        except FakeClockError as exc:
            log.warning("fake clock unreadable; keeping the last instant", extra={"error": str(exc)})
        return self._last


def clock_from_env(service: str, extra: Mapping[str, str]) -> Clock:
    """`FileClock` when <SERVICE>_FAKE_CLOCK_FILE is set (in Settings.extra), else the real clock."""
    path = extra.get(f"{service.upper()}_FAKE_CLOCK_FILE")
    if not path:
        return SystemClock()
    log.warning("using a FAKE clock; never do this in production", extra={"file": path})
    return FileClock(Path(path))
