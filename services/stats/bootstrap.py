"""Wiring shared by the HTTP app and the rebuild command: configuration, the partition count, the context.

Settings (environment, via petition_common.config; defaults in brackets):
- STATS_CHECKPOINT_INTERVAL_S [2]: at most this long between a change and its checkpoint
  (the query side sees changes once checkpointed);
- STATS_REFRESH_INTERVAL_S [1]: how often an instance looks for new checkpoints to answer from;
- STATS_HOTSPOTS_FILE [config/hotspots.yaml]: hotspot rules;
- STATS_GC_INTERVAL_S [300]: how often replaced checkpoint blocks are deleted (by _id, one by one)
  and the collections of generations replaced by a rebuild are dropped;
- STATS_SWEEP_INTERVAL_S [86400]: how often the owner of partition 0 deletes blocks that crashed
  or fenced writers left behind (a full scan of the blocks collection);
- STATS_CHECK_CRCS [auto]: verify Kafka record CRCs. kafka-python computes CRC32C in pure Python
  (~100 us a record, most of a catch-up's time) unless the `crc32c` C package is installed; "auto"
  checks only when it is. The broker checks every batch's CRC when it is produced.
The SLA policy (config/sla-policy.yaml) and working-day calendar (CALENDAR_DIR, default
config/calendar/) are the sla service's own files: stats decides "on time" with the same rules, and
reads the calendar again when sla says a deadline changed (sla.deadline_changed) or the files change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer

from petition_common.config import Settings
from petition_common.runtime import ServiceRuntime
from petition_kernel.calendar import CalendarDirectory
from petition_kernel.sla.policy import load_policy
from petition_kernel.taxonomy import Category, load_categories
from petition_kernel.times import local_date, utc_now
from services.stats.alerts import AlertPublisher
from services.stats.domain.facts import SlaRules
from services.stats.domain.hotspot_config import HotspotConfig, config_from_yaml
from services.stats.generations import Generations
from services.stats.metrics import StatsMetrics
from services.stats.worker import PETITION_TOPICS, Context


@dataclass(frozen=True)
class StatsConfig:
    rules: SlaRules
    hotspots: HotspotConfig
    categories: dict[str, Category]
    checkpoint_interval_s: float = 2.0
    refresh_interval_s: float = 1.0
    sweep_interval_s: float = 86400.0
    gc_interval_s: float = 300.0
    check_crcs: bool = True


def load_config(settings: Settings) -> StatsConfig:
    extra = settings.extra
    categories = load_categories(settings.config_dir / "categories.yaml")
    calendar_dir = settings.calendar_dir if settings.calendar_dir.is_dir() else None
    calendar_files = CalendarDirectory(calendar_dir, today=lambda: local_date(utc_now()))
    rules = SlaRules(
        policy=load_policy(settings.config_dir / "sla-policy.yaml", set(categories)),
        calendar=calendar_files.calendar,
        calendar_files=calendar_files,
    )
    hotspots_file = Path(extra.get("STATS_HOTSPOTS_FILE", str(settings.config_dir / "hotspots.yaml")))
    hotspots = config_from_yaml(hotspots_file.read_text(encoding="utf-8"), categories=set(categories))
    return StatsConfig(
        rules=rules,
        hotspots=hotspots,
        categories=categories,
        checkpoint_interval_s=float(extra.get("STATS_CHECKPOINT_INTERVAL_S", 2.0)),
        refresh_interval_s=float(extra.get("STATS_REFRESH_INTERVAL_S", 1.0)),
        sweep_interval_s=float(extra.get("STATS_SWEEP_INTERVAL_S", 86400.0)),
        gc_interval_s=float(extra.get("STATS_GC_INTERVAL_S", 300.0)),
        check_crcs=_check_crcs(extra.get("STATS_CHECK_CRCS", "auto")),
    )


def _check_crcs(setting: str) -> bool:
    if setting.lower() in ("1", "true", "yes"):
        return True
    if setting.lower() in ("0", "false", "no"):
        return False
    from kafka.record import util

    return util.crc32c_c is not None


class PartitionMismatch(RuntimeError):
    """The petition topics do not have the same number of partitions: per-partition state would be wrong."""


def partition_count(settings: Settings) -> int:
    """The petition topics' common partition count; refuses topics that differ (events of one
    petition would then not share a partition number, and per-partition state would be wrong)."""
    consumer = KafkaConsumer(
        **settings.kafka_client(),
        client_id=f"petitions-{settings.service}-metadata",
        request_timeout_ms=int(settings.dependency_timeout_s * 1000) + 10_000,
    )
    try:
        counts = {}
        for logical in PETITION_TOPICS:
            partitions = consumer.partitions_for_topic(settings.topic(logical))
            if not partitions:
                raise RuntimeError(f"topic {settings.topic(logical)} does not exist yet")
            counts[logical] = len(partitions)
    finally:
        consumer.close()
    if len(set(counts.values())) != 1:
        raise PartitionMismatch(f"the petition topics must have the same number of partitions, found {counts}")
    return next(iter(counts.values()))


def build_context(runtime: ServiceRuntime, config: StatsConfig, metrics: StatsMetrics) -> Context:
    generations = Generations(runtime.store("stats_generation"))
    alerts = AlertPublisher(runtime.store("alerts"), metrics)
    return Context(
        settings=runtime.settings,
        db=runtime.db,
        rules=config.rules,
        hotspots=config.hotspots,
        generations=generations,
        publisher=runtime.publisher,
        platform=runtime.metrics,
        metrics=metrics,
        alerts=alerts,
        checkpoint_interval_s=config.checkpoint_interval_s,
        check_crcs=config.check_crcs,
    )
