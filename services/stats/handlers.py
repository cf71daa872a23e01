"""The one table from the event types stats counts to what handles them (the consumer loop's handlers).

Stats has no commands: its HTTP side only reads (read/). Every event type it counts goes to the
counter, which applies it to the state of the event's partition (write/counting.py).
"""

from __future__ import annotations

from collections.abc import Callable

from petition_common.consumer import MessageMeta
from petition_common.envelope import Event
from services.stats.domain.changes import HANDLED_TYPES
from services.stats.write.counting import PartitionCounter

Handlers = dict[str, Callable[[Event, MessageMeta], str | None]]


def handlers(counter: PartitionCounter) -> Handlers:
    return dict.fromkeys(sorted(HANDLED_TYPES), counter.apply)
