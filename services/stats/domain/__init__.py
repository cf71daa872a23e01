"""Pure domain logic of the statistics service: counts, rates with Wilson intervals, hotspot detection.

Nothing in this package does I/O; the service layer reads files, Kafka and MongoDB and hands plain
values in. See `facts` (a petition's facts, merged order-free, and its contribution to the counters),
`changes` (events to facts), `periods` (days, weeks, months of the county), `rates` (response,
closure and satisfaction rates, ranking), `hotspots` (concentrated and emerging hotspot alerts) and
`time_merge` (partitions merged in time order for the detector).
"""
