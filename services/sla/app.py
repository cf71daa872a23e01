"""sla: HTTP API and background loops (filled in by its own issue; the skeleton serves health,
readiness and metrics so that the whole platform can be started and monitored)."""

from __future__ import annotations

from flask import Flask

from petition_common import logs
from petition_common.config import Settings
from petition_common.runtime import ServiceRuntime
from petition_common.web import create_base_app, mount_metrics


def create_app(settings: Settings | None = None, start_background: bool = True) -> Flask:
    settings = settings or Settings.from_env("sla")
    logs.configure("sla", settings.log_level)
    runtime = ServiceRuntime(settings)
    app = create_base_app("sla", runtime.metrics, runtime.checks())
    app.extensions["runtime"] = runtime
    mount_metrics(app, runtime.metrics)
    if start_background:
        runtime.start_thread("topics", runtime.ensure_topics)
    return app
