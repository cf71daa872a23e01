"""Operator's repair of the `open_clocks` projection: `python -m services.sla.repair audit|rebuild`.

- `audit`: re-project every document that is older than its petition's record (the running service
  also does this every SLA_AUDIT_INTERVAL_S).
- `rebuild`: re-project every petition that has a record, e.g. after the collection was dropped. It
  reads the whole `clocks_commits` collection once, so run it when the load is low.
Both are safe while the service runs: a projection write re-checks the record's newest version.
"""

from __future__ import annotations

import sys

from petition_common import logs
from petition_common.config import Settings
from petition_common.runtime import ServiceRuntime
from services.sla.bootstrap import bootstrap


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["audit"], ["rebuild"]):
        print(__doc__, file=sys.stderr)
        return 2
    settings = Settings.from_env("sla")
    logs.configure("sla", settings.log_level)
    runtime = ServiceRuntime(settings)
    try:
        parts = bootstrap(settings, db=runtime.db, stores=runtime.store)
        count = parts.handlers[args[0]]()
        print(f"{args[0]}: {count} petition(s) re-projected")
    finally:
        runtime.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
