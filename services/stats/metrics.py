"""The stats service's own metrics, one comment each; they join the shared registry of PlatformMetrics.

Events applied are counted by the shared `petitions_consumed_total{service="stats"}` with outcome
applied (changed a petition's facts), duplicate (changed nothing: a redelivery or a repeated
fact), ignored (a type stats does not count) or deadlettered. Query latency is the shared
`petitions_http_request_seconds{service="stats", route=...}` histogram.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class StatsMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = {"registry": registry}
        # alert.hotspot events committed for publication (each alert once), by kind and area level
        self.alerts = Counter("petitions_stats_alerts_total", "Hotspot alerts emitted", ["kind", "level"], **labels)
        # alerts the detector raised again that were not published again (same id, or same burst)
        self.alerts_suppressed = Counter(
            "petitions_stats_alerts_suppressed_total", "Hotspot alerts not published twice", ["reason"], **labels
        )
        # petitions the hotspot detector counted (submission joined with its first assignment)
        self.observed = Counter("petitions_stats_hotspot_observed_total", "Petitions seen by the detector", **labels)
        # checkpoints by task kind (partition, hotspots) and outcome (saved, conflict: another writer won)
        self.checkpoints = Counter(
            "petitions_stats_checkpoints_total", "State checkpoints", ["task", "outcome"], **labels
        )
        # time to write one checkpoint (blocks and commit)
        self.checkpoint_seconds = Histogram(
            "petitions_stats_checkpoint_seconds",
            "Checkpoint write time",
            ["task"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            **labels,
        )
        # partition numbers whose state this instance owns; 1 on the instance running the detector
        self.owned_partitions = Gauge("petitions_stats_owned_partitions", "Partitions owned", **labels)
        self.detector_running = Gauge("petitions_stats_detector_running", "Hotspot detector runs here", **labels)
        # rows (cells) of the in-memory table that queries read, and the age of its newest data
        self.table_rows = Gauge("petitions_stats_table_rows", "Cells in the query table", **labels)
        self.table_refresh_seconds = Histogram(
            "petitions_stats_table_refresh_seconds",
            "Time to load changed blocks and rebuild the query table",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            **labels,
        )
        # petitions whose reply deadline fell in a year the working-day calendar does not cover
        self.calendar_gaps = Counter(
            "petitions_stats_calendar_gaps_total", "Reply clocks not computable (calendar year missing)", **labels
        )
