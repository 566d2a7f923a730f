"""The leader's callback applier: stored Kie answers -> settled jobs, in fenced transactions.

Overview
    Callbacks (any instance, callback_ingress.py) and the status poller's answers
    (poller.py) land in the `job_callbacks` inbox. A callback that reaches the leader's own
    ingress is settled in the transaction that stores it (`settle_stored`: the same
    settlement and hand-over as a batch's, for one callback). The rest (stored by another
    instance, or by the leader when its term could not settle it) come with a NOTIFY on
    `job_callbacks` naming the job's user, which wakes that user's partition (and every
    partition wakes every POLL_INTERVAL_S, in case a wake-up was missed). In ONE
    fenced transaction per batch reads up to BATCH unapplied callbacks of one partition of
    the users (PARTS partitions run in parallel: they share no job and no wallet, so they
    never wait on each other's row locks nor deadlock), turns each into an
    outcome with the job's Kie adapter (a callback body: `parse_callback`; a poll answer:
    `parse_status`), settles the jobs (`apply_callbacks`: success commits the hold, failure
    releases it, once per job) and marks the callbacks applied.

    Not a supervisor.worker.Worker: there is no I/O between reading a callback and settling
    its job, so claim, handle and settle collapse into one transaction; the Worker's split
    would add a claim column and a second transaction per batch for nothing.

States of a callback: unapplied -> applied (in the transaction that settles its job).
A non-terminal answer (running, Suno's `text`/`first`) is marked applied and changes nothing;
an answer after the job finished (duplicate, out of order) finds it finished: nothing moves.

Failure handling
    A database error fails the batch (rolled back): retried after Backoff, nothing lost.
    A payload the adapter cannot read is logged and marked applied (it would fail forever).
    Crash before the commit: the callbacks stay unapplied, the next leader applies them;
    after the commit: nothing to redo. Settlement is once per job in any case.

Hand-off to delivery: the batch's transaction also claims the jobs it finished for the
delivery worker of this process (`DeliveryHandoff`, as many as it has free slots), which
starts them once the batch committed: a result goes out as soon as its callback is applied,
without waiting for the worker's wake-up and claim transaction. When the batch finished
jobs it could not hand over (no free slot), it wakes the worker, which claims them. A crash
after the commit leaves the handed jobs claimed
by this term: the next leader's delivery worker frees them at its start (as any claim of a
dead leader), so they are delivered, at least once, as before.

The batch runs pipelined (`fenced(pipeline=True)`): BEGIN, the fence and the first read
share one round trip; the batch's finishes are one more (executemany), its ledger entries
(with the marks) one more, then the claim and the COMMIT: five in all, whatever the batch's
size (it was two per callback).
Every ORPHAN_SWEEP_EVERY_S the batch also moves orphan callbacks (stored by task id before
the job had it) to their jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.catalog import Catalog
from services.catalog.loader import Model
from services.generation import (
    CallbackSource,
    Failed,
    Outcome,
    Succeeded,
    apply_callbacks,
    reconcile_orphans,
)
from services.generation.store import JobStore, StoredCallback
from services.kie import TaskState, TaskStatus, adapter_for
from supervisor.aio import Backoff, wait_event
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

# Callbacks per transaction: big enough to drain a burst in few round trips, small enough
# to keep the fenced transaction (which holds the term row FOR SHARE) short.
BATCH: Final[int] = 20
# Partitions of the users applied in parallel (one transaction each at a time): a burst of
# callbacks settles PARTS times faster, and partitions share no job or wallet row.
PARTS: Final[int] = 4
POLL_INTERVAL_S: Final[float] = 1.0
ORPHAN_SWEEP_EVERY_S: Final[float] = 30.0
LISTEN_RETRY_S: Final[float] = 1.0
BACKOFF_INITIAL_S: Final[float] = 0.2
BACKOFF_MAX_S: Final[float] = 5.0
# The code of a job Kie reported failed without saying why.
KIE_FAILED_CODE: Final[str] = "kie_failed"
DB_ERRORS = (psycopg.Error, PoolTimeout, OSError)
ConnectFn = Callable[[], Awaitable[psycopg.AsyncConnection]]


def read_answer(model: Model, source: CallbackSource | str,
                payload: Mapping[str, Any]) -> TaskState | None:
    """Read a stored Kie answer with the model's adapter (None: unreadable).

    A callback body is read as a callback, the poller's recordInfo data as a status answer.
    """
    adapter = adapter_for(model)
    try:
        if CallbackSource(source) is CallbackSource.POLL:
            return adapter.parse_status(payload)
        return adapter.parse_callback(payload)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("kie_answer_unreadable", extra={"model": model.id,
                                                       "error": str(exc)[:200]})
        return None


def outcome_of(state: TaskState) -> Outcome | None:
    """Return the settlement a task state calls for (None while the task is not final)."""
    if state.status is TaskStatus.SUCCEEDED:
        return Succeeded(result_urls=list(state.result_urls))
    if state.status is TaskStatus.FAILED:
        return Failed(code=state.fail_code or KIE_FAILED_CODE,
                      message=state.fail_message or "Kie reported a failure")
    return None


class DeliveryHandoff(Protocol):
    """The delivery worker as the applier hands it the jobs a batch finished."""

    async def claim_finished(self, conn: psycopg.AsyncConnection, job_ids: Sequence[int],
                             leadership: Leadership) -> Sequence[Any]:
        """Claim (some of) these jobs for delivery inside the batch's transaction."""

    def adopt(self, claimed: Sequence[Any], leadership: Leadership) -> None:
        """Deliver what claim_finished claimed, once the batch committed."""

    def wake(self) -> None:
        """Run a claim turn now: the batch finished jobs it could not hand over."""


@dataclass(frozen=True, slots=True)
class Settled:
    """What one settling transaction did: callbacks applied, jobs finished, deliveries
    claimed for this process (handed over once it committed)."""

    applied: int
    finished: int
    claimed: Sequence[Any]


class CallbackApplier:
    """Apply stored Kie answers to their jobs while this instance leads."""

    name = "kie-callbacks"

    def __init__(self, pool: AsyncConnectionPool, catalog: Catalog, state: RuntimeState, *,
                 listen_connect: ConnectFn | None = None, parts: int = PARTS,
                 deliveries: DeliveryHandoff | None = None) -> None:
        """Apply through pool in `parts` parallel user partitions, reading models from catalog;
        the jobs a batch finishes are claimed for `deliveries` in its transaction."""
        self._pool = pool
        self._deliveries = deliveries
        self._catalog = catalog
        self._state = state
        self._listen_connect = listen_connect
        self._parts = parts
        self._wakes = [asyncio.Event() for _ in range(parts)]
        self._next_sweep = 0.0
        self._leading: Leadership | None = None  # the term this process applies for

    @property
    def leading(self) -> Leadership | None:
        """The term this process's applier applies for while it is neither lost nor
        draining (this instance leads), else None: while there is one, this process's
        ingress settles its callbacks itself (`settle_stored`) instead of a NOTIFY."""
        term = self._leading
        if term is None or term.draining.is_set() or term.lost.is_set():
            return None
        return term

    async def run(self, leadership: Leadership | None) -> None:
        """Apply batches of every partition until draining; each wait races the drain."""
        assert leadership is not None, "leader-only service"
        parts = [asyncio.create_task(self._drain(leadership, part), name=f"kie-callbacks-{part}")
                 for part in range(self._parts)]
        # The listener blocks on notifications and the parts on their wake events: draining
        # must end both at once, or a graceful handover waits out the whole shutdown grace.
        helpers = [asyncio.create_task(self._wake_all_on(leadership.draining),
                                       name="kie-callbacks-drain-wake")]
        if self._listen_connect is not None:
            helpers.append(asyncio.create_task(self._listen(leadership),
                                               name="kie-callbacks-listen"))
        tasks = parts + helpers
        self._leading = leadership
        try:
            await asyncio.gather(*parts)
        finally:
            self._leading = None
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    async def _wake_all_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self._wake_all()

    async def _drain(self, leadership: Leadership, part: int) -> None:
        """Apply one partition's batches while there are any; then wait for a NOTIFY."""
        wake = self._wakes[part]
        backoff = Backoff(initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S)
        while not leadership.draining.is_set():
            wake.clear()
            try:
                applied = await self.apply_batch(leadership, part=part, parts=self._parts)
            except DB_ERRORS as exc:
                delay = backoff.next_delay()
                logger.error("callback_batch_failed", extra={
                    "part": part, "error": str(exc)[:200], "attempt": backoff.attempts,
                    "next_delay_s": round(delay, 2)})
                await wait_event(leadership.draining, delay)
                continue
            backoff.reset()
            if applied < BATCH:
                await wait_event(wake, POLL_INTERVAL_S)

    async def apply_batch(self, leadership: Leadership, *, part: int = 0, parts: int = 1) -> int:
        """Apply up to BATCH stored callbacks of one user partition in one fenced transaction;
        return how many."""
        # Pipelined: BEGIN and the fence go with the first read (round trips: module doc).
        async with leadership.fenced(self._pool, pipeline=True) as conn:
            if part == 0 and time.monotonic() >= self._next_sweep:
                await reconcile_orphans(conn)
                self._next_sweep = time.monotonic() + ORPHAN_SWEEP_EVERY_S
            callbacks = await JobStore(conn).pending_callbacks_of_users(
                part=part, parts=parts, limit=BATCH)
            settled = await self._settle(conn, callbacks, leadership)
        self.hand_over(settled, leadership)
        return len(callbacks)

    async def settle_stored(self, conn: psycopg.AsyncConnection, callback: StoredCallback,
                            model_id: str, leadership: Leadership) -> Settled:
        """Settle a callback just stored in the caller's fenced transaction (this process's
        ingress, while it leads) with its job's model; `hand_over` the result once that
        committed."""
        return await self._settle(conn, [(callback, model_id)], leadership)

    async def _settle(self, conn: psycopg.AsyncConnection,
                      callbacks: Sequence[tuple[StoredCallback, str]],
                      leadership: Leadership) -> Settled:
        """Settle the callbacks' jobs and claim those finished for delivery, in conn's
        fenced transaction."""
        settlements = await apply_callbacks(conn, [
            (callback, self._outcome(callback, model_id)) for callback, model_id in callbacks])
        finished = [settlement.job.id for settlement in settlements
                    if settlement is not None and settlement.applied]
        claimed: Sequence[Any] = ()
        if finished and self._deliveries is not None:
            claimed = await self._deliveries.claim_finished(conn, finished, leadership)
        return Settled(applied=len(callbacks), finished=len(finished), claimed=claimed)

    def hand_over(self, settled: Settled, leadership: Leadership) -> None:
        """Once the settling transaction committed: deliver what it claimed, and wake the
        delivery worker for the jobs it could not hand over (no free slot)."""
        if settled.applied:
            self._state.count("kie_callbacks_applied", settled.applied)
        if self._deliveries is None:
            return
        if settled.claimed:
            self._deliveries.adopt(settled.claimed, leadership)
        if len(settled.claimed) < settled.finished:
            self._deliveries.wake()

    def _outcome(self, callback: StoredCallback, model_id: str) -> Outcome | None:
        """Read a stored answer with its job's adapter; None when not final or unreadable."""
        model = self._catalog.get(model_id)
        if model is None:
            logger.warning("callback_without_model", extra={"job_id": callback.job_id,
                                                            "model": model_id})
            return None
        state = read_answer(model, callback.source, callback.payload)
        return outcome_of(state) if state is not None else None

    async def _listen(self, leadership: Leadership) -> None:
        """Hold a LISTEN session on the callbacks channel; a notification wakes its user's part."""
        assert self._listen_connect is not None
        while not leadership.draining.is_set():
            try:
                async with await self._listen_connect() as conn:
                    await JobStore(conn).listen_callbacks()
                    self._wake_all()  # catch up on anything stored before LISTEN began
                    async for notify in conn.notifies():
                        self._wake_for(notify.payload)
            except DB_ERRORS as exc:
                logger.warning("callback_listen_failed", extra={"error": str(exc)[:200]})
                await wait_event(leadership.draining, LISTEN_RETRY_S)

    def _wake_all(self) -> None:
        for wake in self._wakes:
            wake.set()

    def _wake_for(self, user: str) -> None:
        """Wake the partition of the user a notification names (all of them when it names
        none: orphans moved to their jobs), so a callback costs one transaction, not PARTS."""
        if user.isdigit():
            self._wakes[int(user) % self._parts].set()
        else:
            self._wake_all()
