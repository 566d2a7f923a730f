"""The one in-memory state object of a process: the only thing /health reads.

Components write their facts here as they change (role, term, leader, migrations, service
states, errors); the HTTP handlers only read, so /health never waits on the database.
Nothing here is persisted: it is ephemeral per instance.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from supervisor import logs

# How recently the DB must have answered for /ready to say yes.
DB_FRESH_S = 5.0
LAST_ERRORS_KEPT = 10


@dataclass(slots=True)
class LeaderInfo:
    """What this instance last read about the current leader."""

    instance_id: str | None = None
    term: int | None = None
    heartbeat_at_mono: float | None = None   # local monotonic time the heartbeat was renewed
    expires_at_mono: float | None = None     # local monotonic time the lease expires


@dataclass(slots=True)
class ServiceInfo:
    """A supervised service as /health shows it."""

    state: str = "stopped"   # stopped | running | backoff | failed
    restarts: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class RuntimeState:
    """Process-wide facts shown on /health."""

    instance_id: str
    bot_mode: str
    version: str
    started_at: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    role: str = "follower"
    term: int | None = None
    trust_until_mono: float | None = None
    leader: LeaderInfo = field(default_factory=LeaderInfo)
    last_transition: dict[str, Any] | None = None
    takeovers: int = 0
    migrations: dict[str, Any] = field(
        default_factory=lambda: {"ok": False, "count": 0, "applied": [], "pending": []})
    catalog_models: int = 0
    db_ok_mono: float | None = None
    services: dict[str, ServiceInfo] = field(default_factory=dict)
    cluster: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    last_errors: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=LAST_ERRORS_KEPT))
    stopping: bool = False

    def set_role(self, role: str, *, term: int | None, reason: str) -> None:
        """Record a role transition (and keep the log context in step)."""
        if role != self.role or term != self.term:
            self.last_transition = {
                "at": round(time.time(), 3), "from": self.role, "to": role, "reason": reason,
            }
        self.role = role
        self.term = term
        logs.CONTEXT.role = role
        logs.CONTEXT.term = term

    def mark_db_ok(self) -> None:
        """Note that the database just answered."""
        self.db_ok_mono = time.monotonic()

    def record_error(self, where: str, error: BaseException | str) -> None:
        """Keep a short history of recent errors for /health."""
        self.last_errors.append({"at": round(time.time(), 3), "where": where,
                                 "error": str(error)[:300]})

    def count(self, name: str, by: int = 1) -> None:
        """Increment a /metrics counter."""
        self.counters[name] = self.counters.get(name, 0) + by

    def uptime_s(self) -> float:
        """Return seconds since the process started (monotonic)."""
        return round(time.monotonic() - self.started_mono, 3)

    def db_fresh(self) -> bool:
        """Tell whether the database answered within DB_FRESH_S."""
        return self.db_ok_mono is not None and time.monotonic() - self.db_ok_mono < DB_FRESH_S

    def trust_expired(self) -> bool:
        """Tell whether this instance is leader past its trust window."""
        return (self.role == "leader" and self.trust_until_mono is not None
                and time.monotonic() > self.trust_until_mono)

    def health(self) -> dict[str, Any]:
        """Return the /health document."""
        now = time.monotonic()
        leader = self.leader
        status = "ok"
        if self.stopping:
            status = "stopping"
        elif not self.migrations.get("ok") or self.trust_expired():
            status = "degraded"
        return {
            "status": status,
            "instance_id": self.instance_id,
            "role": self.role,
            "term": self.term,
            "leader": {
                "instance_id": leader.instance_id,
                "term": leader.term,
                "heartbeat_age_s": _age(now, leader.heartbeat_at_mono),
                "lease_expires_in_s": _until(now, leader.expires_at_mono),
            },
            "last_transition": self.last_transition,
            "takeovers": self.takeovers,
            "bot_mode": self.bot_mode,
            "uptime_s": self.uptime_s(),
            "version": self.version,
            "migrations": {k: self.migrations.get(k) for k in
                           ("applied", "count", "pending", "ok")},
            "catalog": {"models": self.catalog_models},
            "db": {"fresh": self.db_fresh(), "last_ok_age_s": _age(now, self.db_ok_mono)},
            "services": {name: {"state": s.state, "restarts": s.restarts}
                         for name, s in self.services.items()},
            "cluster": self.cluster,
            "counters": dict(self.counters),
            "last_errors": list(self.last_errors),
        }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _until(now: float, then: float | None) -> float | None:
    return None if then is None else round(then - now, 3)
