"""SLA supervision (督办): the pure rules, with no I/O beyond the explicit config-file loaders.

The rules, for operators to check against county regulations
------------------------------------------------------------
Every petition has two clocks, both starting when it is submitted.

* Contact (联系): a handler must reach the citizen within 6 hours (calendar hours: nights, weekends and
  holidays count). Categories may set their own limit in ``config/sla-policy.yaml``; as shipped,
  ``emergency`` (紧急求助) is 2 hours and ``utilities`` (水电气暖) 24 hours. The first recorded contact
  meets the clock.
* Reply (答复): a handler must give a formal reply within 5 working days. The day of submission is not
  counted, whatever the hour; the deadline is 24:00 (Beijing time) of the 5th working day after it. Working
  days are Monday to Friday plus the make-up working days (调休上班) announced by the State Council, minus
  the public holidays it announces. So a petition submitted on Friday afternoon before an ordinary weekend
  is due by the end of the next Friday; one submitted on a holiday counts the first working day after the
  holiday as day 1. This is how the Civil Code counts periods (民法典 第二百零一条、第二百零三条).
  A reopened petition (重办) gets a fresh reply clock from the moment it is reopened; its contact clock
  is not restarted. Transferring a petition to another grid or department does not restart any clock.
* Pauses (暂停计时): a handler may pause the reply clock when the citizen cannot be reached, a third party
  must act first, or the citizen asks to wait. The deadline moves later by the paused time, but by no more
  than 5 calendar days in total per petition; beyond that the clock runs again even if still paused.
* Withdrawal (撤回) stops both clocks; closure (办结) stops them too, until a reopening.
* Warning and escalation: when 80% of a clock's time is used, the grid (village cadre) is warned. At the
  deadline the breach is reported to the grid (level 1); 24 hours after the deadline, if still not met,
  to the town (level 2); 72 hours after it, to the county (level 3). A breach found late (say, after an
  outage) is still reported, with the overdue time counted from the true deadline.

All these numbers are settings in ``config/sla-policy.yaml``; the service refuses to start if that file is
invalid and names the bad key.

The working-day calendar
------------------------
Holidays and make-up working days come from the ``chinese_calendar`` library (1.11.0 knows 2004-2026;
2024, 2025 and 2026 are checked day by day against the State Council notices by the unit tests), corrected
or extended by ``config/calendar/<year>.yaml``. When the State Council publishes next year's notice
(usually in November), an operator adds that year's file: ``holidays:`` lists every day off of the year,
weekend days inside a holiday range included, and ``workdays:`` every make-up working day, each
``YYYY-MM-DD``, with a comment naming the notice; see ``config/calendar/README.md``. A file replaces the
library's data for its year. A year that neither the library nor a file covers is refused with an error
naming the missing file: the service never assumes a year has no holidays, and reply deadlines that reach
into such a year cannot be computed until the file is added.

Modules: ``tz`` (time zones), ``calendar`` (working days), ``deadlines`` (the rules above, one function
each), ``policy`` (the settings file), ``record`` (a petition's facts, built from events in any order) and
``clock`` (the clocks derived from those facts and the notices they call for).
"""
