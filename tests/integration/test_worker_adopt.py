"""Jobs another loop of the process claimed under the term are handed to the running worker
(`free_slots`, `adopt`): run once and settled as its own claims; refused by a worker that does
not run that term."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Hashable, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from supervisor.election import Leadership
from supervisor.worker import Job, Released, Settlement, Worker, WorkerConfig
from tests.helpers import TEST_LEASE, eventually, lead
from tests.integration.test_worker import ToyQueue, seed, statuses

CONCURRENCY = 4
# No poll turns during a test: every turn is one the test caused (a wake-up or a job's end).
NEVER_S = 3600.0
INSERT_SQL = b"INSERT INTO toy_jobs (id) VALUES (%s)"


class Handler:
    """A handler that records each run (job, attempt) and blocks until released."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []
        self.release = asyncio.Event()

    async def __call__(self, job: Job[int], leadership: Leadership) -> None:
        self.runs.append((job.payload, job.attempts))
        await self.release.wait()


class Started:
    """on_turn: set once the worker's first turn committed (its start release is behind it,
    so a claim made after it is not freed as a dead run's)."""

    def __init__(self) -> None:
        self.turned = asyncio.Event()

    def __call__(self, settled: Sequence[Settlement[int]]) -> None:
        self.turned.set()


def toy_worker(pool: AsyncConnectionPool, handle: Handler, *,
               queue: ToyQueue | None = None, on_turn: Started | None = None) -> Worker[int]:
    config = WorkerConfig(name="toy", concurrency=CONCURRENCY, poll_interval_s=NEVER_S)
    return Worker(config, pool=pool, queue=queue or ToyQueue(), handle=handle,
                  on_turn=on_turn)


async def claim_elsewhere(pool: AsyncConnectionPool, leadership: Leadership,
                          ids: Sequence[int]) -> list[Job[int]]:
    """Add jobs and claim them in one fenced transaction of the term, as another loop of the
    process does (the applier for delivery): the worker never sees them ready."""
    async with leadership.fenced(pool) as conn:
        for job_id in ids:
            await conn.execute(INSERT_SQL, (job_id,))
        jobs = await ToyQueue().claim(conn, term=leadership.term, limit=len(ids))
    assert sorted(j.payload for j in jobs) == sorted(ids)
    return jobs


async def stop(task: asyncio.Task[None], leadership: Leadership, handle: Handler) -> None:
    """Drain the run (its in-flight jobs released first, so a failed test ends at once)."""
    handle.release.set()
    leadership.draining.set()
    await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_worker(pool: AsyncConnectionPool
                         ) -> AsyncIterator[tuple[Leadership, Handler, Worker[int]]]:
    """Lead, start a toy worker and wait for its first turn (its start release is behind
    it); stop it when the block ends."""
    await seed(pool, 0)
    leadership = await lead(pool)
    handle, started = Handler(), Started()
    worker = toy_worker(pool, handle, on_turn=started)
    task = asyncio.create_task(worker.run(leadership))
    try:
        await asyncio.wait_for(started.turned.wait(), 10)
        yield leadership, handle, worker
    finally:
        await stop(task, leadership, handle)


async def test_adopted_jobs_run_once_count_in_flight_and_are_settled(
        pool: AsyncConnectionPool) -> None:
    async with running_worker(pool) as (leadership, handle, worker):
        assert worker.free_slots(leadership) == CONCURRENCY
        jobs = await claim_elsewhere(pool, leadership, [1, 2])
        worker.adopt(jobs, leadership)
        worker.adopt(jobs, leadership)  # handed over twice: still one task per job
        # Counted at once (the hand-over is synchronous), so a next claim takes fewer.
        assert worker.free_slots(leadership) == CONCURRENCY - 2
        await eventually(lambda: len(handle.runs) == 2, what="both adopted jobs running")
        handle.release.set()

        async def settled() -> bool:
            return [s for _, s, _ in await statuses(pool)] == ["done", "done"]
        await eventually(settled, what="the adopted jobs settled done by the worker")
        await eventually(lambda: worker.free_slots(leadership) == CONCURRENCY,
                         what="the slots freed")
    assert sorted(handle.runs) == [(1, 1), (2, 1)]  # each once, on the attempt claimed
    assert await statuses(pool) == [(1, "done", 1), (2, "done", 1)]


async def test_a_worker_not_started_offers_no_slot_and_adopts_nothing(
        pool: AsyncConnectionPool) -> None:
    await seed(pool, 0)
    leadership = await lead(pool)
    handle = Handler()
    handle.release.set()
    worker = toy_worker(pool, handle)
    assert worker.free_slots(leadership) == 0
    jobs = await claim_elsewhere(pool, leadership, [1])
    worker.adopt(jobs, leadership)
    # The claim no task holds is freed by the run's start, as after a crash, and claimed
    # again: had adopt started it, it would also have run on attempt 1.
    task = asyncio.create_task(worker.run(leadership))
    try:
        async def done() -> bool:
            return await statuses(pool) == [(1, "done", 2)]
        await eventually(done, what="the job run by the worker's own claim")
    finally:
        await stop(task, leadership, handle)
    assert handle.runs == [(1, 2)]
    assert worker.free_slots(leadership) == 0  # the run ended


async def test_another_leadership_object_gets_no_slot_and_adopts_nothing(
        pool: AsyncConnectionPool) -> None:
    async with running_worker(pool) as (leadership, handle, worker):
        # Same term and lease, another object: not the run's (a restarted term, a stale one).
        other = Leadership(term=leadership.term, instance_id="test", lease_name=TEST_LEASE,
                           trusted=lambda: True)
        assert worker.free_slots(other) == 0
        jobs = await claim_elsewhere(pool, leadership, [1])
        worker.adopt(jobs, other)
        assert worker.free_slots(leadership) == CONCURRENCY  # nothing was started
        assert handle.runs == []
        worker.adopt(jobs, leadership)
        assert worker.free_slots(leadership) == CONCURRENCY - 1
        handle.release.set()

        async def done() -> bool:
            return await statuses(pool) == [(1, "done", 1)]
        await eventually(done, what="the job adopted under the run's leadership settled")
    assert handle.runs == [(1, 1)]


async def test_a_draining_worker_offers_no_slot_and_adopts_nothing(
        pool: AsyncConnectionPool) -> None:
    async with running_worker(pool) as (leadership, handle, worker):
        worker.adopt(await claim_elsewhere(pool, leadership, [1]), leadership)
        await eventually(lambda: handle.runs == [(1, 1)], what="job 1 running")
        leadership.draining.set()  # job 1 keeps the run alive: it finishes in-flight work
        assert worker.free_slots(leadership) == 0
        worker.adopt(await claim_elsewhere(pool, leadership, [2]), leadership)
    assert handle.runs == [(1, 1)]
    # Job 2 stays claimed by the term, for the next run's start (or leader) to free.
    assert await statuses(pool) == [(1, "done", 1), (2, "processing", 1)]


class GatedRelease(ToyQueue):
    """The toy queue whose start-of-run release waits until the test lets it go."""

    def __init__(self) -> None:
        self.releasing = asyncio.Event()
        self.go = asyncio.Event()

    async def release_claims(self, conn: psycopg.AsyncConnection, *, held: Collection[Hashable],
                             older_than_s: float, max_attempts: int) -> list[Released[int]]:
        self.releasing.set()
        await self.go.wait()
        return await super().release_claims(conn, held=held, older_than_s=older_than_s,
                                            max_attempts=max_attempts)


async def test_a_worker_adopts_nothing_before_its_start_release_so_nothing_runs_twice(
        pool: AsyncConnectionPool) -> None:
    # A claim handed over while the start release is under way would be freed by it (no task
    # held it when the release began) and claimed again: two runs of one job. Until that
    # release is done the worker offers no slot and adopts nothing; the job runs once, on the
    # claim of the worker's own turn after the release freed the adopted one.
    await seed(pool, 0)
    leadership = await lead(pool)
    handle, queue = Handler(), GatedRelease()
    worker = toy_worker(pool, handle, queue=queue)
    # The other loop's transaction claims before the release's begins and commits while the
    # release is under way (so the release, which began later, frees that claim).
    async with leadership.fenced(pool) as conn:
        await conn.execute(INSERT_SQL, (1,))
        jobs = await ToyQueue().claim(conn, term=leadership.term, limit=1)
        task = asyncio.create_task(worker.run(leadership))
        await asyncio.wait_for(queue.releasing.wait(), 10)
        assert worker.free_slots(leadership) == 0
    try:
        worker.adopt(jobs, leadership)
        queue.go.set()
        await eventually(lambda: handle.runs == [(1, 2)], what="job 1 run by the worker's claim")
        assert worker.free_slots(leadership) == CONCURRENCY - 1
    finally:
        await stop(task, leadership, handle)
    assert handle.runs == [(1, 2)]
    assert await statuses(pool) == [(1, "done", 2)]
