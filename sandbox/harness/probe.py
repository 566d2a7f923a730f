"""Start N real instance processes on one database and fault them; used by chaos tests and
bench/failover.py.

Every instance runs `sandbox.harness.probe_instance`: the real supervisor with one leader-only
service that makes a fenced write every 20 ms into `probe_writes` (term + server clock).
Failover gaps are measured from the fault instant (wall clock, taken just before the fault)
to the first write of the next term (server clock; same machine).
"""

from __future__ import annotations

import time

import psycopg

from sandbox.harness.cluster import InstanceCluster, wait_until
from sandbox.harness.env import make_env

PROBE_TABLE_SQL = b"""
CREATE TABLE IF NOT EXISTS probe_writes (
    id BIGSERIAL PRIMARY KEY,
    instance_id TEXT NOT NULL,
    term BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
)
"""
FIRST_WRITE_OF_TERM_SQL = b"""
SELECT term, instance_id, EXTRACT(EPOCH FROM min(at))::float8
  FROM probe_writes WHERE term > %s GROUP BY term, instance_id ORDER BY term LIMIT 1
"""
# Writes of an older term that landed after a newer term's first write: must stay 0.
SPLIT_BRAIN_SQL = b"""
SELECT count(*) FROM probe_writes w
 WHERE w.at > (SELECT min(n.at) FROM probe_writes n WHERE n.term > w.term)
"""
LEASE_SQL = b"SELECT term, holder, holder_pid FROM leader_heartbeat"
TERMINATE_SQL = b"SELECT pg_terminate_backend(%s)"


class Cluster(InstanceCluster):
    """N probe instances sharing one database."""

    def __init__(self, database_url: str, n: int = 3, *, ttl_s: float = 5.0,
                 renew_s: float = 1.0, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.ttl_s = ttl_s
        base_env = make_env(database_url, LEADER_LEASE_TTL=str(ttl_s),
                            LEADER_RENEW_INTERVAL=str(renew_s), LEADER_STOP_GRACE="2",
                            SHUTDOWN_GRACE="5", LOG_LEVEL="INFO", **(env or {}))
        super().__init__(n, command=["-m", "sandbox.harness.probe_instance", *extra_args],
                         env=base_env)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(PROBE_TABLE_SQL)

    def lease(self) -> tuple[int, str, int] | None:
        """Return (term, holder instance id, holder backend pid) from the heartbeat row."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(LEASE_SQL).fetchone()
        return (int(row[0]), str(row[1]), int(row[2])) if row else None

    def first_write_after(self, term: int) -> tuple[int, str, float] | None:
        """Return (term, instance id, epoch s) of the first write of any term > term."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(FIRST_WRITE_OF_TERM_SQL, (term,)).fetchone()
        return (int(row[0]), str(row[1]), float(row[2])) if row else None

    def wait_writing_leader(self, *, after_term: int = 0,
                            timeout_s: float = 30.0) -> tuple[int, str, float]:
        """Wait for the first fenced write of a term newer than after_term."""
        found: list[tuple[int, str, float]] = []

        def written() -> bool:
            row = self.first_write_after(after_term)
            if row:
                found.append(row)
            return bool(row)

        if not wait_until(written, timeout_s, interval_s=0.01):
            raise AssertionError(f"no fenced write after term {after_term} within {timeout_s} s;"
                                 f" logs in {self.logs_dir}")
        return found[-1]

    def split_brain_writes(self) -> int:
        """Count writes of an old term that landed after a newer term began (must be 0)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(SPLIT_BRAIN_SQL).fetchone()
        return int(row[0]) if row else 0

    def terminate_leader_lock_session(self) -> tuple[float, int]:
        """pg_terminate_backend the leader's lock session; return (instant, term)."""
        lease = self.lease()
        assert lease is not None
        term, _, pid = lease
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            at = time.time()
            conn.execute(TERMINATE_SQL, (pid,))
        return at, term
