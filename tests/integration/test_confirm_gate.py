"""Generations.request writes at most CONFIRM_CONCURRENCY requests at once: a storm of
confirmations waits its turn in memory, holding no connection and no transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.generation import Created, JobLimits
from services.generation.service import CONFIRM_CONCURRENCY, Generations, RequestThrottle
from services.storefront import Storefront
from tests.helpers import eventually, lead
from tests.integration.generation_support import (
    CATALOG,
    MARKUP,
    PRICE_KOP,
    PRICED,
    PROMPT,
    USER,
    new_user,
    wallet,
)

REQUESTS = 10
# More connections than requests: only the gate, not the pool, can keep requests out.
POOL_SIZE = REQUESTS + 2
LIMITS = JobLimits(max_active_jobs=REQUESTS, free_daily_quota=REQUESTS)
LOCK_WALLET_SQL = b"SELECT 1 FROM wallets WHERE user_id = %s FOR UPDATE"
LOCK_WAITERS_SQL = b"""
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


@pytest.fixture
async def wide_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool whose connections are all open before the test (none is handed out late)."""
    async with AsyncConnectionPool(database_url, min_size=POOL_SIZE, max_size=POOL_SIZE,
                                   open=False) as p:
        await p.wait()
        yield p


def in_use(pool: AsyncConnectionPool) -> int:
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


async def test_at_most_confirm_concurrency_requests_are_written_at_once(
        wide_pool: AsyncConnectionPool, database_url: str) -> None:
    assert CONFIRM_CONCURRENCY < REQUESTS
    async with wide_pool.connection() as conn:
        await new_user(conn, balance_kop=REQUESTS * PRICE_KOP)
    leadership = await lead(wide_pool)
    storefront = Storefront(wide_pool, CATALOG, markup=MARKUP, leadership=lambda: leadership)
    generations = Generations(wide_pool, leadership=lambda: leadership, storefront=storefront,
                              limits=LIMITS, throttle=RequestThrottle(limit=REQUESTS))

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watch, \
            await psycopg.AsyncConnection.connect(database_url) as locker:
        # Every request locks this wallet first: while another session holds it, each one
        # that got inside its transaction waits there on the lock.
        await locker.execute(LOCK_WALLET_SQL, (USER,))
        requests = [asyncio.create_task(generations.request(
            user_id=USER, chat_id=USER, model_id=PRICED, params=PROMPT,
            idempotency_key=f"gen:{USER}:{n}")) for n in range(REQUESTS)]

        async def waiters() -> int:
            row = await (await watch.execute(LOCK_WAITERS_SQL)).fetchone()
            return int(row[0]) if row else 0

        async def settled() -> bool:
            # Every connection handed out is waiting on the lock: each request that could
            # get in did. Without the gate that is all ten (the connections are open).
            waiting = await waiters()
            return waiting >= CONFIRM_CONCURRENCY and waiting == in_use(wide_pool)
        await eventually(settled, what="the admitted requests waiting on the wallet lock")
        assert await waiters() == CONFIRM_CONCURRENCY
        assert in_use(wide_pool) == CONFIRM_CONCURRENCY  # the rest hold no connection
        assert not any(task.done() for task in requests)
        await locker.commit()  # the lock goes: the admitted finish, the rest follow

        outcomes = await asyncio.wait_for(asyncio.gather(*requests), 30)
    created = [o for o in outcomes if isinstance(o, Created)]
    assert len(created) == REQUESTS, outcomes
    assert len({o.job.id for o in created}) == REQUESTS
    found = await wallet(wide_pool)
    assert found is not None and found.hold_kop == REQUESTS * PRICE_KOP
