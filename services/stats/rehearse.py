"""Try hotspot rules on the history in Kafka:  python -m services.stats.rehearse [--hotspots FILE]

Reads intake's and routing's topics from the beginning to their current end along the live
detector's path (rebuild.replay_detector: partitions merged in time order, the submitted/assigned
join, duplicates not counted), with the rules of FILE (default: the service's STATS_HOTSPOTS_FILE),
and prints as JSON how many alerts of each kind and level those rules would have raised, in all and
per 30 days of submissions after a warm-up, with the (level, category) pairs that raised the most.
It writes and publishes nothing, so it is safe next to running services; it is how
config/hotspots.yaml is sized to a county's volume (docs/statistics.md). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from petition_common import logs
from petition_common.config import Settings
from petition_kernel.times import parse_time
from services.stats.bootstrap import load_config, partition_count
from services.stats.domain.facts import from_us
from services.stats.domain.hotspot_config import config_from_yaml
from services.stats.hotspot_state import HotspotState
from services.stats.rebuild import Progress, history_consumer, replay_detector


def summarise(state: HotspotState, warm_up: timedelta, busiest: int = 10) -> dict[str, Any]:
    """What the rules raised after the warm-up (by the end of each alert's window)."""
    if not state.observed:
        return {"petitions_observed": 0, "alerts": {}, "per_30_days": {}, "busiest": [], "measured_days": 0.0}
    first, last = from_us(min(state.observed.values())), from_us(state.watermark)
    measured_from = first + warm_up
    measured_days = max((last - measured_from) / timedelta(days=1), 0.0)
    raised = [a["data"] for a in state.pending_alerts]
    counted = [a for a in raised if parse_time(a["window_end"]) >= measured_from]
    by_kind = Counter(f"{a['kind']}/{a['area']['level']}" for a in counted)
    by_pair = Counter((a["area"]["level"], a["category"]) for a in counted)
    per_30 = {k: round(n * 30 / measured_days, 1) for k, n in sorted(by_kind.items())} if measured_days else {}
    return {
        "petitions_observed": len(state.observed),
        "first_submission": first.isoformat(),
        "last_submission": last.isoformat(),
        "measured_days": round(measured_days, 1),
        "alerts_in_warm_up": len(raised) - len(counted),
        "alerts": dict(sorted(by_kind.items())),
        "per_30_days": per_30,
        "busiest": [{"level": lv, "category": c, "alerts": n} for (lv, c), n in by_pair.most_common(busiest)],
        "raised": counted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.stats.rehearse", description=__doc__.split("\n")[0])
    parser.add_argument("--hotspots", type=Path, help="rules to try (default: the service's STATS_HOTSPOTS_FILE)")
    parser.add_argument("--warm-up-days", type=float, default=7.0, help="not counted: the baselines fill up [7]")
    parser.add_argument("--list", action="store_true", help="also print every alert counted")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    settings = Settings.from_env("stats")
    logs.configure("stats", "WARNING")
    config = load_config(settings)
    rules = config.hotspots
    if args.hotspots is not None:
        rules = config_from_yaml(args.hotspots.read_text(encoding="utf-8"), categories=set(config.categories))
    out = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    consumer = history_consumer(settings, config.check_crcs, "rehearse")
    state = HotspotState(rules)
    try:
        replay_detector(consumer, settings, partition_count(settings), state, Progress(out))
    finally:
        consumer.close()
    result = summarise(state, timedelta(days=args.warm_up_days))
    if not args.list:
        result.pop("raised", None)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
