"""The supervisor's typed stores: the only readers of `supervisor/sql/*.sql`.

One class per area, bound to a connection the caller holds (a pooled one, the leader's lock
session, the migration session), one method per named query. Guards live in the SQL: renew
and expire match the term, terminate_holder matches the holder's pid and lock.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore

SQL_DIR = Path(__file__).with_name("sql")
_ELECTION = QueryStore(SQL_DIR / "election.sql")
_INSTANCES = QueryStore(SQL_DIR / "instances.sql")
_MIGRATIONS = QueryStore(SQL_DIR / "migrations.sql")

Row = dict[str, Any]


class LeaderEvent(StrEnum):
    """A leadership transition in `leader_events.event` (CHECK in migration 004)."""

    PROMOTED = "promoted"    # won the lock and bumped the term
    DEMOTED = "demoted"      # lost leadership (renewal failed, lock lost, trust expired)
    RESIGNED = "resigned"    # gave leadership up on shutdown
    TAKEOVER = "takeover"    # terminated an expired holder's lock session


class TransitionReason(StrEnum):
    """Why a leadership transition happened (`leader_events.reason`, /health)."""

    LOCK_ACQUIRED = "lock acquired"                 # promoted: this session won the lock
    STOPPING = "stopping"                           # resigned: SIGTERM/SIGINT, drained
    TERM_SUPERSEDED = "term superseded"             # demoted: renew matched no row
    TRUST_EXPIRED = "trust window expired"          # demoted: no good renew within the window
    LOCK_SESSION_LOST = "lock session lost"         # demoted: the lock's session failed
    LEASE_EXPIRED = "lease expired"                 # takeover: the holder stopped renewing


class ElectionStore:
    """Leader election queries (`sql/election.sql`)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def lock_session_setup(self, *, idle_ms: int) -> int:
        """Make the server end this session when idle past idle_ms; return its backend pid."""
        cur = await self._conn.execute(_ELECTION["lock_session_setup"], {"idle_ms": str(idle_ms)})
        row = await cur.fetchone()
        assert row is not None, "SELECT returns one row"
        return int(row[2])

    async def acquire_lock(self, *, key: int) -> None:
        """Wait, blocking, until this session holds the leader lock."""
        await self._conn.execute(_ELECTION["acquire_lock"], {"key": key})

    async def release_lock(self, *, key: int) -> None:
        """Give the leader lock back."""
        await self._conn.execute(_ELECTION["release_lock"], {"key": key})

    async def set_statement_timeout(self, *, timeout_ms: int) -> None:
        """Bound every later statement of this session."""
        await self._conn.execute(_ELECTION["set_statement_timeout"],
                                 {"timeout_ms": str(timeout_ms)})

    async def ensure_lease(self, *, name: str) -> None:
        """Create the lease row of this namespace on first use."""
        await self._conn.execute(_ELECTION["ensure_lease"], {"name": name})

    async def bump_term(self, *, name: str, instance_id: str) -> int:
        """Take the next term (waits for the old term's fenced transactions); return it."""
        cur = await self._conn.execute(_ELECTION["bump_term"],
                                       {"name": name, "instance_id": instance_id})
        row = await cur.fetchone()
        assert row is not None, "ensure_lease guarantees the lease row"
        return int(row[0])

    async def start_heartbeat(self, *, name: str, term: int, instance_id: str,
                              ttl_s: float) -> None:
        """Write the first heartbeat of a new term."""
        await self._conn.execute(_ELECTION["start_heartbeat"], {
            "name": name, "term": term, "instance_id": instance_id, "ttl_s": ttl_s})

    async def renew(self, *, name: str, term: int, ttl_s: float) -> bool:
        """Extend our term's lease; return False when another term began."""
        cur = await self._conn.execute(_ELECTION["renew"],
                                       {"name": name, "term": term, "ttl_s": ttl_s})
        return cur.rowcount == 1

    async def expire(self, *, name: str, term: int) -> None:
        """End our term's lease now (graceful resign)."""
        await self._conn.execute(_ELECTION["expire"], {"name": name, "term": term})

    async def record_event(self, *, name: str, term: int | None, instance_id: str,
                           event: LeaderEvent, reason: TransitionReason) -> None:
        """Append one leadership transition to the event log."""
        await self._conn.execute(_ELECTION["record_event"], {
            "name": name, "term": term, "instance_id": instance_id, "event": event,
            "reason": reason})

    async def read_lease(self, *, name: str, key_hi: int, key_lo: int) -> Row | None:
        """Return the current heartbeat with the server's view of its age and expiry."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_ELECTION["read_lease"],
                          {"name": name, "key_hi": key_hi, "key_lo": key_lo})
        return await cur.fetchone()

    async def terminate_holder(self, *, pid: int, key_hi: int, key_lo: int) -> bool:
        """End the backend pid if it still holds the leader lock; return whether it did."""
        cur = await self._conn.execute(_ELECTION["terminate_holder"],
                                       {"pid": pid, "key_hi": key_hi, "key_lo": key_lo})
        return await cur.fetchone() is not None

    async def fence(self, *, name: str, term: int) -> None:
        """Raise SQLSTATE LF001 unless term is current; lock the term row FOR SHARE."""
        await self._conn.execute(_ELECTION["fence"], {"name": name, "term": term})

    async def lease_overview(self, *, name: str) -> Row | None:
        """Return the term row and heartbeat together, for `supervisor status`."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_ELECTION["lease_overview"], {"name": name})
        return await cur.fetchone()

    async def recent_events(self, *, name: str, limit: int) -> list[Row]:
        """Return the last leadership transitions, newest first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_ELECTION["recent_events"], {"name": name, "limit": limit})
        return await cur.fetchall()


class InstanceStore:
    """The instances registry's queries (`sql/instances.sql`)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def heartbeat(self, *, instance_id: str, host: str, pid: int, version: str,
                        started_at: float, role: str, term: int | None) -> None:
        """Record that this instance is alive, with its role and term."""
        await self._conn.execute(_INSTANCES["heartbeat"], {
            "instance_id": instance_id, "host": host, "pid": pid, "version": version,
            "started_at": started_at, "role": role, "term": term})

    async def live(self, *, live_s: float) -> list[Row]:
        """Return instances seen within live_s, by id."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_INSTANCES["live"], {"live_s": live_s})
        return await cur.fetchall()

    async def mark_stopped(self, *, instance_id: str) -> None:
        """Mark this instance stopped (clean exit)."""
        await self._conn.execute(_INSTANCES["mark_stopped"], {"instance_id": instance_id})

    async def prune(self, *, stale_s: float) -> int:
        """Delete instances not seen for stale_s; return how many (fenced by the caller)."""
        cur = await self._conn.execute(_INSTANCES["prune"], {"stale_s": stale_s})
        return cur.rowcount

    async def all_instances(self) -> list[Row]:
        """Return every registered instance, last seen first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_INSTANCES["all_instances"])
        return await cur.fetchall()


class MigrationStore:
    """The migration runner's queries (`sql/migrations.sql`)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def lock(self, *, key: int) -> None:
        """Wait for the migration lock (session advisory lock)."""
        await self._conn.execute(_MIGRATIONS["lock"], {"key": key})

    async def unlock(self, *, key: int) -> None:
        """Release the migration lock."""
        await self._conn.execute(_MIGRATIONS["unlock"], {"key": key})

    async def create_table(self) -> None:
        """Create the bookkeeping table on first run."""
        await self._conn.execute(_MIGRATIONS["create_table"])

    async def table_exists(self) -> bool:
        """Tell whether any migration has ever run here."""
        cur = await self._conn.execute(_MIGRATIONS["table_exists"])
        row = await cur.fetchone()
        return bool(row and row[0])

    async def applied(self) -> list[Row]:
        """Return the applied migrations in order."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(_MIGRATIONS["applied"])
        return await cur.fetchall()

    async def set_lock_timeout(self, *, lock_timeout_ms: int) -> None:
        """Bound lock waits for the rest of the current transaction."""
        await self._conn.execute(_MIGRATIONS["set_lock_timeout"],
                                 {"lock_timeout": f"{lock_timeout_ms}ms"})

    async def record(self, *, version: int, name: str, checksum: str,
                     duration_ms: float) -> None:
        """Record one applied migration (in the same transaction as its DDL)."""
        await self._conn.execute(_MIGRATIONS["record"], {
            "version": version, "name": name, "checksum": checksum,
            "duration_ms": duration_ms})
