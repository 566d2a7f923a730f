"""The leader's status poller: ask Kie about submitted jobs it has been quiet about.

Overview (a supervisor.worker.Worker over PollQueue)
    claim     first `expire_overdue`: jobs older than their category's deadline
              (JOB_EXPIRY_*) expire, their holds released (`on_finished` wakes the
              delivery worker once the turn committed); then `claim_for_poll`:
              submitted jobs with no unapplied callback whose `next_poll_at` is due,
              pushed back in the same statement (first poll 60 s after submission, then
              30 s doubling up to 600 s: Kie's per-task query limits are never approached)
    handle    recordInfo for the job's family; a terminal answer is stored with
              `store_poll_result` (fenced) into the same inbox as callbacks, and the applier
              settles it exactly as it would the callback
    settle    nothing to write: the claim itself moved the next poll

Failure handling: a Kie error (retryable or not) leaves the job for its next poll, already
scheduled by the claim; a job Kie never finishes expires at its deadline.

Crash analysis: a crash after the claim only delays that job's next poll; one after storing
the answer leaves it for the applier (a stored answer is never lost); answers are stored once
per distinct payload, so a poll that repeats a callback changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

import supervisor.worker as worker
from services.catalog import Catalog
from services.generation import Job, claim_for_poll, expire_overdue, store_poll_result
from services.generation.submission import POLL_BASE_INTERVAL_S, POLL_MAX_INTERVAL_S
from services.kie import KieClient, KieError, adapter_for
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

CONCURRENCY: Final[int] = 8
POLL_INTERVAL_S: Final[float] = 5.0
HANDLER_TIMEOUT_S: Final[float] = 60.0


class PollQueue:
    """Submitted jobs due for a status poll; expiry runs in the same fenced turn."""

    def __init__(self, deadlines_s: Mapping[str, float],
                 on_expired: Callable[[list[Job]], None], *, base_s: float,
                 max_s: float) -> None:
        self._deadlines_s = deadlines_s
        self._on_expired = on_expired
        self._base_s = base_s
        self._max_s = max_s

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """Nothing to listen to: polls are due by time."""

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[worker.Job[Job]]:
        """Expire overdue jobs, then claim up to limit jobs whose poll is due."""
        expired = await expire_overdue(conn, datetime.now(UTC), self._deadlines_s)
        if expired:
            self._on_expired(expired)
        jobs = await claim_for_poll(conn, limit=limit, base_s=self._base_s, max_s=self._max_s)
        return [worker.Job(key=job.id, attempts=1, payload=job) for job in jobs]

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[worker.Settlement[Job]]) -> None:
        """Write nothing: the claim already scheduled each job's next poll."""

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable],
                             older_than_s: float,
                             max_attempts: int) -> list[worker.Released[Job]]:
        """Free nothing: a poll claim holds no lease."""
        return []


class StatusPoller:
    """Poll Kie for jobs without news while this instance leads."""

    name = "kie-poller"

    def __init__(self, pool: AsyncConnectionPool, kie: KieClient, catalog: Catalog,
                 state: RuntimeState, *, deadlines_s: Mapping[str, float],
                 poll_base_s: float = POLL_BASE_INTERVAL_S,
                 poll_max_s: float = POLL_MAX_INTERVAL_S,
                 poll_interval_s: float = POLL_INTERVAL_S,
                 on_finished: Callable[[], None] | None = None) -> None:
        """Poll through kie; jobs expire past deadlines_s (seconds per category);
        on_finished is called once a turn that expired jobs committed (the delivery worker
        of this process claims them)."""
        self._pool = pool
        self._kie = kie
        self._catalog = catalog
        self._state = state
        self._on_finished = on_finished
        self._expired_in_turn = False
        self.worker = worker.Worker(
            worker.WorkerConfig(name=self.name, concurrency=CONCURRENCY, max_attempts=1,
                                handler_timeout_s=HANDLER_TIMEOUT_S,
                                poll_interval_s=poll_interval_s),
            pool=pool, queue=PollQueue(deadlines_s, self._expired, base_s=poll_base_s,
                                       max_s=poll_max_s), handle=self.poll,
            on_turn=self._turned)

    async def run(self, leadership: Leadership | None) -> None:
        """Run the worker until draining."""
        await self.worker.run(leadership)

    def _turned(self, settled: Sequence[worker.Settlement[Job]]) -> None:
        if self._expired_in_turn and self._on_finished is not None:
            self._on_finished()
        self._expired_in_turn = False

    def _expired(self, jobs: list[Job]) -> None:
        self._expired_in_turn = True
        self._state.count("jobs_expired", len(jobs))
        logger.warning("jobs_expired", extra={"job_ids": [job.id for job in jobs][:50]})

    async def poll(self, claimed: worker.Job[Job], leadership: Leadership) -> None:
        """Ask Kie for one job's state; store a terminal answer like a callback."""
        job = claimed.payload
        model = self._catalog.get(job.model_id)
        if model is None or job.kie_task_id is None:
            return
        adapter = adapter_for(model)
        try:
            data: Any = await self._kie.request("GET", adapter.status_path,
                                                params={"taskId": job.kie_task_id})
            state = adapter.parse_status(data)
        except KieError as exc:
            self._state.count("kie_polls_failed")
            logger.info("kie_poll_failed", extra={"job_id": job.id, "code": exc.code})
            return
        self._state.count("kie_polls")
        if not state.terminal:
            return
        async with leadership.fenced(self._pool) as conn:
            # Stored like a callback: its NOTIFY wakes the applier.
            await store_poll_result(conn, job.id, data)
