"""What every staff-facing service mounts beside its own blueprint: the audit trail's endpoint, the
rate limits of every staff route (and the audit endpoint's), and /metrics."""

from __future__ import annotations

from flask import Blueprint, Flask

from petition_common import audit_http, ratelimit
from petition_common.audit_log import AuditLog
from petition_common.runtime import ServiceRuntime
from petition_common.web import mount_metrics


def mount(app: Flask, runtime: ServiceRuntime, bp: Blueprint, background: bool) -> AuditLog:
    """Register `bp` with the shared parts; returns the service's audit trail. `background`: start the
    rate limiter's clean-up thread (off in tests that build an app without loops)."""
    app.register_blueprint(bp)
    trail = audit_http.install(app, runtime)
    routes = {**ratelimit.staff_routes(app, bp.name), **audit_http.RATE_LIMITS}
    ratelimit.install(app, runtime, routes, background=background)
    mount_metrics(app, runtime.metrics)
    return trail
