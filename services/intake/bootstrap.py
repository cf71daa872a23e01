"""The one place intake is wired: configuration, stores, clock, keys, the service and its handlers.

`create_app` (app.py) calls it with the runtime's database, producer and store factory (outbox
flusher, contract validation); the fast tests call it with `petition_common.fakes`
(`bootstrap(Settings(service="intake"), db=MemoryDatabase(), publisher=RecordingPublisher(),
clock=ManualClock(...))`) and get a complete service with no network.

Settings (environment, via petition_common.config; defaults in brackets):
- INTAKE_ID_PREFIX [JZ]: the petition numbers' prefix;
- INTAKE_RETENTION_DAYS [1095]: how long a citizen's contact details are kept after their petition ends;
- INTAKE_RETENTION_INTERVAL_S [3600]: how often the erasure job runs;
- INTAKE_FAKE_CLOCK_FILE: tests only (petition_common.timesource).
Categories come from config/categories.yaml, the server key from SECRET_KEYS, the contact keys from
CONTACT_KEYS (refused outside development when they are the public development key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from petition_common import mongo
from petition_common.config import Settings
from petition_common.credentials import Signer
from petition_common.due import DueQueue
from petition_common.runtime import store_factory
from petition_common.store import AggregateStore, Publisher
from petition_common.timesource import Clock, clock_from_env
from petition_kernel.taxonomy import load_categories
from services.intake.codes import Codes
from services.intake.contacts import ContactCipher, ContactKeys, ContactStore
from services.intake.handlers import Handlers, handlers
from services.intake.ids import PetitionNumbers
from services.intake.metrics import RetentionMetrics
from services.intake.retention import DEFAULT_RETENTION_DAYS, Retention, RetentionNotes
from services.intake.service import IntakeService


@dataclass(frozen=True)
class IntakeConfig:
    categories: frozenset[str]
    id_prefix: str = "JZ"
    retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS)
    retention_interval_s: float = 3600.0


def load_config(settings: Settings) -> IntakeConfig:
    extra = settings.extra
    return IntakeConfig(
        categories=frozenset(load_categories(settings.config_dir / "categories.yaml")),
        id_prefix=extra.get("INTAKE_ID_PREFIX", "JZ"),
        retention=timedelta(days=float(extra.get("INTAKE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))),
        retention_interval_s=float(extra.get("INTAKE_RETENTION_INTERVAL_S", 3600)),
    )


@dataclass(frozen=True)
class IntakeParts:
    config: IntakeConfig
    service: IntakeService
    handlers: Handlers
    retention: Retention
    petitions: AggregateStore  # the store whose outbox the relay sweeps
    clock: Clock


def bootstrap(
    settings: Settings,
    *,
    db: Any = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
    stores: Callable[[str], AggregateStore] | None = None,
    registry: CollectorRegistry | None = None,
) -> IntakeParts:
    """Intake built on `db` (a pymongo Database, or a fakes.MemoryDatabase; default: connect as
    `settings` say).

    The aggregate stores come from `stores` (the runtime's, with its outbox flusher) or are built on
    `db`, publishing through `publisher` (default: the Kafka producer) and validating every event
    against the contract. The clock defaults to the real one, or the fake clock file tests name.
    """
    config = load_config(settings)
    if db is None:
        db = mongo.database(mongo.connect(settings), settings)
    if stores is None:
        stores = store_factory(settings, db, publisher)

    clock = clock if clock is not None else clock_from_env("intake", settings.extra)
    petitions = stores("petitions")
    contacts = ContactStore(db["contacts"], ContactCipher(ContactKeys.from_settings(settings)))
    # by the day: a petition is erased within two days after its three years, one read a day passed
    notes = RetentionNotes(
        DueQueue(db["retention_queue"], slot=timedelta(days=1)), db["retention"], config.retention, clock
    )
    service = IntakeService(
        db=db,
        petitions=petitions,
        duplicates=stores("duplicates"),
        contacts=contacts,
        numbers=PetitionNumbers(db["petition_numbers"], config.id_prefix),
        notes=notes,
        codes=Codes(Signer(settings.secret_keys)),
        clock=clock,
    )
    retention = Retention(
        notes,
        db,
        petitions,
        contacts,
        service.erase_contacts,
        config.retention,
        clock,
        RetentionMetrics(registry if registry is not None else CollectorRegistry()),
    )
    return IntakeParts(config, service, handlers(service), retention, petitions, clock)
