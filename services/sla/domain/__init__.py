"""sla's own domain: what only the sla service does with the SLA rules, pure (no I/O, no clock read).

The rules themselves (the working-day calendar, the policy, a petition's record of facts and the
clocks derived from it) are shared with stats and live in `petition_kernel.sla`. What is sla's alone:

- `config`: the rules one instance applies (policy, calendar, how long a breach stays listed);
- `following`: a petition's record following its events (a redelivery changes nothing), the clocks
  an event met;
- `clocks`: a record's clocks as sla shows them (a calendar gap tolerated, escalation levels, the
  pause going on);
- `open_clocks`: the `open_clocks` read model (which petitions the scanner watches, and when it looks
  again) and the scanner's gauges;
- `notices`: the notices a record calls for, and the one commit (state and event) that emits each one
  and each `sla.deadline_changed`;
- `calendar_change`: whether the calendar changed since the deadlines were last derived, and which years;
- `overdue_list`: `GET /v1/sla/overdue` (who sees which overdue clock, filters, keyset paging);
- `petition_clocks`: `GET /v1/sla/petitions/{id}` (every clock of one petition as of now).
"""
