"""Metric definitions shared by every service, one comment each.

Each app gets its own CollectorRegistry (tests build several apps in one process); services add
their own domain metrics to the same registry. Services run one gunicorn worker process with
threads, so the plain (non-multiprocess) client is correct.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PlatformMetrics:
    def __init__(self, registry: CollectorRegistry, service: str):
        self.registry = registry
        labels = {"registry": registry}
        # HTTP requests by route template and status code
        self.http_requests = Counter(
            "petitions_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"], **labels
        )
        # HTTP latency by route template
        self.http_latency = Histogram(
            "petitions_http_request_seconds",
            "HTTP request latency",
            ["service", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
            **labels,
        )
        # consumed messages by topic, event type and outcome (applied, duplicate, ignored, deadlettered)
        self.consumed = Counter(
            "petitions_consumed_total", "Kafka messages consumed", ["service", "topic", "type", "outcome"], **labels
        )
        # messages sent to the dead-letter topic, by reason (unparseable, schema_invalid, handler_failed)
        self.deadlettered = Counter(
            "petitions_deadlettered_total", "Messages sent to the dead-letter topic", ["service", "reason"], **labels
        )
        # handler attempts that failed with a transient error and were retried
        # dead-letter floods: a partition that dead-lettered too many messages in a minute was paused
        self.deadletter_floods = Counter(
            "petitions_deadletter_floods_total",
            "Partitions paused for a flood of dead letters",
            ["service", "topic"],
            **labels,
        )
        # partitions paused for a dead-letter flood right now (they resume after a backoff)
        self.paused_partitions = Gauge(
            "petitions_consumer_paused_partitions", "Partitions paused for a dead-letter flood", ["service"], **labels
        )
        self.retries = Counter("petitions_consumer_retries_total", "Handler retries", ["service"], **labels)
        # events published to Kafka (acknowledged)
        self.published = Counter(
            "petitions_published_total", "Events acknowledged by Kafka", ["service", "type"], **labels
        )
        # outbox markers not yet acknowledged by Kafka, as last seen by the relay
        self.outbox_pending = Gauge(
            "petitions_outbox_pending", "Outbox markers awaiting publication", ["service"], **labels
        )
        # messages in a partition past the consumer's position, from the high watermark of its last fetch
        # (stats' hotspot detector reads without a group; it reports as "<its group>-hotspots")
        self.consumer_lag = Gauge(
            "petitions_consumer_lag", "Messages not yet consumed", ["service", "group", "topic", "partition"], **labels
        )
        # 1 when the last readiness check reached the dependency, else 0
        self.dependency_up = Gauge(
            "petitions_dependency_up", "Dependency reachable", ["service", "dependency"], **labels
        )
        # requests refused with 429, by the name of the limit they exceeded (petition_common/ratelimit.py)
        self.rate_limited = Counter(
            "petitions_rate_limited_total", "Requests refused for a rate limit", ["service", "limit"], **labels
        )
        # audit records appended, by action (contact.read, workorder.contact, ...) and outcome (ok, not_found, ...)
        self.audit_records = Counter(
            "petitions_audit_records_total", "Audit records appended", ["service", "action", "outcome"], **labels
        )
        # audit records that could not be appended: a read was refused (503), or an action went unrecorded
        self.audit_append_failures = Counter(
            "petitions_audit_append_failures_total", "Audit records that could not be appended", ["service"], **labels
        )
        # database commands sent, by command (find, insert, ...) and collection (mongo.CommandCounter)
        self.db_commands = Counter(
            "petitions_db_commands_total", "Database commands sent", ["service", "command", "collection"], **labels
        )
        # requests written by one group commit (group_commit.py), by writer: submissions, audit, a store's
        # name (its commits), workorder_changes
        self.group_sizes = Histogram(
            "petitions_group_commit_size",
            "Requests written together by one group commit",
            ["service", "writer"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            **labels,
        )
        self.service = service

    def observe_published(self, event_type: str) -> None:
        self.published.labels(self.service, event_type).inc()
