"""Repair routing's area index from open_orders:  python -m services.routing.reindex

Safe while routing runs (area_index.py says why). Use it if an instance died between committing a
staff action and indexing it, or after restoring the database from a backup.
"""

from __future__ import annotations

import sys

from petition_common import logs
from petition_common.config import Settings
from petition_common.mongo import connect, database
from services.routing.bootstrap import bootstrap
from services.routing.service import RoutingConfig


def main() -> int:
    settings = Settings.from_env("routing")
    logs.configure("routing", "WARNING")
    client = connect(settings)
    try:
        db = database(client, settings)
        # only the orders are read and the index written: no departments needed, nothing is published
        service = bootstrap(settings, db=db, config=RoutingConfig({})).service
        print(f"indexed {service.rebuild_area_index()} open work orders", file=sys.stderr)
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
