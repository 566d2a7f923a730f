"""The leader's scheduled maintenance: handled updates are pruned after the retention period,
open ones never, and only under a current term."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import AsyncConnectionPool

from services.maintenance import Maintenance
from supervisor.election import FencedError
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


def maintenance(pool: AsyncConnectionPool) -> Maintenance:
    return Maintenance(pool, inbox=inbox_store(), inbox_retention_hours=RETENTION_HOURS)


async def seed(pool: AsyncConnectionPool) -> None:
    await store_updates(pool, *(message_update(n, 40 + n) for n in ROWS))
    async with pool.connection() as conn, conn.transaction():
        for update_id, (status, hours) in ROWS.items():
            await conn.execute(AGE_SQL, (status, hours, update_id))


async def remaining(pool: AsyncConnectionPool) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute(IDS_SQL)
        return [row[0] for row in await cur.fetchall()]


async def test_prune_deletes_only_handled_updates_past_retention(
        pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool)
    pruned = await maintenance(pool).prune_inbox(leadership)
    assert pruned == 2
    assert await remaining(pool) == [3, 4, 5]


async def test_a_deposed_leader_prunes_nothing(pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool, term=1)
    await set_term(pool, 2)
    with pytest.raises(FencedError):
        await maintenance(pool).prune_inbox(leadership)
    assert await remaining(pool) == sorted(ROWS)


async def test_the_scheduler_prunes_on_promotion_and_stops_on_drain(
        pool: AsyncConnectionPool) -> None:
    await seed(pool)
    leadership = await lead(pool)
    task = asyncio.create_task(
        maintenance(pool).run(leadership))

    async def pruned() -> bool:
        return await remaining(pool) == [3, 4, 5]

    try:
        await eventually(pruned, what="the first prune")
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 5)
