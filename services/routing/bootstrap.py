"""The only wiring of routing: configuration, stores, registry holder, area index, service and handlers.

Settings (Settings.extra, from the environment; defaults in brackets):
- ROUTING_DISPATCHER_ID [S000001]: the county dispatcher whose triage queue takes what no grid takes;
- ROUTING_FEEDBACK_WINDOW_HOURS [168]: how long a reply waits for the citizen's rating before the
  timeout scanner closes the order;
- ROUTING_TIMEOUT_SCAN_S [60]: how often the timeout scanner looks for such orders (it takes them from
  the `timeouts` queue an hour at a time, so they close up to about two hours after the window);
- ROUTING_FAKE_CLOCK_FILE: a fake clock for tests and the benchmark (petition_common.timesource).
The departments come from config/categories.yaml.

The HTTP app passes the runtime's database and its store factory (whose stores publish through the
runtime's producer and flusher thread); a fast test passes `petition_common.fakes.MemoryDatabase()`,
`RecordingPublisher()` and `ManualClock(...)` and gets a complete service with no network.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from petition_common import mongo
from petition_common.aggregates import Projection
from petition_common.config import Settings
from petition_common.due import DueQueue
from petition_common.runtime import store_factory
from petition_common.store import AggregateStore, Publisher
from petition_common.timesource import clock_from_env
from petition_kernel.taxonomy import load_categories
from services.routing import domain
from services.routing.area_index import AreaIndex
from services.routing.handlers import Handlers, handlers
from services.routing.registry_holder import RegistryHolder
from services.routing.service import LIST_LOAD_THREADS, RoutingConfig, RoutingService

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RoutingParts:
    service: RoutingService
    handlers: Handlers
    orders: AggregateStore  # the store whose outbox the relay sweeps
    config: RoutingConfig


def load_departments(path: str | Path) -> dict[str, str]:
    """category code → department, from categories.yaml; the shared taxonomy parser checks the file
    (a TaxonomyError, a ValueError, names the bad key)."""
    return {code: category.department for code, category in load_categories(path).items()}


def load_config(settings: Settings) -> RoutingConfig:
    extra = settings.extra
    return RoutingConfig(
        departments=load_departments(settings.config_dir / "categories.yaml"),
        dispatcher_id=extra.get("ROUTING_DISPATCHER_ID", domain.DEFAULT_DISPATCHER_ID),
        feedback_window=timedelta(hours=float(extra.get("ROUTING_FEEDBACK_WINDOW_HOURS", 168))),
        timeout_scan_s=float(extra.get("ROUTING_TIMEOUT_SCAN_S", 60)),
    )


def bootstrap(
    settings: Settings,
    *,
    db: Any = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
    stores: Callable[[str], AggregateStore] | None = None,
    config: RoutingConfig | None = None,
) -> RoutingParts:
    """Routing, wired. `db`: a pymongo Database (or the fakes' MemoryDatabase), by default the one the
    settings name; `publisher`: where committed events go, by default Kafka; `clock`: by default the
    real one or ROUTING_FAKE_CLOCK_FILE's; `stores`: how an aggregate store is built by name, by
    default on `db`, publishing through `publisher` (so that is unused when `stores` is given) and
    checking events against the contract;
    `config`: by default from the settings and config/categories.yaml."""
    if db is None:
        db = mongo.connect(settings)[settings.database]
    if stores is None:
        stores = store_factory(settings, db, publisher)

    clock = clock or clock_from_env("routing", settings.extra)
    config = config or load_config(settings)
    orders = stores("workorders")
    loader = ThreadPoolExecutor(LIST_LOAD_THREADS, thread_name_prefix="list-load")
    service = RoutingService(
        orders,
        Projection(db["open_orders"], orders),
        AreaIndex(AggregateStore(db, "area_index"), db["area_index_meta"], loader=loader),
        RegistryHolder(stores("registry")),
        config,
        loader=loader,
        timeouts=DueQueue(db["timeouts"]),
        clock=clock,
    )
    return RoutingParts(service=service, handlers=handlers(service), orders=orders, config=config)
