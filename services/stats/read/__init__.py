"""The read side of stats: what the HTTP API answers from.

`service` (StatsService: the endpoints' use cases; TableLoader: the in-memory table refreshed from the
newest checkpoints), `table` (the columnar table), `queries` (answers computed from it, rates from
libs/petition_kernel/rates.py) and `params` (query parameters to a query, or 400 with field messages).
It reads what the write side stores (checkpoints, the alerts store) and writes nothing.
"""
