"""A new leader's submitter counts the last window's createTasks (a dead leader's too) in its
bucket: found by tests/chaos/test_generation_chaos.py, where each failover's fresh bucket
spent what Kie's window still counted (220 429s in one run)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from services.generation.store import JobStore
from services.generation.submitter import SubmitQueue, submit_bucket
from tests.integration.generation_support import OTHER, USER, new_user, request


async def test_the_attempts_of_the_last_window_prime_a_new_bucket(
        pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        for n, user_id in enumerate((USER, OTHER)):
            await new_user(conn, user_id)
            await request(conn, f"p:{n}", user_id=user_id)
        await SubmitQueue(lease_s=180.0, max_attempts=3).claim(conn, term=1, limit=10)
        bucket = submit_bucket()
        ages = await JobStore(conn).recent_submissions(window_s=bucket.window_s,
                                                       limit=bucket.capacity)
    assert len(ages) == 2 and all(0 <= age < bucket.window_s for age in ages)
    bucket.prime(ages)
    assert bucket.available() == bucket.capacity - 2
