"""Leader election: a session advisory lock plus a term-fenced lease row.

Overview
    Every instance runs one `Elector`. `campaign()` waits, blocking, in `pg_advisory_lock` on a
    dedicated lock session; when it returns, this session holds the lock and bumps the term in
    `leader_lease` (the fencing token), writes the first heartbeat and returns a `Leadership`.
    `hold()` renews the heartbeat every LEADER_RENEW_INTERVAL and returns when leadership ends;
    `release()` ends the term (resigning on a graceful shutdown) and closes the lock session.

States (in-process; the supervisor alternates them)
    candidate --lock won, term bumped--> leader --renew failed / trust expired / stop--> demoting
    demoting --leader services stopped, lock session closed--> candidate (or exit)

Why two mechanisms
    The lock hands over in milliseconds when a leader exits or crashes (its socket closes). It
    cannot see a frozen or partitioned leader, whose session lives on, so:
    - the lock session sets `idle_session_timeout` = TTL: PostgreSQL itself ends the session of
      a leader that stops renewing;
    - candidates watch the heartbeat row; when `expires_at` is past by TAKEOVER_GRACE and the
      holder's backend still holds the lock, they `pg_terminate_backend` it (a takeover);
    - the term row is separate from the heartbeat row: `fence()` holds the term row FOR SHARE in
      every leader write transaction, so the term bump waits for the old leader's in-flight
      writes, while renewals (heartbeat row only) never queue behind our own writes.

Trust window (self-fencing, monotonic clock)
    trusted_until = start_of_last_good_renew + TTL - TRUST_MARGIN
    Anchored to the *start* of the renew attempt so a slow round trip cannot extend leadership.
    Past it the leader stops every leader service before doing anything else.

Failure handling
    Lock session error while leading: the lock is gone with the session, demote at once.
    Renew matches zero rows: another term began, demote at once.
    Renew statement cancelled (slow server): retry until the trust window runs out.
    Any error while campaigning: close the session, back off, campaign again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import AsyncConnectionPool

from config import Settings
from supervisor import db
from supervisor.aio import Backoff, wait_event
from supervisor.runtime_state import Role, RuntimeState
from supervisor.stores import ElectionStore, LeaderEvent, TransitionReason

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = b"kiebot-leader-v1:"
# Subtracted from the TTL so we stop trusting ourselves before anyone may take over.
TRUST_MARGIN_S = 0.5
# A candidate kills an expired holder only this long after expiry (clock skew, slow renew).
TAKEOVER_GRACE_S = 1.0
# Renewals must finish well within one interval, or we treat them as failed and retry.
RENEW_TIMEOUT_FRACTION = 0.8
# Resigning is shielded from cancellation but never allowed to block shutdown for long.
RESIGN_TIMEOUT_S = 2.0
FENCED_SQLSTATE = "LF001"
# The parameters of a self-fencing statement run unfenced (tools, tests, or inside a
# transaction `fenced` already checked): its SQL skips the term check.
NO_FENCE: Mapping[str, object] = {"fence_name": None, "fence_term": None}


class ElectionError(Exception):
    """Leader election failed in a way the caller must handle."""


class FencedError(ElectionError):
    """A write carried a term that is no longer current; it was rolled back."""


def lock_key(bot_token: str) -> int:
    """Return the advisory lock key (positive int64) for a bot token."""
    digest = hashlib.sha256(LOCK_NAMESPACE + bot_token.encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def lease_name(bot_token: str) -> str:
    """Return the lease row name for a bot token (a hash: the token never reaches the DB)."""
    return "bot-" + hashlib.sha256(LOCK_NAMESPACE + bot_token.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Leadership:
    """One term of leadership, handed to leader-only services."""

    term: int
    instance_id: str
    lease_name: str
    trusted: Callable[[], bool]
    lost: asyncio.Event = field(default_factory=asyncio.Event)       # stop now
    draining: asyncio.Event = field(default_factory=asyncio.Event)   # finish, take no new work

    @contextlib.asynccontextmanager
    async def fenced(self, pool: AsyncConnectionPool, *, timeout_s: float | None = None,
                     pipeline: bool = False) -> AsyncIterator[psycopg.AsyncConnection]:
        """Yield a pooled connection inside a transaction fenced by this term; commit on exit.

        The one way leader code writes. A crash or an error before the block ends rolls the
        whole transaction back; FencedError means another term began and nothing was written.

        pipeline=True runs the block in psycopg's pipeline mode: BEGIN and the fence travel
        with the block's first statement, and a write whose result is not read travels with
        the COMMIT, so a one-statement block costs three round trips instead of four (psycopg
        syncs once more as the pipeline ends) and each further read one. For blocks that read
        every result they rely on (fetch*): a cursor's rowcount is only set at the next sync.
        A superseded term then surfaces at the block's first read (at its COMMIT if it reads
        nothing), still as FencedError, with nothing written.
        """
        async with pool.connection(timeout=timeout_s) as conn:
            if not pipeline:
                async with conn.transaction():
                    await self.fence(conn)
                    yield conn
                return
            with fencing_errors():
                async with conn.pipeline(), conn.transaction():
                    await self.fence(conn)
                    yield conn

    def fence_params(self) -> dict[str, object]:
        """Return the parameters of a statement that fences itself; raise FencedError if our
        trust window has passed.

        Such a statement calls `fence(%(fence_name)s, %(fence_term)s)` in its own SQL and runs
        alone in autocommit: it is its own transaction, so the term check (with the term row
        held FOR SHARE) and its write commit together, as in `fenced`, in one round trip
        instead of four (BEGIN, fence, write, COMMIT). Run it inside `fencing_errors()`.
        """
        if self.lost.is_set() or not self.trusted():
            raise FencedError(f"term {self.term} is no longer trusted")
        return {"fence_name": self.lease_name, "fence_term": self.term}

    async def fence(self, conn: psycopg.AsyncConnection) -> None:
        """Check inside conn's transaction that our term is current; raise FencedError if not."""
        if self.lost.is_set() or not self.trusted():
            raise FencedError(f"term {self.term} is no longer trusted")
        try:
            await ElectionStore(conn).fence(name=self.lease_name, term=self.term)
        except psycopg.Error as exc:
            if exc.sqlstate == FENCED_SQLSTATE:
                raise FencedError(f"term {self.term} was superseded") from exc
            raise


@contextlib.contextmanager
def fencing_errors() -> Iterator[None]:
    """Raise FencedError where a statement of the block that fences itself (or a pipelined
    fence) found its term superseded; other errors pass unchanged."""
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate == FENCED_SQLSTATE:
            raise FencedError("the statement's term was superseded") from exc
        raise


class Elector:
    """Win, hold and give up leadership for one instance."""

    def __init__(self, settings: Settings, state: RuntimeState, pool: AsyncConnectionPool,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._state = state
        self._pool = pool
        self._clock = clock
        self._key = lock_key(settings.telegram_bot_token.get())
        self._key_params = {"key_hi": self._key >> 32, "key_lo": self._key & 0xFFFF_FFFF}
        self._name = lease_name(settings.telegram_bot_token.get())
        self._ttl_s = settings.leader_lease_ttl_s
        self._interval_s = settings.leader_renew_interval_s
        self._conn: psycopg.AsyncConnection | None = None
        self._lock_pid: int | None = None
        self._trusted_until = 0.0

    def trusted(self) -> bool:
        """Tell whether the current term is inside its trust window."""
        return self._clock() < self._trusted_until

    # ---- candidate ----

    async def campaign(self, stop: asyncio.Event) -> Leadership | None:
        """Wait until this instance leads; return None if stop is set first."""
        # Capped low: a candidate that cannot reach the DB retries every second, so leadership
        # resumes within about a second of PostgreSQL coming back.
        backoff = Backoff(initial_s=0.2, max_s=1.0)
        while not stop.is_set():
            try:
                return await self._campaign_once(stop)
            except (psycopg.Error, OSError) as exc:
                # Logged once per outage (db_unreachable), not once per retry.
                self._state.mark_db_unreachable("election", exc)
                await self._close_lock_session()
                await wait_event(stop, backoff.next_delay())
        return None

    async def _campaign_once(self, stop: asyncio.Event) -> Leadership | None:
        conn = await self._open_lock_session()
        self._state.set_role(Role.CANDIDATE, term=None, reason="campaigning")
        watch_done = asyncio.Event()
        watcher = asyncio.create_task(self._watch_lease(stop, watch_done), name="lease-watcher")
        acquire = asyncio.create_task(
            ElectionStore(conn).acquire_lock(key=self._key), name="lock-wait")
        stopping = asyncio.create_task(stop.wait(), name="lock-wait-stop")
        try:
            await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The watcher ends by its own event, never by cancellation mid-query: a takeover
            # must not be cut between pg_terminate_backend and its event row.
            watch_done.set()
            stopping.cancel()
            await _reap(watcher, stopping)
        if not acquire.done():
            # Stopping while waiting: closing the session drops the wait (and any lock).
            acquire.cancel()
            await _reap(acquire)
            await self._close_lock_session()
            return None
        acquire.result()
        return await self._promote(conn)

    async def _open_lock_session(self) -> psycopg.AsyncConnection:
        await self._close_lock_session()
        conn = await db.connect(self._settings, purpose="lock")
        self._conn = conn
        self._lock_pid = await ElectionStore(conn).lock_session_setup(
            idle_ms=int(self._ttl_s * 1000))
        return conn

    async def _promote(self, conn: psycopg.AsyncConnection) -> Leadership:
        started = self._clock()
        store, me = ElectionStore(conn), self._settings.instance_id
        async with conn.transaction():
            await store.ensure_lease(name=self._name)
            term = await store.bump_term(name=self._name, instance_id=me)
            await store.start_heartbeat(name=self._name, term=term, instance_id=me,
                                        ttl_s=self._ttl_s)
            await store.record_event(name=self._name, term=term, instance_id=me,
                                     event=LeaderEvent.PROMOTED,
                                     reason=TransitionReason.LOCK_ACQUIRED)
        await store.set_statement_timeout(
            timeout_ms=int(self._interval_s * RENEW_TIMEOUT_FRACTION * 1000))
        self._trusted_until = started + self._ttl_s - TRUST_MARGIN_S
        self._note_own_lease(term, started)
        self._state.set_role(Role.LEADER, term=term, reason=TransitionReason.LOCK_ACQUIRED)
        logger.info("leader_promoted", extra={
            "term": term, "promote_ms": round((self._clock() - started) * 1000, 2)})
        return Leadership(term=term, instance_id=self._settings.instance_id,
                          lease_name=self._name, trusted=self.trusted)

    async def _watch_lease(self, stop: asyncio.Event, done: asyncio.Event) -> None:
        """Keep the leader's view on /health fresh; take over from an expired holder."""
        while not (stop.is_set() or done.is_set()):
            try:
                await self._check_lease()
            except (psycopg.Error, OSError) as exc:
                self._state.mark_db_unreachable("lease-watch", exc)
            await wait_event(done, self._interval_s)

    async def _check_lease(self) -> None:
        async with self._pool.connection() as conn:
            store = ElectionStore(conn)
            lease = await store.read_lease(name=self._name, **self._key_params)
            self._state.mark_db_ok()
            if lease is None:
                return
            now = self._clock()
            info = self._state.leader
            info.instance_id, info.term = lease["holder"], lease["term"]
            info.heartbeat_at_mono = now - lease["heartbeat_age_s"]
            info.expires_at_mono = now + lease["expires_in_s"]
            overdue = -lease["expires_in_s"] > TAKEOVER_GRACE_S
            if not (overdue and lease["holder_has_lock"] and lease["holder_pid"] != self._lock_pid):
                return
            if await store.terminate_holder(pid=lease["holder_pid"], **self._key_params):
                await store.record_event(
                    name=self._name, term=lease["term"], instance_id=self._settings.instance_id,
                    event=LeaderEvent.TAKEOVER, reason=TransitionReason.LEASE_EXPIRED)
                self._state.takeovers += 1
                logger.warning("leader_takeover", extra={
                    "holder": lease["holder"], "holder_term": lease["term"],
                    "expired_s_ago": round(-lease["expires_in_s"], 1)})

    # ---- leader ----

    async def hold(self, leadership: Leadership, stop: asyncio.Event) -> TransitionReason:
        """Renew until leadership ends or stop is set; return why it ended."""
        conn = self._conn
        assert conn is not None, "hold() follows a successful campaign()"
        store = ElectionStore(conn)
        while True:
            started = self._clock()
            if stop.is_set():
                return TransitionReason.STOPPING
            if started >= self._trusted_until:
                return TransitionReason.TRUST_EXPIRED
            try:
                async with asyncio.timeout(self._trusted_until - started):
                    renewed = await store.renew(name=self._name, term=leadership.term,
                                                ttl_s=self._ttl_s)
                if not renewed:
                    return TransitionReason.TERM_SUPERSEDED
                self._trusted_until = started + self._ttl_s - TRUST_MARGIN_S
                self._note_own_lease(leadership.term, started)
            except TimeoutError:
                return TransitionReason.TRUST_EXPIRED
            except psycopg.errors.QueryCanceled as exc:
                # The server was slow; our trust window decides how long we may keep trying.
                logger.warning("renew_slow", extra={"error": str(exc)})
                continue
            except (psycopg.Error, OSError) as exc:
                # The lock lives and dies with this session.
                logger.warning("lock_session_lost", extra={"term": leadership.term,
                                                           "error": str(exc)})
                return TransitionReason.LOCK_SESSION_LOST
            await wait_event(stop, started + self._interval_s - self._clock())

    def _note_own_lease(self, term: int, renewed_at: float) -> None:
        self._state.trust_until_mono = self._trusted_until
        self._state.mark_db_ok()
        info = self._state.leader
        info.instance_id, info.term = self._settings.instance_id, term
        info.heartbeat_at_mono = renewed_at
        info.expires_at_mono = renewed_at + self._ttl_s

    # ---- demoting ----

    async def release(self, leadership: Leadership, *, reason: TransitionReason,
                      resign: bool) -> None:
        """End our term: resign (expire lease, unlock) if asked, then close the lock session."""
        leadership.lost.set()
        self._trusted_until = 0.0
        self._state.trust_until_mono = None
        event = LeaderEvent.RESIGNED if resign else LeaderEvent.DEMOTED
        term, me = leadership.term, self._settings.instance_id
        try:
            async with asyncio.timeout(RESIGN_TIMEOUT_S):
                if resign and self._conn is not None and not self._conn.closed:
                    store = ElectionStore(self._conn)
                    await store.expire(name=self._name, term=term)
                    await store.record_event(name=self._name, term=term, instance_id=me,
                                             event=event, reason=reason)
                    await store.release_lock(key=self._key)
                else:
                    async with self._pool.connection() as conn:
                        await ElectionStore(conn).record_event(
                            name=self._name, term=term, instance_id=me, event=event,
                            reason=reason)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            # The lease TTL is the safety net: followers take over when it runs out.
            logger.warning("release_incomplete", extra={"error": str(exc), "event": event})
        finally:
            await self._close_lock_session()
        log = logger.info if resign else logger.warning
        log("leader_" + event, extra={"term": leadership.term, "reason": reason})

    async def _close_lock_session(self) -> None:
        conn, self._conn, self._lock_pid = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


async def _reap(*tasks: asyncio.Task[object]) -> None:
    """Wait for cancelled helper tasks to finish (their outcome is not needed)."""
    await asyncio.wait(tasks)
