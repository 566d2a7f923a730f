"""The generic leader worker on a toy queue (no Telegram): the shape the next workers reuse."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Hashable, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from supervisor.election import Leadership
from supervisor.worker import (
    Job,
    Outcome,
    Released,
    Settlement,
    Unprocessable,
    Worker,
    WorkerConfig,
)
from tests.helpers import eventually, lead

CREATE_SQL = b"""
CREATE TABLE toy_jobs (id BIGINT PRIMARY KEY, status TEXT NOT NULL DEFAULT 'pending',
                       attempts INT NOT NULL DEFAULT 0, claimed_term BIGINT,
                       claimed_at TIMESTAMPTZ, retry_at TIMESTAMPTZ, error TEXT)
"""
CLAIM_SQL = b"""
UPDATE toy_jobs SET status = 'processing', attempts = attempts + 1, claimed_term = %(term)s,
       claimed_at = now()
 WHERE id IN (SELECT id FROM toy_jobs
               WHERE status = 'pending' AND (retry_at IS NULL OR retry_at <= now())
               ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, attempts
"""
SETTLE_SQL = b"""
UPDATE toy_jobs SET status = %(status)s, error = %(error)s,
       retry_at = now() + make_interval(secs => %(delay_s)s)
 WHERE id = %(id)s AND status = 'processing' AND claimed_term = %(term)s
"""
RELEASE_SQL = b"""
UPDATE toy_jobs SET status = CASE WHEN attempts >= %(max)s THEN 'dead' ELSE 'pending' END
 WHERE status = 'processing' AND claimed_at <= now() - make_interval(secs => %(age)s)
   AND NOT (id = ANY(%(held)s))
RETURNING id, attempts, status
"""
STATUS_SQL = b"SELECT id, status, attempts FROM toy_jobs ORDER BY id"
TOY_STATUS = {Outcome.DONE: "done", Outcome.RETRY: "pending", Outcome.DEAD: "dead"}


class ToyQueue:
    """A queue in a dozen lines: what an area writes to get a worker."""

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """Nothing notifies: the worker polls."""

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[Job[int]]:
        cur = await conn.execute(CLAIM_SQL, {"term": term, "limit": limit})
        return [Job(r[0], r[1], r[0]) for r in await cur.fetchall()]

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[Settlement[int]]) -> None:
        for s in settlements:
            await conn.execute(SETTLE_SQL, {"status": TOY_STATUS[s.outcome], "error": s.error,
                                            "delay_s": s.retry_in_s, "id": s.job.key,
                                            "term": term})

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable], older_than_s: float,
                             max_attempts: int) -> list[Released[int]]:
        cur = await conn.execute(RELEASE_SQL, {"max": max_attempts, "age": older_than_s,
                                               "held": list(held)})
        return [Released(Job(r[0], r[1], r[0]), r[2] == "dead") for r in await cur.fetchall()]


async def seed(pool: AsyncConnectionPool, count: int) -> None:
    async with pool.connection() as conn:
        await conn.execute(CREATE_SQL)
        for n in range(1, count + 1):
            await conn.execute(b"INSERT INTO toy_jobs (id) VALUES (%s)", (n,))


async def statuses(pool: AsyncConnectionPool) -> list[tuple[int, str, int]]:
    async with pool.connection() as conn:
        cur = await conn.execute(STATUS_SQL)
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def run_until_settled(worker: Worker[int], leadership: Leadership,
                            pool: AsyncConnectionPool, wanted: set[str]) -> None:
    task = asyncio.ensure_future(worker.run(leadership))
    try:
        async def settled() -> bool:
            return all(s in wanted for _, s, _ in await statuses(pool))
        await eventually(settled, what="every toy job settled")
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 10)


async def test_a_worker_runs_every_job_once_within_its_concurrency(
        pool: AsyncConnectionPool) -> None:
    await seed(pool, 30)
    seen: list[int] = []
    running: set[int] = set()
    peak: list[int] = [0]

    async def handle(job: Job[int], leadership: Leadership) -> None:
        running.add(job.payload)
        peak[0] = max(peak[0], len(running))
        await asyncio.sleep(0)
        seen.append(job.payload)
        running.discard(job.payload)

    config = WorkerConfig(name="toy", concurrency=4, poll_interval_s=0.02)
    await run_until_settled(Worker(config, pool=pool, queue=ToyQueue(), handle=handle),
                            await lead(pool), pool, {"done"})
    assert sorted(seen) == list(range(1, 31))
    assert peak[0] <= 4
    assert {s for _, s, _ in await statuses(pool)} == {"done"}


async def test_a_failing_job_is_retried_then_dead_lettered_and_the_hook_runs_once(
        pool: AsyncConnectionPool) -> None:
    await seed(pool, 2)
    told: list[int] = []

    async def handle(job: Job[int], leadership: Leadership) -> None:
        if job.payload == 1:
            raise RuntimeError("always fails")
        raise Unprocessable("cannot even be read")

    async def tell(payload: int) -> None:
        told.append(payload)

    config = WorkerConfig(name="toy", concurrency=2, max_attempts=3, retry_initial_s=0.01,
                          poll_interval_s=0.02)
    worker = Worker(config, pool=pool, queue=ToyQueue(), handle=handle, on_dead_letter=tell)
    await run_until_settled(worker, await lead(pool), pool, {"dead"})
    assert await statuses(pool) == [(1, "dead", 3), (2, "dead", 1)]
    await eventually(lambda: told == [1], what="the hook told about job 1 only")
