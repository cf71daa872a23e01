"""Pure domain logic of the statistics service: counts and hotspot detection.

Nothing in this package does I/O; the service layer reads files, Kafka and MongoDB and hands plain
values in. See `facts` (a petition's facts, merged order-free, and its contribution to the counters),
`changes` (events to facts), `periods` (days, weeks, months of the county), `hotspots`
(concentrated and emerging hotspot alerts), `area_history` (the detector's memory of one area and
category), `hotspot_config` (its rules) and `time_merge` (partitions merged in time order for the
detector). The rates are the kernel's (libs/petition_kernel/rates.py).
"""
