"""The fenced unit of work: the only way leader code writes."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from supervisor.election import FencedError
from tests.helpers import lead, set_term


async def test_fenced_commits_when_the_term_is_current(pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    async with leadership.fenced(pool) as conn:
        await conn.execute("INSERT INTO service_state (bot_id, key, value) VALUES (1, 'k', 'v')")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT value FROM service_state WHERE key = 'k'")
        assert await cur.fetchone() == ("v",)


async def test_fenced_refuses_and_writes_nothing_once_the_term_moved(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    await set_term(pool, 4)
    with pytest.raises(FencedError):
        async with leadership.fenced(pool) as conn:
            await conn.execute(
                "INSERT INTO service_state (bot_id, key, value) VALUES (1, 'k', 'v')")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM service_state")
        assert await cur.fetchone() == (0,)
