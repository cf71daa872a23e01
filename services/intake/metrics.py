"""intake's own metrics (the shared ones are in petition_common/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = {"registry": registry}
        # the service clock's time at which the last completed erasure run looked for due petitions
        self.last_run = Gauge(
            "petitions_retention_last_run_timestamp_seconds", "Clock time of the last completed erasure run", **labels
        )
        # petitions whose contact details were erased after their retention period
        self.erased = Counter(
            "petitions_retention_erased_total", "Petitions whose contact details were erased", **labels
        )
        # petitions an erasure run failed on (retried on the next run)
        self.failures = Counter("petitions_retention_failures_total", "Petitions an erasure run failed on", **labels)
