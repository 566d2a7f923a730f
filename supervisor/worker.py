"""The one shape of a leader worker: claim durable jobs under the term, run them, settle them.

A worker knows nothing of Telegram, Kie or money. An area supplies a `Queue` (its store: how
to claim, settle and release its rows, and which NOTIFY channel wakes it) and a handler; the
worker supplies everything else: waking, bounded concurrency, retries with the shared
`supervisor.aio.Backoff`, dead-lettering after `max_attempts`, reaping, drain and cancel.

Example (a delivery worker is a queue, a handler and a few numbers)::

    worker = Worker(WorkerConfig(name="kie-delivery", concurrency=8, max_attempts=5),
                    pool=pool, queue=DeliveryStore(pool), handle=deliver,
                    listen_connect=listen_connect, on_dead_letter=tell_the_user)
    # a leader-only service: `await worker.run(leadership)`

The loop (one turn per wake-up: a NOTIFY on the queue's channel, a finished job, or every
`poll_interval_s` in case a notification was missed)
    1. In ONE fenced transaction (`leadership.fenced(pool)`): settle the outcomes of the jobs
       that finished since the last turn, then claim up to the free slots. While busy it
       claims only once `claim_batch` slots are free, so round trips per job stay below one.
    2. Start one task per claimed job, at most `concurrency()` at once.
    3. A job's outcome is only *recorded* in memory by its task; the next turn writes it. A
       turn that fails (statement timeout, PoolTimeout, killed connection) keeps every
       outcome and is retried after a backoff, with the in-flight jobs left running: a
       settle that failed is retried, never dropped.
    Releases run in their own fenced transaction: at the start of every run (every claim of
    ours that no task holds, so a restart within the same term strands nothing, plus any
    older term's) and every `reap_every_s` (claims older than `handler_timeout_s +
    reap_margin_s` that no task holds). A released job whose attempts are used up is
    dead-lettered instead of going back in line: the attempt is counted at claim, so a job
    that kills or freezes the process (no handler ever returns) still uses its attempts up.

Outcomes of a handler
    returns                      -> done
    raises Unprocessable         -> dead letter now, without the dead-letter hook (there is
                                    nobody to tell: the job cannot even be read)
    raises FencedError           -> nothing: the term is over and the next leader owns the job
    raises anything else, or runs past handler_timeout_s
                                 -> retry after Backoff(attempts), or dead letter (with the
                                    hook) once attempts reach max_attempts
    The dead-letter hook (`on_dead_letter(payload)`) runs only after the dead letter
    committed, so a deposed leader (its settle fenced) never calls it.

Crash analysis (what happens on a crash between claim and settle)
    - Crash after the claim committed, before or during the handler: the job stays claimed
      by our term. The next leader releases it on promotion (older term); a restart of this
      worker within the term releases it at start (no task holds it); a worker that lives
      on but lost the job reaps it after handler_timeout_s + reap_margin_s. It runs again:
      handlers are at-least-once and key their effects by the job.
    - Crash after the handler returned, before the settle committed: same as above; the
      job's effects are already done and keyed, so the re-run changes nothing.
    - Crash after the settle committed: nothing to redo.
    - A job that crashes the process each time it runs: each claim counts an attempt; the
      release after the last one dead-letters it (hook included), so no leader loops on it.
    - Draining (graceful handover): no new claims, in-flight jobs finish, the last outcomes
      are settled (retried while the term is trusted): a handover re-runs nothing.
      Cancelled: in-flight tasks are cancelled; their jobs stay claimed and are released as
      above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from supervisor.aio import Backoff, wait_event
from supervisor.election import FencedError, Leadership

logger = logging.getLogger(__name__)

# Errors of the database or the way to it: a turn that hits one is retried, never fatal.
DB_ERRORS = (psycopg.Error, PoolTimeout, OSError)
# Backoff of a failing turn (the DB is away or slow); in-flight jobs keep running meanwhile.
TURN_BACKOFF_INITIAL_S = 0.2
TURN_BACKOFF_MAX_S = 5.0
LISTEN_RETRY_S = 1.0
# Errors kept with a job are cut to this many characters.
MAX_ERROR_CHARS = 1000

P = TypeVar("P")
ConnectFn = Callable[[], Awaitable[psycopg.AsyncConnection]]


class Unprocessable(Exception):
    """The job can never be handled (e.g. it cannot be parsed): dead-letter it, tell nobody."""


class Outcome(StrEnum):
    """What a settle records for one job."""

    DONE = "done"         # handled to completion
    RETRY = "retry"       # back in line after a backoff
    DEAD = "dead"         # dead-lettered, its error kept


@dataclass(frozen=True, slots=True)
class Job(Generic[P]):
    """One claimed row: its key, the attempts so far (this one included) and its payload."""

    key: Hashable
    attempts: int
    payload: P


@dataclass(frozen=True, slots=True)
class Settlement(Generic[P]):
    """The outcome of one job, to be written at the next turn."""

    job: Job[P]
    outcome: Outcome
    error: str | None = None
    retry_in_s: float = 0.0
    notify: bool = True   # call the dead-letter hook once the dead letter committed


@dataclass(frozen=True, slots=True)
class Released(Generic[P]):
    """A claim a release freed; dead_lettered when its attempts were used up."""

    job: Job[P]
    dead_lettered: bool


class Queue(Protocol[P]):
    """An area's durable jobs: every method runs inside the worker's fenced transaction."""

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """LISTEN on the channel the area notifies when it stores new jobs."""

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[Job[P]]:
        """Claim up to limit ready jobs for term (counting an attempt on each)."""

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[Settlement[P]]) -> None:
        """Write the outcomes of term's claims (guarded by term and status)."""

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable], older_than_s: float,
                             max_attempts: int) -> list[Released[P]]:
        """Free claims older than older_than_s that are not in held; dead-letter spent ones."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The numbers of one worker."""

    name: str
    concurrency: int
    max_attempts: int = 3
    handler_timeout_s: float = 30.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    poll_interval_s: float = 1.0
    # While busy, claim again only once this many slots are free (default concurrency / 4).
    claim_batch: int | None = None
    # A claim no task holds for handler_timeout_s + this is reaped (a margin for the settle).
    reap_margin_s: float = 30.0
    reap_every_s: float = 60.0
    # Turns in pipeline mode (`Leadership.fenced(pipeline=True)`: two round trips fewer
    # each), for a queue whose claim and settle read every result they use (no rowcount).
    pipeline: bool = False


@dataclass(slots=True)
class _Run(Generic[P]):
    """The state of one run (one term, one start): lost with it on a restart, by design."""

    leadership: Leadership
    in_flight: dict[Hashable, asyncio.Task[None]] = field(default_factory=dict)
    outcomes: list[Settlement[P]] = field(default_factory=list)
    released: bool = False
    next_reap: float = 0.0


class Worker(Generic[P]):
    """Claim, run and settle an area's jobs while this instance leads."""

    def __init__(self, config: WorkerConfig, *, pool: AsyncConnectionPool, queue: Queue[P],
                 handle: Callable[[Job[P], Leadership], Awaitable[None]],
                 listen_connect: ConnectFn | None = None,
                 concurrency: Callable[[], int] | None = None,
                 on_dead_letter: Callable[[P], Awaitable[None]] | None = None,
                 on_turn: Callable[[Sequence[Settlement[P]]], None] | None = None) -> None:
        self.config = config
        self.name = config.name
        self._pool = pool
        self._queue = queue
        self._handle = handle
        self._listen_connect = listen_connect
        self._concurrency = concurrency or (lambda: config.concurrency)
        self._on_dead_letter = on_dead_letter
        self._on_turn = on_turn
        self._wake = asyncio.Event()
        self._hooks: set[asyncio.Task[None]] = set()
        self._run: _Run[P] | None = None

    def wake(self) -> None:
        """Run a loop turn now (e.g. another worker just made a job ready), not at the poll."""
        self._wake.set()

    def free_slots(self, leadership: Leadership) -> int:
        """Return how many more jobs this worker would start now under leadership's term
        (0 when it is not running that term, has not yet made its start's release, or is
        draining). A bound of the moment: claimers that read it at once may overshoot it."""
        run = self._adopting(leadership)
        return 0 if run is None else max(0, self._concurrency() - len(run.in_flight))

    def adopt(self, jobs: Sequence[Job[P]], leadership: Leadership) -> None:
        """Run jobs that another loop of this process claimed for this queue, in a fenced
        transaction of leadership's term that has committed: it spares them a claim turn
        (a wake-up and a transaction) when that loop is what made them ready.

        They run and settle as if this worker had claimed them. Should the run have ended
        (or be draining) they are not started: claims no task holds are released by the
        next run's start, as after a crash. Nor before the run's start-of-run release is
        done: that release frees every claim no task holds, so a job adopted before it
        could be freed and claimed (run) a second time.
        """
        run = self._adopting(leadership)
        if run is None:
            return
        for job in jobs:
            if job.key not in run.in_flight:
                run.in_flight[job.key] = asyncio.create_task(
                    self._run_job(run, job), name=f"{self.name}-{job.key}")

    def _adopting(self, leadership: Leadership) -> _Run[P] | None:
        """Return the run that may take adopted jobs of leadership's term, if any."""
        run = self._run
        if run is None or run.leadership is not leadership or not run.released \
                or leadership.draining.is_set():
            return None
        return run

    async def run(self, leadership: Leadership | None) -> None:
        """Work until draining (finish in-flight jobs, settle them) or cancelled."""
        assert leadership is not None, "leader-only service"
        run: _Run[P] = _Run(leadership)
        self._run = run
        side = [asyncio.create_task(self._wake_on(leadership.draining), name=f"{self.name}-drain")]
        if self._listen_connect is not None:
            side.append(asyncio.create_task(self._listen(leadership), name=f"{self.name}-listen"))
        try:
            await self._loop(run)
            if run.in_flight:
                await asyncio.wait(run.in_flight.values())
            await self._final_settle(run)  # a drained handover re-runs nothing
        finally:
            if self._run is run:
                self._run = None
            for task in [*side, *run.in_flight.values()]:
                task.cancel()
            await asyncio.wait([*side, *run.in_flight.values()])

    async def _loop(self, run: _Run[P]) -> None:
        cfg = self.config
        backoff = Backoff(initial_s=TURN_BACKOFF_INITIAL_S, max_s=TURN_BACKOFF_MAX_S)
        while not run.leadership.draining.is_set():
            self._wake.clear()
            slots = max(1, self._concurrency())
            free = max(0, slots - len(run.in_flight))
            batch = min(cfg.claim_batch or max(1, cfg.concurrency // 4), slots)
            limit = free if not run.in_flight or free >= batch else 0
            try:
                await self._maybe_release(run)
                jobs = await self._turn(run, limit)
            except DB_ERRORS as exc:  # FencedError is not one: the term is over, so is the run
                delay = backoff.next_delay()
                logger.error("worker_turn_failed", extra={
                    "worker": self.name, "error": str(exc)[:200], "attempt": backoff.attempts,
                    "next_delay_s": delay, "unsettled": len(run.outcomes)})
                await wait_event(run.leadership.draining, delay)
                continue
            backoff.reset()
            for job in jobs:
                if job.key not in run.in_flight:  # adopted meanwhile: it runs already
                    run.in_flight[job.key] = asyncio.create_task(
                        self._run_job(run, job), name=f"{self.name}-{job.key}")
            if limit and len(jobs) == limit:
                continue  # there may be more ready right now
            await wait_event(self._wake, cfg.poll_interval_s)

    async def _maybe_release(self, run: _Run[P]) -> None:
        """Release unheld claims at start (any age) and, every reap_every_s, stale ones."""
        cfg = self.config
        now = time.monotonic()
        if run.released and now < run.next_reap:
            return
        older_than_s = cfg.handler_timeout_s + cfg.reap_margin_s if run.released else 0.0
        held = set(run.in_flight) | {s.job.key for s in run.outcomes}
        async with run.leadership.fenced(self._pool) as conn:
            released = await self._queue.release_claims(
                conn, held=held, older_than_s=older_than_s, max_attempts=cfg.max_attempts)
        run.released, run.next_reap = True, now + cfg.reap_every_s
        if released:
            logger.warning("worker_claims_released", extra={
                "worker": self.name, "count": len(released), "term": run.leadership.term,
                "dead_lettered": sum(r.dead_lettered for r in released)})
        for r in released:
            if r.dead_lettered:
                self._notify(r.job.payload)

    async def _turn(self, run: _Run[P], limit: int) -> list[Job[P]]:
        """Settle the recorded outcomes and claim up to limit jobs, in one fenced transaction."""
        outcomes = list(run.outcomes)
        if not outcomes and not limit:
            return []
        term = run.leadership.term
        async with run.leadership.fenced(self._pool, pipeline=self.config.pipeline) as conn:
            if outcomes:
                await self._queue.settle(conn, term=term, settlements=outcomes)
            jobs = await self._queue.claim(conn, term=term, limit=limit) if limit else []
        del run.outcomes[:len(outcomes)]  # committed; later outcomes wait for the next turn
        if self._on_turn is not None:
            self._on_turn(outcomes)
        for s in outcomes:
            if s.outcome is Outcome.DEAD and s.notify:
                self._notify(s.job.payload)
        return jobs

    async def _final_settle(self, run: _Run[P]) -> None:
        """Write the last outcomes while the term is trusted, retrying database errors."""
        backoff = Backoff(initial_s=TURN_BACKOFF_INITIAL_S, max_s=TURN_BACKOFF_MAX_S)
        while run.outcomes and run.leadership.trusted() and not run.leadership.lost.is_set():
            try:
                await self._turn(run, 0)
            except DB_ERRORS as exc:
                delay = backoff.next_delay()
                logger.error("worker_settle_failed", extra={
                    "worker": self.name, "error": str(exc)[:200], "next_delay_s": delay})
                await wait_event(run.leadership.lost, delay)

    async def _run_job(self, run: _Run[P], job: Job[P]) -> None:
        cfg = self.config
        started = time.perf_counter()
        try:
            async with asyncio.timeout(cfg.handler_timeout_s):
                await self._handle(job, run.leadership)
        except asyncio.CancelledError:
            raise
        except FencedError:
            return  # our term is over; the next leader owns this job now
        except Unprocessable as exc:
            run.outcomes.append(Settlement(job, Outcome.DEAD, _error(exc), notify=False))
        except Exception as exc:
            run.outcomes.append(self._failure(job, exc))
        else:
            run.outcomes.append(Settlement(job, Outcome.DONE))
            logger.debug("job_done", extra={
                "worker": self.name, "key": job.key,
                "ms": round((time.perf_counter() - started) * 1000, 2)})
        finally:
            run.in_flight.pop(job.key, None)
            self._wake.set()

    def _failure(self, job: Job[P], exc: BaseException) -> Settlement[P]:
        error = _error(exc)
        if job.attempts < self.config.max_attempts:
            delay = Backoff(initial_s=self.config.retry_initial_s, max_s=self.config.retry_max_s,
                            attempts=job.attempts - 1).next_delay()
            logger.error("job_failed", extra={"worker": self.name, "key": job.key,
                                              "error": error, "attempt": job.attempts,
                                              "next_delay_s": delay})
            return Settlement(job, Outcome.RETRY, error, retry_in_s=delay)
        logger.error("job_dead_lettered", extra={"worker": self.name, "key": job.key,
                                                 "error": error, "attempt": job.attempts})
        return Settlement(job, Outcome.DEAD, error)

    def _notify(self, payload: P) -> None:
        """Run the dead-letter hook in the background (best effort, never blocks a turn)."""
        if self._on_dead_letter is None:
            return
        task = asyncio.create_task(self._call_hook(payload), name=f"{self.name}-dead-letter")
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def _call_hook(self, payload: P) -> None:
        assert self._on_dead_letter is not None
        try:
            await self._on_dead_letter(payload)
        except Exception as exc:
            logger.warning("dead_letter_hook_failed", extra={"worker": self.name,
                                                             "error": str(exc)[:200]})

    async def _wake_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self._wake.set()

    async def _listen(self, leadership: Leadership) -> None:
        """Hold a LISTEN session and wake the loop on every notification."""
        assert self._listen_connect is not None
        while not leadership.draining.is_set():
            try:
                async with await self._listen_connect() as conn:
                    await self._queue.listen(conn)
                    self._wake.set()  # catch up on anything stored before LISTEN began
                    async for _ in conn.notifies():
                        self._wake.set()
            except DB_ERRORS as exc:
                logger.warning("worker_listen_failed", extra={"worker": self.name,
                                                              "error": str(exc)[:200]})
                await wait_event(leadership.draining, LISTEN_RETRY_S)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]

