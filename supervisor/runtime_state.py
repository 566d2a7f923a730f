"""The one in-memory state object of a process: the only thing /health reads.

Components write their facts here as they change (role, term, leader, migrations, service
states, errors); the HTTP handlers only read, so /health never waits on the database.
Nothing here is persisted: it is ephemeral per instance.

Errors are kept as classes and counts per place (`record_error`): exception text can carry
user content (chat ids, message text, SQL parameters), so it goes to the logs only.

Serving rule (`problems()`): this instance can serve when its migrations are applied and the
database answered within DB_DOWN_GRACE_S; a leader must also be inside its trust window.
/health answers 503 while any of these fails, 200 otherwise (a follower that serves is healthy).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry

from supervisor import logs
from supervisor.metrics import registry_for

logger = logging.getLogger(__name__)

# How recently the DB must have answered for /ready to say yes.
DB_FRESH_S = 5.0
# How long the DB may stay silent before /health says this instance cannot serve: longer than
# a restart of PostgreSQL or a failover of a managed database, so a blip does not flap /health.
DB_DOWN_GRACE_S = 15.0
# Distinct (place, error class) pairs shown on /health; the oldest is dropped beyond this.
LAST_ERRORS_KEPT = 20


class Role(StrEnum):
    """This instance's part in the election (/health, logs, `instances.role`)."""

    FOLLOWER = "follower"     # not leading; serves /health and webhook deliveries
    CANDIDATE = "candidate"   # waiting for the leader lock
    LEADER = "leader"         # holds the lock and a current term
    DEMOTING = "demoting"     # leadership ended; leader services are stopping
    STOPPED = "stopped"       # exited cleanly (written by mark_stopped only)


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
    last_error: str | None = None   # the class of the last crash, never its text


@dataclass(slots=True)
class RuntimeState:
    """Process-wide facts shown on /health."""

    instance_id: str
    bot_mode: str
    version: str
    started_at: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    role: Role = Role.FOLLOWER
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
    # (place, error class) -> {"where", "error", "count", "last_at"}
    errors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    db_unreachable: bool = False
    stopping: bool = False
    # The leader's last audit of the money and job invariants: ok, violations, rules, at.
    invariants: dict[str, Any] | None = None
    metrics: CollectorRegistry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.metrics = registry_for(self)

    def set_role(self, role: Role, *, term: int | None, reason: str) -> None:
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
        if self.db_unreachable:
            self.db_unreachable = False
            logger.info("db_reachable")

    def mark_db_unreachable(self, where: str, error: BaseException) -> None:
        """Note a failed database call; log only when the database was reachable until now."""
        self.record_error(where, error)
        if not self.db_unreachable:
            self.db_unreachable = True
            logger.error("db_unreachable", extra={"where": where, "error": str(error)})

    def record_error(self, where: str, error: BaseException) -> None:
        """Count an error by place and class for /health (its text belongs in the logs)."""
        kind = type(error).__name__
        entry = self.errors.pop((where, kind), None) or {"where": where, "error": kind,
                                                          "count": 0}
        entry["count"] += 1
        entry["last_at"] = round(time.time(), 3)
        self.errors[(where, kind)] = entry  # re-inserted: the dict stays ordered by recency
        if len(self.errors) > LAST_ERRORS_KEPT:
            del self.errors[next(iter(self.errors))]
        if where in self.services:
            self.services[where].last_error = kind

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
        return (self.role == Role.LEADER and self.trust_until_mono is not None
                and time.monotonic() > self.trust_until_mono)

    def problems(self) -> list[str]:
        """Return why this instance cannot serve (empty: it can); the /health 503 rule."""
        problems = []
        if not self.migrations.get("ok"):
            problems.append("migrations not applied")
        if (self.db_ok_mono is None
                or time.monotonic() - self.db_ok_mono > DB_DOWN_GRACE_S):
            problems.append("database unreachable")
        if self.trust_expired():
            problems.append("leader past its trust window")
        return problems

    def health(self) -> dict[str, Any]:
        """Return the /health document."""
        now = time.monotonic()
        leader = self.leader
        problems = self.problems()
        status = "ok"
        if self.stopping:
            status = "stopping"
        elif problems:
            status = "degraded"
        return {
            "status": status,
            "problems": problems,
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
            "services": {name: {"state": s.state, "restarts": s.restarts,
                                "last_error": s.last_error}
                         for name, s in self.services.items()},
            "cluster": self.cluster,
            "counters": dict(self.counters),
            "invariants": self.invariants,
            "last_errors": list(self.errors.values())[::-1],
        }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _until(now: float, then: float | None) -> float | None:
    return None if then is None else round(then - now, 3)
