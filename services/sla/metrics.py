"""The sla service's own metrics, one comment each, in the app's registry (petition_common.metrics style).

Gauges are refreshed by the scanner from the shared `open_clocks` collection, so every instance
reports the same values: aggregate them with max(), not sum(). Counters count what this instance did
(the instance whose commit won), so sum() over instances is the platform's total.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OPEN_STATES = ("on_track", "warned", "breached")
CLOCKS = ("contact", "reply")


class SlaMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = {"registry": registry}
        # running clocks by clock (contact, reply) and state (on_track, warned, breached), as of the last scan
        self.open_clocks = Gauge(
            "petitions_sla_open_clocks", "Running SLA clocks by state", ["clock", "state"], **labels
        )
        # seconds since the oldest running clock started, as of the last scan (0 when none runs)
        self.oldest_open_age = Gauge(
            "petitions_sla_oldest_open_clock_age_seconds", "Age of the oldest running SLA clock", **labels
        )
        # clocks met (first contact / reply recorded), by clock and whether it was before the deadline
        self.met = Counter("petitions_sla_clocks_met_total", "SLA clocks met", ["clock", "on_time"], **labels)
        # clocks that breached their deadline (counted once, with their level-1 breach notice)
        self.breached = Counter("petitions_sla_clocks_breached_total", "SLA clocks breached", ["clock"], **labels)
        # sla.warning / sla.breached notices committed by this instance, by type and escalation level
        self.notices = Counter("petitions_sla_notices_total", "SLA notices emitted", ["type", "level"], **labels)
        # reply deadlines refused for a year the calendar lacks (add config/calendar/<year>.yaml)
        self.calendar_not_covered = Counter(
            "petitions_sla_calendar_year_not_covered_total",
            "Reply deadlines refused for a year the working-day calendar does not cover",
            ["year"],
            **labels,
        )
        # petitions whose newest reply clock cannot be computed for want of a calendar year, as of the last scan
        self.uncovered_records = Gauge(
            "petitions_sla_calendar_uncovered_petitions",
            "Open petitions with a reply clock in a year the calendar does not cover",
            **labels,
        )
        # the last year the working-day calendar has official days for (a notice imported, or the library's
        # data): alert when December comes and it is this year. Later years run on provisional calendars.
        self.calendar_last_year = Gauge(
            "petitions_sla_calendar_last_covered_year",
            "Last year the working-day calendar has from a State Council notice",
            **labels,
        )
        # running reply clocks whose deadline counts days of a provisional calendar year, as of the last scan
        self.provisional_clocks = Gauge(
            "petitions_sla_calendar_provisional_open_clocks",
            "Running reply clocks whose deadline rests on a provisional calendar (notice not imported)",
            **labels,
        )
        # reply deadlines derived again after a calendar change (sla.deadline_changed committed by this instance)
        self.deadline_changes = Counter(
            "petitions_sla_deadline_changes_total", "Reply deadlines moved or confirmed by a calendar change", **labels
        )
        # calendar changes found (files reloaded without a restart, or a different calendar after one)
        self.calendar_reloads = Counter(
            "petitions_sla_calendar_reloads_total", "Working-day calendar changes taken up by this instance", **labels
        )
        # duration of one scan of open_clocks (finding due notices and emitting them)
        self.scan_seconds = Histogram(
            "petitions_sla_scan_seconds",
            "Duration of one SLA scan",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            **labels,
        )
        # the service clock's time at which the last completed scan looked for due notices
        self.last_scan = Gauge(
            "petitions_sla_last_scan_timestamp_seconds", "Clock time the last completed SLA scan ran at", **labels
        )
        # petitions the scanner could not process in a scan (retried on the next one)
        self.scan_errors = Counter("petitions_sla_scan_errors_total", "Petitions a scan failed on", **labels)
        for clock in CLOCKS:
            for state in OPEN_STATES:
                self.open_clocks.labels(clock, state).set(0)
            self.breached.labels(clock)
