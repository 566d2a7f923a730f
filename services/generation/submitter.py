"""The leader's submitter: pending jobs -> Kie createTask -> task id stored.

Overview (a supervisor.worker.Worker over SubmitQueue; its claim runs in the worker's fenced
turn, one transaction for a whole batch; woken in process by `wake` when a job is requested
on this leader, else every POLL_INTERVAL_S)
    claim     0. backpressure (`SubmitQueue._room`): while BACKLOG_BOUND jobs are past
                 Kie's answer or on their way to it (submissions in flight, callbacks not
                 applied, results not yet delivered: waiting or being sent), claim fewer or
                 none (the delivery worker's turns nudge the submitter to look again)
              1. `claim_pending`: pending jobs in fair order (a job's slot is its user's jobs
                 in flight plus its rank in the user's queue), each under a lease of
                 SUBMIT_LEASE_S
              2. `begin_submit` for each: count an attempt, store a fresh token's hash (a job
                 whose attempts are used up fails here, its hold released)
    handle    3. createTask with callBackUrl = {WEBHOOK_BASE_URL}/kie/callback/{job}/{token},
                 after a token from the 20-per-10 s bucket (in the Kie client)
              4. `record_submitted` (one self-fencing statement in autocommit: setting the
                 task id locks the job's row, and with Kie fast its callback is being
                 stored at that moment): the task id, guarded by status `pending`; then
                 the job's status message is queued to show "generating" (never awaited)
    settle    a dead-lettered job fails (`apply_outcome`: hold released); a retried one frees
              its claim with a retry time (`release_submit`: the worker's Backoff, 2 s
              doubling up to 60 s), so it is offered again in seconds, not after the lease;
              done jobs need no write

Pace across terms: on start the bucket is primed with the attempts the database recorded
in the last window (a dead leader's too), so a new leader's first window holds what Kie's
still counts, not a full bucket on top of it (the chaos test saw ~40 429s per failover).

Fairness and pace: the worker may run only as many submissions as the bucket can grant now,
plus one (`concurrency`), so jobs do not pile up inside the bucket's queue in claim order: a
user's long queue delays another user's first job by at most one slot. Backpressure keeps
that order (held jobs wait in `pending`); it finishes a burst's results before starting more
of it, so a result waits behind at most BACKLOG_BOUND others instead of the whole burst.

Failure handling
    Kie final error (400 invalid, 402 credits, 422 ...): the job fails now, hold released.
    Kie retryable refusal (5xx, 429, 455: Kie answered, no task was made) after the
    client's own retries: the worker retries the job after its backoff (the claim is freed
    with `submit_retry_at`), up to MAX_SUBMIT_ATTEMPTS (env), then fails it.
    No answer (a timeout or a connection lost after sending: Kie may have made the task):
    the attempt ends without a retry and the job keeps its claim for the lease, so its
    callback (the URL names the job) can settle it first; only after the lease is it
    submitted again (a second Kie task at worst, never a second charge).
    Every attempt after the first is counted on /metrics (`kie_resubmits`).

Crash analysis
    - before the claim commits: nothing changed; the job is claimed again.
    - between the claim and 3: an unused token; after the lease the next attempt makes a new
      one.
    - between 3 and 4 (Kie accepted, task id not stored): the callback URL names the job and
      its token, so Kie's callback alone settles it (stored, then applied to the pending job);
      a job with a stored callback is never claimed again. The next leader's submitter frees
      every claim no task of its own holds when it starts (`release_claims`), so a job the
      dead leader claimed is submitted again at once rather than after the lease: if Kie had
      accepted it, a second Kie task (counted on /metrics, bounded by MAX_SUBMIT_ATTEMPTS; at
      most MAX_CONCURRENCY per crash), but one charge, since settlement is once per job.
    - after 4: the job is `submitted`; its callback or the status poller finishes it.
    - draining (SIGTERM): a submission still waiting for its bucket token gives up before
      sending anything (`Drained`), so a handover never waits for the next window (up to
      10 s); the job stays pending under our claim, which the next leader frees at start.
    - the backpressure's state (when the hold began) is in memory only: a new leader starts
      without a hold and counts the backlog afresh at its first claim.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg_pool import AsyncConnectionPool

import supervisor.worker as worker
from services.catalog import Catalog
from services.generation import (
    Failed,
    Job,
    apply_outcome,
    begin_submit,
    claim_pending,
    record_submitted,
    release_submit,
)
from services.generation.callback_ingress import callback_url
from services.generation.status_messages import JobStatusMessages
from services.generation.store import JobStore
from services.generation.submission import FIRST_POLL_AFTER_S, SubmitTicket
from services.kie import KieClient, KieFinal, KieRetryable, TokenBucket
from services.kie.ratelimit import CREATE_LIMIT_PER_WINDOW, CREATE_WINDOW_S
from supervisor.aio import wait_event
from supervisor.db import autocommit
from supervisor.election import Leadership, fencing_errors
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

# Longer than one submission can take: the bucket's wait (<= 10 s) plus the client's
# attempts (4 x 30 s timeout + 7 s of backoff); a shorter lease could submit a job twice.
SUBMIT_LEASE_S: Final[float] = 180.0
HANDLER_TIMEOUT_S: Final[float] = 150.0
# Submissions in flight at most (each waits on Kie's answer, ~1 s in production).
MAX_CONCURRENCY: Final[int] = 16
# New jobs wake the submitter by NOTIFY (insert_job); this poll catches a missed one.
POLL_INTERVAL_S: Final[float] = 0.5
# Kie's window seen from our side is this much longer than 10 s (see submit_bucket).
ARRIVAL_MARGIN_S: Final[float] = 0.15
# How often the bucket is checked for returned tokens (in memory, no I/O).
BUCKET_WATCH_S: Final[float] = 0.02
# A refused attempt is tried again after this backoff (doubling per attempt), not the lease.
RETRY_INITIAL_S: Final[float] = 2.0
RETRY_MAX_S: Final[float] = 60.0
# Backpressure: new submissions wait while this many jobs are in flight or past Kie's answer
# and not delivered (see SubmitQueue._room). 4 keeps a burst's callback -> sent time near one
# job's own (bench/generation.py: p99 113 ms, 234 at 16) for a fifth less burst throughput
# (72 jobs/s, 91 at 16: still 35 times Kie's default limit); with real Kie times (seconds to
# minutes) the backlog after Kie is rarely above it ...
BACKLOG_BOUND: int | None = 4  # None: no backpressure (read when a Submitter is made)
# ... but never longer than this at a stretch.
HOLD_MAX_S: Final[float] = 5.0
MODEL_GONE_CODE: Final[str] = "model_unavailable"
SUBMIT_FAILED_CODE: Final[str] = "submit_failed"


def submit_bucket(limit: int = CREATE_LIMIT_PER_WINDOW) -> TokenBucket:
    """Return the createTask bucket: `limit` (Kie's 20, or the account's raised limit,
    KIE_CREATE_LIMIT) per 10 s, each token back a little later.

    A grant becomes a request at Kie some milliseconds after it; Kie counts arrivals in its
    own sliding window, so a token returned exactly 10 s after the previous grant could make
    the 21st arrival of a window (a 429). The margin keeps every window at 20.
    """
    return TokenBucket(limit, CREATE_WINDOW_S + ARRIVAL_MARGIN_S)


class Drained(Exception):
    """The term began draining before the submission got its token: nothing was sent."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission attempt of a job: the job and the attempt's ticket (token)."""

    job: Job
    ticket: SubmitTicket


class SubmitQueue:
    """Pending jobs as the worker's queue (claims are leases on submit_claimed_at)."""

    def __init__(self, *, lease_s: float, max_attempts: int, backlog_bound: int | None = None,
                 hold_max_s: float = HOLD_MAX_S) -> None:
        self._lease_s = lease_s
        self._max_attempts = max_attempts
        self._bound = backlog_bound
        self._hold_max_s = hold_max_s
        self.held_since: float | None = None  # monotonic; None: not holding back
        # Submissions on their way to Kie: with a fast Kie their callbacks are the next
        # backlog, so they count against the bound before the database sees them.
        self.sending = 0
        # Jobs this turn failed (attempts used up): the delivery worker is woken after it.
        self.failed_in_turn = False

    async def _room(self, conn: psycopg.AsyncConnection, limit: int) -> int:
        """Return how many jobs to claim: limit, less while work after Kie's answer piles up.

        Backpressure: with BACKLOG_BOUND submissions in flight, callbacks unapplied or
        results undelivered (being sent included), new submissions wait (durably, in
        `pending`, in their fair order) until deliveries catch up, so a burst's results go
        out before more work is started. Never longer than hold_max_s at a stretch: a stuck
        delivery must not stop submissions (pending jobs have deadlines).
        """
        if self._bound is None:
            return limit
        backlog = self.sending + await JobStore(conn).downstream_backlog(bound=self._bound)
        now = time.monotonic()
        if backlog < self._bound:
            self.held_since = None
            return min(limit, self._bound - backlog)
        if self.held_since is None:
            self.held_since = now
        elif now - self.held_since >= self._hold_max_s:
            self.held_since = now  # let this batch through, then hold again
            logger.warning("submit_backpressure_overridden", extra={"backlog": backlog})
            return limit
        return 0

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """No channel: jobs are requested on the leader, which wakes the submitter in
        process (`Submitter.wake`); else every POLL_INTERVAL_S."""

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[worker.Job[Attempt]]:
        """Claim up to limit pending jobs in fair order and start an attempt of each."""
        claimed: list[worker.Job[Attempt]] = []
        limit = await self._room(conn, limit)
        if limit <= 0:
            return claimed
        for job in await claim_pending(conn, limit=limit, lease_s=self._lease_s):
            ticket = await begin_submit(conn, job.id, max_attempts=self._max_attempts)
            if ticket is None:  # attempts used up: the job failed (hold released)
                self.failed_in_turn = True
            else:
                claimed.append(worker.Job(key=job.id, attempts=ticket.attempt,
                                          payload=Attempt(job, ticket)))
        return claimed

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[worker.Settlement[Attempt]]) -> None:
        """Fail the jobs whose attempts are spent, free the retried ones' claims until their
        backoff passes; done jobs need no write."""
        for settlement in settlements:
            attempt = settlement.job.payload
            if settlement.outcome is worker.Outcome.DEAD:
                await apply_outcome(conn, attempt.job.id, Failed(
                    code=SUBMIT_FAILED_CODE, message=settlement.error or "submission failed"))
                self.failed_in_turn = True
            elif settlement.outcome is worker.Outcome.RETRY:
                await release_submit(conn, attempt.job.id, attempt=attempt.ticket.attempt,
                                     delay_s=settlement.retry_in_s)

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable],
                             older_than_s: float,
                             max_attempts: int) -> list[worker.Released[Attempt]]:
        """Free the claims no task of ours holds (at start: a dead leader's, at once).

        Nothing is dead-lettered here: the next claim's `begin_submit` fails a job whose
        attempts are used up (hold released)."""
        freed = await JobStore(conn).release_submissions(
            held=[key for key in held if isinstance(key, int)], older_than_s=older_than_s)
        # Only the token's hash is kept; nobody reads this ticket (nothing is dead-lettered).
        return [worker.Released(worker.Job(key=job.id, attempts=job.submit_attempts,
                                           payload=Attempt(job, SubmitTicket(0, ""))),
                                dead_lettered=False) for job in freed]


class Submitter:
    """Submit pending jobs to Kie while this instance leads."""

    name = "kie-submitter"

    def __init__(self, pool: AsyncConnectionPool, kie: KieClient, catalog: Catalog,
                 state: RuntimeState, *, webhook_base_url: str,
                 max_attempts: int,
                 max_concurrency: int = MAX_CONCURRENCY, lease_s: float = SUBMIT_LEASE_S,
                 first_poll_s: float = FIRST_POLL_AFTER_S,
                 status: JobStatusMessages | None = None,
                 retry_initial_s: float = RETRY_INITIAL_S,
                 retry_max_s: float = RETRY_MAX_S,
                 on_finished: Callable[[], None] | None = None) -> None:
        """Submit through kie (at most max_attempts per job); callbacks go to
        webhook_base_url; on_finished is called once jobs it failed are committed (the
        delivery worker of this process tells their users)."""
        self._on_finished = on_finished
        self._pool = pool
        self._kie = kie
        self._catalog = catalog
        self._state = state
        self._base_url = webhook_base_url
        self._max_concurrency = max_concurrency
        self._first_poll_s = first_poll_s
        self._status = status
        self._queue = SubmitQueue(lease_s=lease_s, max_attempts=max_attempts,
                                  backlog_bound=BACKLOG_BOUND)
        self.worker = worker.Worker(
            worker.WorkerConfig(name=self.name, concurrency=max_concurrency,
                                max_attempts=max_attempts,
                                handler_timeout_s=HANDLER_TIMEOUT_S,
                                poll_interval_s=POLL_INTERVAL_S,
                                retry_initial_s=retry_initial_s, retry_max_s=retry_max_s,
                                pipeline=True),
            pool=pool, queue=self._queue, handle=self.submit,
            concurrency=self._slots, on_turn=self._turned)

    async def run(self, leadership: Leadership | None) -> None:
        """Run the worker (and the bucket watch) until draining."""
        assert leadership is not None, "leader-only service"
        await self._prime_bucket()
        watch = asyncio.create_task(self._wake_on_refill(leadership), name="kie-submitter-bucket")
        try:
            await self.worker.run(leadership)
        finally:
            watch.cancel()
            await asyncio.wait([watch])

    async def _prime_bucket(self) -> None:
        """Count the createTasks of the last window in the bucket, a dead leader's included:
        Kie still counts them, and a full bucket would spend them again (429s)."""
        bucket = self._kie.bucket
        try:
            async with self._pool.connection() as conn:
                ages = await JobStore(conn).recent_submissions(window_s=bucket.window_s,
                                                               limit=bucket.capacity)
        except worker.DB_ERRORS as exc:  # the bucket stays as it is; a 429 is retried
            logger.warning("submit_bucket_prime_failed", extra={"error": str(exc)[:200]})
            return
        bucket.prime(ages)

    async def _wake_on_refill(self, leadership: Leadership) -> None:
        """Wake the worker as soon as the bucket has tokens again, so a window's submissions
        start at its first moment instead of at the next poll (the bucket is in-process: no
        database is asked)."""
        had = self._kie.bucket.available()
        while not leadership.draining.is_set():
            await wait_event(leadership.draining, BUCKET_WATCH_S)
            now = self._kie.bucket.available()
            if now > had:
                self.worker.wake()
            had = now

    def wake(self) -> None:
        """Claim now: a job was just requested (committed) in this process. Not while
        backpressure holds submissions back: a turn could claim nothing, and the delivery
        worker's progress wakes it then (`nudge`)."""
        if self._queue.held_since is None:
            self.worker.wake()

    def _turned(self, settled: Sequence[worker.Settlement[Attempt]]) -> None:
        if self._queue.failed_in_turn and self._on_finished is not None:
            self._on_finished()
        self._queue.failed_in_turn = False

    def nudge(self) -> None:
        """Run a turn now if backpressure holds submissions back (a result was delivered)."""
        if self._queue.held_since is not None:
            self.worker.wake()

    def _slots(self) -> int:
        """Return how many submissions may run: what the bucket grants now, plus one."""
        return max(1, min(self._max_concurrency, self._kie.bucket.available() + 1))

    async def submit(self, claimed: worker.Job[Attempt], leadership: Leadership) -> None:
        """Send one claimed attempt to Kie and store the task id it answers with."""
        self._queue.sending += 1
        try:
            await self._submit(claimed, leadership)
        finally:
            self._queue.sending -= 1

    async def _submit(self, claimed: worker.Job[Attempt], leadership: Leadership) -> None:
        attempt = claimed.payload
        job, ticket = attempt.job, attempt.ticket
        if ticket.attempt > 1:
            self._state.count("kie_resubmits")
            logger.warning("job_resubmitted", extra={"job_id": job.id,
                                                     "attempt": ticket.attempt})
        model = self._catalog.get(job.model_id)
        if model is None:
            await self._fail(leadership, job, MODEL_GONE_CODE, "the model left the catalog")
            return
        try:
            task_id = await self._kie.create_task(
                model, job.params, callback_url=callback_url(self._base_url, job.id,
                                                              ticket.token),
                take_token=functools.partial(self._take_token, leadership))
        except KieFinal as exc:
            await self._fail(leadership, job, f"kie_{exc.code}", str(exc))
            return
        except Drained:
            # Not sent: the job stays pending under our claim, which the next leader frees.
            logger.info("job_submit_left_to_next_leader", extra={"job_id": job.id})
            return
        except KieRetryable as exc:
            if not exc.maybe_executed:
                raise  # Kie refused: retried after the worker's backoff
            # Kie may have made the task: keep the claim for its lease so the callback can
            # settle the job before any second submission.
            self._state.count("kie_submits_unanswered")
            logger.warning("job_submit_unanswered", extra={"job_id": job.id,
                                                           "attempt": ticket.attempt,
                                                           "code": exc.code})
            return
        # One self-fencing statement in autocommit: the job's row is locked only while it
        # runs (its callback, with Kie fast, is being stored at the same moment).
        fence = leadership.fence_params()
        with fencing_errors():
            async with autocommit(self._pool) as conn:
                submitted = await record_submitted(conn, job.id, task_id,
                                                   first_poll_s=self._first_poll_s, fence=fence)
        self._state.count("kie_tasks_created")
        if submitted is not None and self._status is not None:
            self._status.running(submitted, leadership)

    async def _take_token(self, leadership: Leadership) -> None:
        """Wait for a createTask token unless the term drains first (raise Drained): a
        handover must not wait for the bucket's next window (up to 10 s) to send a job."""
        if leadership.draining.is_set():
            raise Drained
        token = asyncio.ensure_future(self._kie.bucket.acquire())
        drained = asyncio.ensure_future(leadership.draining.wait())
        try:
            await asyncio.wait({token, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (token, drained):
                waiter.cancel()
            await asyncio.wait({token, drained})
        if token.cancelled():
            raise Drained

    async def _fail(self, leadership: Leadership, job: Job, code: str, message: str) -> None:
        """Fail a job Kie will never take (its hold is released)."""
        async with leadership.fenced(self._pool) as conn:
            await apply_outcome(conn, job.id, Failed(code=code, message=message[:500]))
        if self._on_finished is not None:
            self._on_finished()
        self._state.count("kie_submits_refused")
        logger.warning("job_submit_refused", extra={"job_id": job.id, "code": code})
