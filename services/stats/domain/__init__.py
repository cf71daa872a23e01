"""Pure domain logic of the statistics service: rates with Wilson intervals and hotspot detection.

Nothing in this package does I/O; the service layer reads files, Kafka and MongoDB and hands plain
values in. See `rates` (response, closure and satisfaction rates, ranking) and `hotspots`
(concentrated and emerging hotspot alerts).
"""
