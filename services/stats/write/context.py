"""What the write side's workers (the counter, the detector, the rebuild) share."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymongo.database import Database

from petition_common.config import Settings
from petition_common.contract import ContractValidator
from petition_common.kafka_io import EventPublisher
from petition_common.metrics import PlatformMetrics
from services.stats.domain.facts import CalendarGaps, SlaRules
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.generations import Generations
from services.stats.metrics import StatsMetrics
from services.stats.write.alerts import AlertPublisher


@dataclass
class Context:
    """Configuration, clients and metrics of the write side."""

    settings: Settings
    db: Database
    rules: SlaRules
    hotspots: HotspotConfig
    generations: Generations
    publisher: EventPublisher
    validator: ContractValidator
    platform: PlatformMetrics
    metrics: StatsMetrics
    alerts: AlertPublisher
    checkpoint_interval_s: float = 2.0
    check_crcs: bool = True
    gaps: CalendarGaps = field(default_factory=CalendarGaps)

    def topic(self, logical: str) -> str:
        return self.settings.topic(logical)
