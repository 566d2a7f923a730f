"""The leader's scheduled maintenance runs the jobs areas give it; the inbox's job prunes
handled updates after the retention period, open ones never, and only under a current term."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import AsyncConnectionPool

from services.maintenance import Maintenance, ScheduledJob
from services.telegram.retention import inbox_jobs
from supervisor.election import FencedError, Leadership
from tests.helpers import eventually, inbox_store, lead, message_update, set_term, store_updates

RETENTION_HOURS = 72
# update_id -> (status, hours since it was processed); None: never processed.
ROWS = {1: ("done", 73), 2: ("failed", 100), 3: ("done", 1), 4: ("pending", None),
        5: ("processing", None)}
AGE_SQL = b"""
UPDATE telegram_updates
   SET status = %s, processed_at = now() - make_interval(hours => %s),
       received_at = now() - interval '200 hours'
 WHERE update_id = %s
"""
IDS_SQL = b"SELECT update_id FROM telegram_updates ORDER BY update_id"


async def seed(pool: AsyncConnectionPool) -> None:
    await store_updates(pool, *(message_update(n, 40 + n) for n in ROWS))
    async with pool.connection() as conn, conn.transaction():
        for update_id, (status, hours) in ROWS.items():
            await conn.execute(AGE_SQL, (status, hours, update_id))


async def remaining(pool: AsyncConnectionPool) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute(IDS_SQL)
        return [row[0] for row in await cur.fetchall()]


def prune_job(pool: AsyncConnectionPool) -> ScheduledJob:
    (job,) = inbox_jobs(pool, inbox_store(), retention_hours=RETENTION_HOURS)
    return job


async def test_prune_deletes_only_handled_updates_past_retention(
        pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool)
    pruned = await prune_job(pool).run(leadership)
    assert pruned == 2
    assert await remaining(pool) == [3, 4, 5]


async def test_a_deposed_leader_prunes_nothing(pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool, term=1)
    await set_term(pool, 2)
    with pytest.raises(FencedError):
        await prune_job(pool).run(leadership)
    assert await remaining(pool) == sorted(ROWS)


async def test_the_scheduler_prunes_on_promotion_and_stops_on_drain(
        pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool)
    task = asyncio.create_task(Maintenance([prune_job(pool)]).run(leadership))

    async def pruned() -> bool:
        return await remaining(pool) == [3, 4, 5]

    try:
        await eventually(pruned, what="the first prune")
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 5)


async def test_maintenance_runs_every_job_it_is_given_on_promotion_with_the_leadership(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool)
    ran: dict[str, list[Leadership]] = {"one": [], "two": []}

    def recorder(name: str) -> ScheduledJob:
        async def run(given: Leadership) -> None:
            ran[name].append(given)
        return ScheduledJob(name, every_s=3600, run=run)

    task = asyncio.create_task(Maintenance([recorder("one"), recorder("two")]).run(leadership))
    try:
        await eventually(lambda: all(ran.values()), what="both jobs' first run")
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 5)
    assert ran == {"one": [leadership], "two": [leadership]}
