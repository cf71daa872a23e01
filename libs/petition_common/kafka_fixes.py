"""A fix to kafka-python 3.0's consumer-group join, applied by the consumer loop before it builds a consumer.

kafka-python 3.0 (checked up to 3.0.12, the newest) drives JoinGroup and SyncGroup as one task that
several short `poll()` calls await in turn, and each poll first asks `need_rejoin()`. When a rejoin
is started by a metadata change (a topic's partitions became known: typical right after the topics
were created, or after a broker restart) rather than by the coordinator, `need_rejoin()` says yes
only until the leader has computed the new assignment. If the poll's timeout ends after that and
before the SyncGroup answer, the next poll sees "no rejoin needed" and never awaits the task again:
its assignment is never applied, and the member sits in the group with no partitions, no error and
nothing logged, until some other rebalance. Seen as stats counting nothing for minutes in CI
(tests/faults/test_cluster.py, tests/e2e/test_personal_data.py) and reproduced here, where the stats log
showed its only member claiming no partitions. Measured on the local broker, members subscribing right
after their topics were created: with 300 ms polls 4 of 120 had no partition after 30 s; with 20 ms polls
3 to 9 of 16 in each of five runs (tests/integration/test_consumer_group_join.py); with the fix none.

The fix: a join task that has not been awaited to its end means a rejoin is still needed. If the task
had already finished, the library then starts a fresh join (its own behaviour when a task finishes
between two polls), so the group always converges.
"""

from __future__ import annotations

from typing import Any

from kafka.coordinator.consumer import ConsumerCoordinator

_library_need_rejoin = ConsumerCoordinator.need_rejoin


def _need_rejoin(self: Any) -> bool:
    return bool(_library_need_rejoin(self)) or getattr(self, "_join_task", None) is not None


def apply() -> None:
    """Patch ConsumerCoordinator.need_rejoin (idempotent); only where the join runs as a task (3.x)."""
    if hasattr(ConsumerCoordinator, "join_group_async") and ConsumerCoordinator.need_rejoin is not _need_rejoin:
        ConsumerCoordinator.need_rejoin = _need_rejoin  # type: ignore[method-assign]
