"""The shared kernel: the county's rules that more than one service applies, each in one place.

Pure code, no I/O beyond explicit config-file loaders, no import of any service:

- ``times``: instants (always UTC, aware; one written form, RFC 3339 UTC with milliseconds) and
  Beijing time (Asia/Shanghai), the county's civil time.
- ``calendar`` and ``calendar_notice``: working days, and the State Council's notices that define them.
- ``sla``: the SLA policy and the clocks it derives from a petition's events (sla supervises them,
  stats counts them).
- ``taxonomy``: the one parser of config/categories.yaml: codes, names, departments, shares.
- ``access``: who may read and act on what (the one authorisation rule).
- ``rates``: the definitions of the rates the county reports (三率) and how areas are ranked.
"""
