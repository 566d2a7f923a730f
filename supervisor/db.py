"""The process's PostgreSQL connection pool and dedicated connections.

One `AsyncConnectionPool` per process, sized by DB_MAXCONN, for ordinary work. Sessions
carry the instance id as `application_name` (visible in pg_stat_activity), a statement
timeout, and an idle-in-transaction timeout equal to the lease TTL: a frozen leader's
open transaction (which holds the term row FOR SHARE through fence()) is ended by the
server itself, so a promotion never waits on it for longer than that.

Start-up errors are either transient (the server is down, restarting, unreachable: retry) or
permanent (`DatabaseRefused`: wrong credentials, no such database, a server too old to lead:
retrying cannot help, so the process exits with one line naming the cause and the env key).
libpq reports connection failures without a SQLSTATE, so `refusal()` reads the SQLSTATE where
there is one and the server's FATAL message otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from config import Settings

# idle_session_timeout (PostgreSQL 14) is what ends a frozen leader's lock session; without
# it no one could safely lead.
MIN_SERVER_VERSION_NUM = 140000
FIX_KEY = "DATABASE_URL"
# SQLSTATE -> (cause, the FATAL messages that stand for it when libpq gives no SQLSTATE; each
# message as the substrings it must contain).
PERMANENT_SQLSTATES: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "28P01": ("authentication failed (wrong user or password)",
              (("password authentication failed",),)),
    "28000": ("this role may not connect (no such role, or pg_hba.conf refuses it)",
              (("no pg_hba.conf entry",), ('role "', "does not exist"))),
    "3D000": ("the database does not exist", (('database "', "does not exist"),)),
}

# A pool connection is recycled after this long, so server-side restarts heal gradually.
POOL_MAX_LIFETIME_S = 1800.0
# psycopg_pool doubles its reconnect delay without bound (1, 2, 4, 8, 16 s, ...); after a
# ten-second outage the pool would stay empty for seconds after PostgreSQL is back.
POOL_RECONNECT_MAX_DELAY_S = 1.0
# A pooled connection unused for this long is checked (one round trip) before reuse.
CHECK_IDLE_AFTER_S = 1.0
# psycopg_pool logs every checkout at INFO and every failed reconnect (one a second here) at
# WARNING; outages are logged by RuntimeState once per state change instead.
POOL_LOG_LEVEL = logging.ERROR


class _CappedAttempt(AttemptWithBackoff):
    """psycopg_pool's reconnect backoff, capped at POOL_RECONNECT_MAX_DELAY_S."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, POOL_RECONNECT_MAX_DELAY_S)


class Pool(AsyncConnectionPool):
    """An AsyncConnectionPool that checks only idle connections and reconnects every second.

    Checking a connection is a round trip; under load the same connections come back within
    milliseconds and checking each checkout doubled the transactions of the hot paths. A
    connection idle for CHECK_IDLE_AFTER_S or more (which includes every connection through a
    database restart) is still checked before it is handed out.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = (
            weakref.WeakKeyDictionary())
        super().__init__(*args, check=self._check_if_idle, reset=self._note_return, **kwargs)

    async def _note_return(self, conn: psycopg.AsyncConnection) -> None:
        # The pool hands the connection here idle; an `autocommit` block that could not restore
        # the transaction mode is put right before anyone else gets the connection.
        if conn.autocommit:
            await conn.set_autocommit(False)
        self._returned_at[conn] = time.monotonic()

    async def _check_if_idle(self, conn: psycopg.AsyncConnection) -> None:
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned >= CHECK_IDLE_AFTER_S:
            await self.check_connection(conn)

    async def _add_connection(self, attempt: AttemptWithBackoff | None,
                              growing: bool = False) -> None:
        # The one hook psycopg_pool offers for its backoff: the attempt object it is given.
        await super()._add_connection(
            attempt or _CappedAttempt(timeout=self.reconnect_timeout), growing)


@contextlib.asynccontextmanager
async def autocommit(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """Yield a pooled connection in autocommit: each statement is its own transaction.

    A pooled connection otherwise wraps even one SELECT in BEGIN and COMMIT, three round trips
    for the handlers' per-update reads. Use it for reads (each statement sees its own
    snapshot, as in READ COMMITTED anyway) and for single statements that fence themselves
    (`Leadership.fence_params`); never for writes that must be atomic together.
    """
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            if conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                await conn.set_autocommit(False)


class DatabaseRefused(Exception):
    """The database refuses this instance for good; retrying cannot help."""

    def __init__(self, cause: str, *, env_key: str = FIX_KEY) -> None:
        self.cause = cause
        self.env_key = env_key
        super().__init__(f"{cause}; fix {env_key}")


def refusal(exc: BaseException) -> DatabaseRefused | None:
    """Return the permanent refusal exc stands for, or None if retrying may help."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in PERMANENT_SQLSTATES:
        return DatabaseRefused(PERMANENT_SQLSTATES[sqlstate][0])
    if not isinstance(exc, psycopg.OperationalError):
        return None
    fatal = str(exc).partition("FATAL:")[2]
    for cause, messages in PERMANENT_SQLSTATES.values():
        if any(all(part in fatal for part in parts) for parts in messages):
            return DatabaseRefused(cause)
    return None


def require_supported_server(conn: psycopg.AsyncConnection) -> None:
    """Raise DatabaseRefused if the server is older than MIN_SERVER_VERSION_NUM."""
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION_NUM:
        raise DatabaseRefused(
            f"PostgreSQL {version // 10000} is too old: leader election needs "
            f"idle_session_timeout (PostgreSQL {MIN_SERVER_VERSION_NUM // 10000}+)")


def session_options(settings: Settings, *, statement_timeout_s: float | None = None) -> str:
    """Return the libpq `options` string setting per-session server timeouts."""
    statement_ms = int((statement_timeout_s or settings.db_statement_timeout_s) * 1000)
    idle_tx_ms = int(settings.leader_lease_ttl_s * 1000)
    return (f"-c statement_timeout={statement_ms} "
            f"-c idle_in_transaction_session_timeout={idle_tx_ms}")


def connect_kwargs(settings: Settings, *, purpose: str = "pool") -> dict[str, Any]:
    """Return psycopg connection keyword arguments for this instance."""
    return {
        "application_name": f"{settings.instance_id}:{purpose}"[:63],
        "connect_timeout": max(1, round(settings.db_connect_timeout_s)),
        "options": session_options(settings),
        # Client keepalives notice a dead server (or path) within about 10 s.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }


def create_pool(settings: Settings) -> Pool:
    """Create (not open) the process pool; open it with `await pool.open()`."""
    logging.getLogger("psycopg.pool").setLevel(POOL_LOG_LEVEL)
    return Pool(
        settings.database_url.get(),
        min_size=1,
        max_size=settings.db_maxconn,
        kwargs=connect_kwargs(settings),
        timeout=settings.db_connect_timeout_s,
        max_lifetime=POOL_MAX_LIFETIME_S,
        name="main",
        open=False,
    )


async def connect(settings: Settings, *, purpose: str, autocommit: bool = True,
                  **overrides: Any) -> psycopg.AsyncConnection:
    """Open one dedicated connection outside the pool."""
    kwargs = connect_kwargs(settings, purpose=purpose) | overrides
    return await psycopg.AsyncConnection.connect(
        settings.database_url.get(), autocommit=autocommit, **kwargs
    )
