"""The sla service's only wiring: stores, publisher, clock, configuration files, service and handlers.

`bootstrap(settings, db=..., publisher=..., clock=...)` builds a complete service on whatever it is
given: the runtime's database and Kafka producer in `app.py` and `repair.py`, or
`petition_common.fakes.MemoryDatabase()` and `RecordingPublisher()` in the fast tests (no network).

Settings (environment, via petition_common.config; defaults in brackets):
- SLA_POLICY_FILE [config/sla-policy.yaml]: the deadlines, warnings and escalation ladder;
- SLA_CALENDAR_DIR [CALENDAR_DIR, shared with stats]: the working-day calendar's year files, reloaded
  when they change (checked every SLA_CALENDAR_CHECK_S [60] on the scanner's thread);
- SLA_KEEP_BREACHED_HOURS [168]: how long a clock that ended late stays on the overdue list;
- SLA_SCAN_INTERVAL_S [30]: how often the scanner looks for due notices;
- SLA_AUDIT_INTERVAL_S [600]: how often open_clocks is checked against the records.
A malformed policy or calendar file raises here, naming the bad key: the service refuses to start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from petition_common import mongo
from petition_common.config import Settings
from petition_common.ownership import Ownership
from petition_common.runtime import store_factory
from petition_common.store import AggregateStore, Publisher
from petition_common.timesource import Clock, clock_from_env
from petition_kernel.calendar import CalendarDirectory
from petition_kernel.sla.policy import load_policy
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import local_date
from services.sla.domain.config import SlaConfig
from services.sla.handlers import Handlers, handlers
from services.sla.metrics import SlaMetrics
from services.sla.reads import ClockReader, OverdueSnapshot
from services.sla.service import SlaService


@dataclass(frozen=True)
class SlaTimings:
    scan_interval_s: float = 30.0
    audit_interval_s: float = 600.0
    calendar_check_s: float = 60.0
    overdue_refresh_s: float = 5.0
    overdue_max_age_s: float = 30.0


@dataclass(frozen=True)
class SlaParts:
    service: SlaService
    handlers: Handlers
    clocks: AggregateStore
    notices: AggregateStore
    metrics: SlaMetrics
    timings: SlaTimings


def calendar_dir(settings: Settings) -> Path:
    """The calendar's year files: SLA_CALENDAR_DIR, else CALENDAR_DIR (shared with stats)."""
    return Path(settings.extra.get("SLA_CALENDAR_DIR", str(settings.calendar_dir)))


def calendar_files(settings: Settings, clock: Clock) -> CalendarDirectory:
    """The calendar directory, reloaded when its files change; raises CalendarFileError (the service
    refuses to start) on a malformed file."""
    return CalendarDirectory(calendar_dir(settings), today=lambda: local_date(clock()))


def load_config(settings: Settings, calendar: CalendarDirectory) -> SlaConfig:
    """Policy and calendar from the files; raises (the service refuses to start) naming the bad key."""
    extra = settings.extra
    policy_file = Path(extra.get("SLA_POLICY_FILE", str(settings.config_dir / "sla-policy.yaml")))
    policy = load_policy(policy_file, frozenset(load_categories(settings.config_dir / "categories.yaml")))
    return SlaConfig(
        policy=policy,
        calendar=calendar.calendar,
        keep_breached=timedelta(hours=float(extra.get("SLA_KEEP_BREACHED_HOURS", 24 * 7))),
    )


def load_timings(settings: Settings) -> SlaTimings:
    extra = settings.extra
    return SlaTimings(
        scan_interval_s=float(extra.get("SLA_SCAN_INTERVAL_S", 30)),
        audit_interval_s=float(extra.get("SLA_AUDIT_INTERVAL_S", 600)),
        calendar_check_s=float(extra.get("SLA_CALENDAR_CHECK_S", 60)),
        overdue_refresh_s=float(extra.get("SLA_OVERDUE_REFRESH_S", 5)),
        overdue_max_age_s=float(extra.get("SLA_OVERDUE_MAX_AGE_S", 30)),
    )


def bootstrap(
    settings: Settings,
    *,
    db: Any = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
    stores: Callable[[str], AggregateStore] | None = None,
    registry: CollectorRegistry | None = None,
    ownership: Ownership | None = None,
) -> SlaParts:
    """sla, wired. `db`: a pymongo Database (or the fakes' MemoryDatabase), by default the one the
    settings name; `publisher`: where committed events go, by default Kafka; `clock`: by default the
    real one or SLA_FAKE_CLOCK_FILE's; `stores`: how an aggregate store is built by name (the runtime's,
    which publishes through its flusher thread), by default on `db`, publishing through `publisher` as
    it commits (so that is unused when `stores` is given) and checking events against the contract;
    `registry`: where the service's metrics go, by default a registry of their own; `ownership`: the
    consumer's partitions, when one runs (the service then relies on being a petition's only writer
    while its member holds it, petition_common.ownership)."""
    clock = clock or clock_from_env("sla", settings.extra)
    if db is None:
        db = mongo.connect(settings)[settings.database]
    if stores is None:
        stores = store_factory(settings, db, publisher)

    files = calendar_files(settings, clock)
    config = load_config(settings, files)
    timings = load_timings(settings)
    metrics = SlaMetrics(registry or CollectorRegistry())
    clocks, notices = stores("clocks"), stores("notices")
    service = SlaService(db, clocks, notices, config, metrics, clock, files, timings.calendar_check_s, ownership)
    overdue = OverdueSnapshot(
        db["open_clocks"], clock, refresh_s=timings.overdue_refresh_s, max_age_s=timings.overdue_max_age_s
    )
    table = handlers(service, ClockReader(service), overdue)
    return SlaParts(service, table, clocks, notices, metrics, timings)
