"""The submitter across terms: a new leader's bucket counts the last window's createTasks (a
dead leader's too), found by tests/chaos/test_generation_chaos.py, where each failover's
fresh bucket spent what Kie's window still counted (220 429s in one run); and a draining
leader does not wait for a token."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from config import load_settings
from services.generation import JobStatus
from services.generation.store import JobStore
from services.generation.submitter import SubmitQueue, Submitter, submit_bucket
from services.kie import KieClient, TokenBucket
from supervisor.runtime_state import RuntimeState
from tests.helpers import lead, make_env
from tests.integration.generation_support import CATALOG, OTHER, USER, new_user, request

NOWHERE = "http://127.0.0.1:9"  # nothing listens: a submission that was sent would fail


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


async def test_a_draining_leader_leaves_a_job_waiting_for_its_token_to_the_next_leader(
        pool: AsyncConnectionPool, database_url: str) -> None:
    # Found by the chaos runs: a SIGTERM'd leader's handover waited out SHUTDOWN_GRACE on a
    # submission queued for the bucket's next window.
    settings = load_settings(make_env(database_url, KIE_BASE_URL=NOWHERE))
    kie = KieClient.from_settings(settings)
    kie.bucket = TokenBucket(1, 3600.0)
    await kie.bucket.acquire()  # the window's one token is spent
    leadership = await lead(pool)
    submitter = Submitter(pool, kie, CATALOG, RuntimeState("test", "polling", "test"),
                          webhook_base_url="https://bot.example.com", max_attempts=3)
    async with pool.connection() as conn:
        await new_user(conn)
        await request(conn, "d:1")
        [claimed] = await SubmitQueue(lease_s=180.0, max_attempts=3).claim(conn, term=1,
                                                                           limit=1)
    submitting = asyncio.create_task(submitter.submit(claimed, leadership))
    leadership.draining.set()
    await submitting  # returns: nothing was sent (NOWHERE would have raised)
    await kie.close()
    async with pool.connection() as conn:
        job = await JobStore(conn).job(claimed.payload.job.id)
    assert job is not None and job.status is JobStatus.PENDING and job.kie_task_id is None
