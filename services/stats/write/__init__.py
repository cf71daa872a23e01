"""The write side of stats: events in, checkpointed counts and hotspot alerts out.

`counting` (the partition owner on the shared consumer loop: each owned partition number's state,
applied exactly once and checkpointed), `partition_state` (that state: facts and cells in blocks),
`checkpoints` (the fenced, insert-only checkpoint chains), `detector` and `detector_state` (the
hotspot detector on the owner of partition 0, and its checkpointed state), `alerts` (the alerts
store, publishing each alert once), `records` (what stats reads from Kafka, judged the same way live
and in a rebuild) and `context` (what these share). The rebuild (services/stats/rebuild.py) replays
the topics through the same pieces.
"""
