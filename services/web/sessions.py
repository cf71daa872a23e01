"""Server-side staff sessions: the browser holds only a random session id in Flask's signed cookie;
the staff token stays in this process's memory and never reaches a URL, a page or the cookie.

One gunicorn process serves the web pages (threads, not forks), so one in-memory table is every
session there is; a restart logs everyone out, which a development login can live with (the
identity provider of the identity issue replaces this).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

SESSION_TTL_S = 8 * 3600  # one working day


@dataclass(frozen=True)
class StaffSession:
    token: str
    staff_id: str
    name: str
    role: str
    area: str
    town_id: str | None
    # every staff form carries it: a cross-site form cannot post as the logged-in staff member
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = field(default_factory=lambda: time.monotonic() + SESSION_TTL_S)

    def can(self, what: str) -> bool:
        """What the pages offer this role; the services enforce the same rule on every call."""
        return what in CAPABILITIES.get(self.role, ())


# what the pages offer follows petition_kernel.access (a grid leader acts on its grids, a town supervisor
# in its town, the county dispatcher everywhere; cadres and auditors read only); the services decide
CAPABILITIES = {
    "grid_leader": ("queue", "act"),
    "village_cadre": ("queue",),
    "town_supervisor": ("queue", "act", "escalations", "stats"),
    "county_dispatcher": ("queue", "act", "triage", "escalations", "stats"),
    "auditor": ("queue", "escalations", "stats", "audit"),
}


@dataclass(frozen=True)
class LastQueue:
    """What a session's queue listed (routing's ids) and showed (one page of them) last. The queue's
    next load asks sla for the listed orders' clocks, and routing for the shown orders, while routing is
    still naming the orders: the page waits for the slowest of these reads, not for one after the other."""

    listed: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()


class SessionTable:
    """The logged-in staff sessions by id, with what each one's queue showed last (gone with it)."""

    def __init__(self) -> None:
        self._by_id: dict[str, StaffSession] = {}
        self._queues: dict[str, LastQueue] = {}
        self._lock = threading.Lock()

    def open(self, session: StaffSession) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: v for k, v in self._by_id.items() if v.expires > now}
            self._queues = {k: v for k, v in self._queues.items() if k in self._by_id}
            self._by_id[sid] = session
        return sid

    def get(self, sid: str | None) -> StaffSession | None:
        if not sid:
            return None
        found = self._by_id.get(sid)
        if found is None or found.expires <= time.monotonic():
            return None
        return found

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)
            self._queues.pop(sid or "", None)

    def last_queue(self, sid: str) -> LastQueue:
        return self._queues.get(sid) or LastQueue()

    def remember_queue(self, sid: str, seen: LastQueue) -> None:
        with self._lock:
            if sid in self._by_id:  # not for a session closed meanwhile
                self._queues[sid] = seen
