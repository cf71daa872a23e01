"""The Grafana dashboard of the platform, written from the panel list below.

    python -m petition_devtools.dashboard   # rewrites deploy/grafana/dashboards/petitions.json

Grafana provisions the JSON file (deploy/grafana/provisioning/dashboards/); the panels are kept here
because a list of (title, query) is easier to review than 1,000 lines of JSON. tests/unit/
test_monitoring.py checks the committed file is what this writes, that every query parses, and that
it names only metrics the services define.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from petition_common.config import REPO_ROOT

PATH = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "petitions.json"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: dict[str, str]  # legend -> PromQL
    unit: str = "short"
    description: str = ""
    stat: bool = False  # a single number instead of a time series
    width: int = 12


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


ROWS = [
    Row(
        "Flow: petitions through the services",
        [
            Panel(
                "Petitions accepted per minute",
                {"accepted": f'sum(rate(petitions_published_total{{type="petition.submitted"}}[{RATE}])) * 60'},
                description="petition.submitted events acknowledged by Kafka (one per 201 from intake).",
                width=8,
            ),
            Panel(
                "Events published per second",
                {"{{service}}": f"sum by (service) (rate(petitions_published_total[{RATE}]))"},
                unit="ops",
                width=8,
            ),
            Panel(
                "Events consumed per second",
                {"{{service}} {{outcome}}": f"sum by (service, outcome) (rate(petitions_consumed_total[{RATE}]))"},
                unit="ops",
                width=8,
            ),
            Panel(
                "Consumer lag (messages)",
                {"{{group}}": "sum by (service, group) (petitions_consumer_lag)"},
                description="Messages past each consumer group's position. Stays near 0; a growing line is a "
                "consumer that cannot keep up (add an instance) or is stuck (see the alerts).",
                width=8,
            ),
            Panel(
                "Outbox: events waiting for Kafka",
                {"{{service}}": "max by (service) (petitions_outbox_pending)"},
                description="Written with their change in MongoDB, not yet acknowledged by Kafka "
                "(docs/reliability.md).",
                width=8,
            ),
            Panel(
                "Dead letters (last 15 minutes)",
                {"{{service}} {{reason}}": "sum by (service, reason) (increase(petitions_deadlettered_total[15m]))"},
                description="`petitions-deadletters list` shows them.",
                width=8,
            ),
        ],
    ),
    Row(
        "HTTP",
        [
            Panel(
                "Requests per second by status",
                {"{{service}} {{status}}": f"sum by (service, status) (rate(petitions_http_requests_total[{RATE}]))"},
                unit="reqps",
            ),
            Panel(
                "Latency p99 by route",
                {
                    "{{service}} {{route}}": "histogram_quantile(0.99, sum by (service, route, le) "
                    f"(rate(petitions_http_request_seconds_bucket[{RATE}])))"
                },
                unit="s",
            ),
        ],
    ),
    Row(
        "SLA: contact within 6 hours, reply within 5 working days",
        [
            Panel(
                "Running clocks by state",
                {"{{clock}} {{state}}": "max by (clock, state) (petitions_sla_open_clocks)"},
                description="As of the last scan; every sla instance reports the same numbers, hence max.",
            ),
            Panel(
                "Clocks met on time (last 24 hours)",
                {
                    "{{clock}}": 'sum by (clock) (increase(petitions_sla_clocks_met_total{on_time="true"}[1d])) '
                    "/ sum by (clock) (increase(petitions_sla_clocks_met_total[1d]))"
                },
                unit="percentunit",
            ),
            Panel(
                "Breaches per hour",
                {"{{clock}}": "sum by (clock) (increase(petitions_sla_clocks_breached_total[1h]))"},
                width=8,
            ),
            Panel(
                "Oldest running clock",
                {"age": "max(petitions_sla_oldest_open_clock_age_seconds)"},
                unit="s",
                stat=True,
                width=8,
            ),
            Panel(
                "Calendar: provisional deadlines / none",
                {
                    "provisional": "max(petitions_sla_calendar_provisional_open_clocks)",
                    "no calendar": "max(petitions_sla_calendar_uncovered_petitions)",
                },
                description="Running reply deadlines on a provisional calendar (import the year's notice: "
                "petitions-calendar import), and open petitions with none at all (docs/sla.md).",
                stat=True,
                width=8,
            ),
        ],
    ),
    Row(
        "Statistics and hotspots",
        [
            Panel(
                "Hotspot alerts per hour",
                {"{{kind}} {{level}}": "sum by (kind, level) (increase(petitions_stats_alerts_total[1h]))"},
                width=8,
            ),
            Panel(
                "Checkpoint time p99",
                {
                    "{{task}}": "histogram_quantile(0.99, sum by (task, le) "
                    f"(rate(petitions_stats_checkpoint_seconds_bucket[{RATE}])))"
                },
                unit="s",
                width=8,
            ),
            Panel(
                "Detector running / partitions owned",
                {
                    "detector": "sum(petitions_stats_detector_running)",
                    "partitions": "sum(petitions_stats_owned_partitions)",
                },
                description="Exactly one instance runs the hotspot detector; the partitions add up to the topic's.",
                width=8,
            ),
        ],
    ),
    Row(
        "Dependencies",
        [
            Panel(
                "Kafka and MongoDB reachable",
                {"{{service}} {{dependency}}": "min by (service, dependency) (petitions_dependency_up)"},
                description="1 when the service's last readiness check reached it.",
                width=24,
            ),
        ],
    ),
]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": {"uid": "prometheus"}}
        for i, (legend, expr) in enumerate(panel.queries.items())
    ]
    return {
        "id": panel_id,
        "type": "stat" if panel.stat else "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 4 if panel.stat else 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": targets,
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row in ROWS:
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False, "panels": [],
             "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}
        )  # fmt: skip
        y += 1
        x, height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, height = 0, y + height, 0
            built = _panel(panel, len(panels) + 1, x, y)
            panels.append(built)
            x, height = x + panel.width, max(height, built["gridPos"]["h"])
        y += height
    return {
        "uid": "petitions-platform",
        "title": "Petition platform",
        "tags": ["petitions"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
