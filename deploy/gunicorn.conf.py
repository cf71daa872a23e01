"""gunicorn settings shared by the four services (the bind address comes on the command line).

One worker process with threads: the HTTP handlers and the service's background loops (Kafka
consumer, outbox relay, scanners) share one process, so Prometheus needs no multiprocess mode
and each instance is exactly one Kafka consumer-group member. Scale out by running more
instances (containers), not more workers.
"""

import os

workers = 1
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# SIGTERM: stop accepting, finish requests, then worker_exit stops the loops (which commit offsets)
graceful_timeout = 25
timeout = 60
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")


def worker_exit(server, worker):
    from petition_common.runtime import shutdown_all

    shutdown_all()
