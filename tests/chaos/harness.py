"""Start N real instance processes on one database and fault them; used by chaos tests and
bench/failover.py.

Every instance runs `tests.chaos.probe_instance`: the real supervisor with one leader-only
service that makes a fenced write every 20 ms into `probe_writes` (term + server clock).
Failover gaps are measured from the fault instant (wall clock, taken just before the fault)
to the first write of the next term (server clock; same machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from tests.helpers import make_env
from tests.pg import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
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
HEALTH_TIMEOUT_S = 0.5


@dataclass
class Member:
    """One instance process."""

    index: int
    instance_id: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None


class Cluster:
    """N probe instances sharing one database."""

    def __init__(self, database_url: str, n: int = 3, *, ttl_s: float = 5.0,
                 renew_s: float = 1.0, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.logs_dir = Path(tempfile.mkdtemp(prefix="kiebot-chaos-"))
        self.ttl_s = ttl_s
        self._extra_args = extra_args
        self._env = env or {}
        self._renew_s = renew_s
        self._generation = 0
        self.members = [self._new_member(i) for i in range(n)]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(PROBE_TABLE_SQL)

    def _new_member(self, index: int) -> Member:
        self._generation += 1
        instance_id = f"i{index}-g{self._generation}"
        return Member(index, instance_id, free_port(), self.logs_dir / f"{instance_id}.log")

    # ---- processes ----

    def start(self, index: int | None = None) -> None:
        """Start one member (or all); a restarted member gets a new instance id."""
        indexes = range(len(self.members)) if index is None else [index]
        for i in indexes:
            member = self.members[i]
            if member.process is not None:
                member = self.members[i] = self._new_member(i)
            env = make_env(self.database_url, INSTANCE_ID=member.instance_id,
                           PORT=str(member.port), LEADER_LEASE_TTL=str(self.ttl_s),
                           LEADER_RENEW_INTERVAL=str(self._renew_s), LEADER_STOP_GRACE="2",
                           SHUTDOWN_GRACE="5", LOG_LEVEL="INFO", **self._env)
            env["PATH"] = os.environ.get("PATH", "")
            log = member.log_path.open("ab")
            member.process = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.probe_instance", *self._extra_args],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, index: int, sig: signal.Signals) -> float:
        """Send sig to a member; return the wall-clock instant just before."""
        process = self.members[index].process
        assert process is not None
        at = time.time()
        process.send_signal(sig)
        return at

    def wait_exit(self, index: int, timeout_s: float = 15.0) -> int:
        """Wait for a member's process to exit; return its code."""
        process = self.members[index].process
        assert process is not None
        return process.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Stop every member (SIGKILL whatever does not exit on SIGTERM)."""
        for member in self.members:
            process = member.process
            if process is None or process.poll() is not None:
                continue
            try:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # ---- observation ----

    def health(self, index: int) -> dict[str, object] | None:
        """Return a member's /health document, or None if it does not answer."""
        url = f"http://127.0.0.1:{self.members[index].port}/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
                return orjson.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            return orjson.loads(exc.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    def roles(self) -> list[str | None]:
        """Return each member's role as its /health says (None if it does not answer)."""
        roles: list[str | None] = []
        for i in range(len(self.members)):
            doc = self.health(i)
            roles.append(str(doc["role"]) if doc else None)
        return roles

    def wait_all_answering(self, timeout_s: float = 30.0) -> None:
        """Wait until every member's /health answers."""
        if not wait_until(lambda: None not in self.roles(), timeout_s):
            raise AssertionError(f"not every member answers /health: {self.roles()}")

    def lease(self) -> tuple[int, str, int] | None:
        """Return (term, holder instance id, holder backend pid) from the heartbeat row."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(LEASE_SQL).fetchone()
        return (int(row[0]), str(row[1]), int(row[2])) if row else None

    def index_of(self, instance_id: str) -> int:
        """Return the member index running instance_id."""
        return next(m.index for m in self.members if m.instance_id == instance_id)

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
