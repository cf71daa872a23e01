"""stats (统计分析 + 自动提醒): counts and rates of petition handling, rankings, and hotspot alerts.

HTTP turns query parameters into a query and hands it to the service; the background threads are
the partition consumer, the hotspot detector (on the owner of partition 0), the read-model
refresher, the outbox relay of the alerts store and a rare sweep of unreachable state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from petition_common import logs, staff_api
from petition_common.auth import Staff, staff_directory
from petition_common.config import Settings
from petition_common.runtime import ServiceRuntime
from petition_common.topic_config import TopicMismatch
from petition_common.web import ApiError, create_base_app, json_response, require_staff
from services.stats.bootstrap import PartitionMismatch, build_context, load_config, partition_count
from services.stats.handlers import handlers
from services.stats.metrics import StatsMetrics
from services.stats.read import params
from services.stats.read.queries import OutOfScope
from services.stats.read.service import StatsService, TableLoader
from services.stats.write.alerts import AlertLog
from services.stats.write.checkpoints import collect, drop_earlier_generations
from services.stats.write.counting import PartitionCounter
from services.stats.write.detector import HotspotWorker

bp = Blueprint("stats", __name__)
log = logging.getLogger(__name__)


def _service() -> StatsService:
    return current_app.extensions["stats"]


def _answer(parse: Callable[..., Any], run: Callable[[Any, Staff], dict[str, Any]]) -> Response:
    staff = require_staff()
    try:
        query = parse(request.args.to_dict(flat=False), current_app.extensions["categories"])
    except params.InvalidQuery as exc:
        raise ApiError(400, "invalid_query", "the query has invalid parameters", exc.fields) from exc
    try:
        return json_response(run(query, staff))
    except OutOfScope as exc:
        raise ApiError(404, "not_found", "no such area for this token") from exc


@bp.get("/v1/stats/summary")
def summary() -> Response:
    return _answer(params.parse_summary, _service().summary)


@bp.get("/v1/stats/breakdown")
def breakdown() -> Response:
    return _answer(params.parse_breakdown, _service().breakdown)


@bp.get("/v1/stats/timeseries")
def timeseries() -> Response:
    return _answer(params.parse_timeseries, _service().timeseries)


@bp.get("/v1/stats/ranking")
def ranking() -> Response:
    return _answer(params.parse_ranking, _service().ranking)


@bp.get("/v1/alerts")
def alerts() -> Response:
    return _answer(params.parse_alerts, _service().alerts)


@bp.get("/v1/stats/status")
def status() -> Response:
    require_staff()
    return json_response(_service().status())


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("stats")
    logs.configure("stats", settings.log_level, settings.kafka_log_level)
    runtime = ServiceRuntime(settings)
    config = load_config(settings)
    metrics = StatsMetrics(runtime.metrics.registry)
    ctx = build_context(runtime, config, metrics)
    ctx.gaps.on_gap = metrics.calendar_gaps.inc
    partitions = _Partitions(settings)
    loader = TableLoader(runtime.db, ctx.generations, partitions.get, metrics)
    service = StatsService(loader, AlertLog(ctx.alerts.store), {c: cat.name for c, cat in config.categories.items()})
    app = create_base_app("stats", runtime.metrics, runtime.checks())
    app.extensions.update(
        runtime=runtime,
        stats=service,
        context=ctx,
        categories=set(config.categories),
        tokens=staff_directory(settings),
    )
    staff_api.mount(app, runtime, bp, background=start_background)
    if start_background:
        _start_background(runtime, ctx, config, partitions, loader)
    return app


class _Partitions:
    """The petition topics' partition count, read from Kafka once it answers."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.count: int | None = None
        self._lock = threading.Lock()

    def get(self) -> int:
        with self._lock:
            if self.count is None:
                self.count = partition_count(self.settings)
            return self.count


def _start_background(
    runtime: ServiceRuntime, ctx: Any, config: Any, partitions: _Partitions, loader: TableLoader
) -> None:
    def consume() -> None:
        count = None
        while count is None and not runtime.stop.is_set():  # wait for the broker instead of crashing
            try:
                runtime.ensure_topics()
                count = partitions.get()
            except (PartitionMismatch, TopicMismatch):
                raise  # the loop stops and readiness answers 503: an operator must fix the topics
            except Exception as exc:
                log.warning("waiting for Kafka", extra={"error": repr(exc)})
                runtime.stop.wait(2)
        if count is None:
            return
        hotspots = HotspotWorker(ctx, count, crashed=runtime.crashed.append)
        counter = PartitionCounter(ctx, runtime.stop, on_partition_zero=hotspots.set_owner)
        runtime.start_periodic("stats-sweep", config.sweep_interval_s, lambda: hotspots.running and hotspots.sweep())

        def gc() -> None:
            collect([*counter.stores(), *hotspots.stores()])
            drop_earlier_generations(runtime.db, ctx.generations.current())

        runtime.start_periodic("stats-gc", config.gc_interval_s, gc)
        try:
            counter.run(handlers(counter))
        finally:
            hotspots.set_owner(False)

    runtime.start_thread("stats-consumer", consume)
    runtime.start_periodic("stats-refresh", config.refresh_interval_s, loader.refresh)
    # a new calendar file, or a new year's provisional calendar, without a restart
    runtime.start_periodic("stats-calendar", 60.0, config.rules.refresh_calendar)
    runtime.start_relay([ctx.alerts.store])
