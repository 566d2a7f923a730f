"""A new leader's submitter and delivery worker free the claims a killed leader left, at once
(not after their 180 s / 300 s leases): found by tests/chaos/test_generation_chaos.py, where
a SIGKILL mid-delivery left the job to wait out the lease."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from services.generation import (
    Created,
    Job,
    Succeeded,
    apply_outcome,
    claim_deliveries,
    claim_pending,
    record_delivered,
)
from services.generation.delivery_worker import RELEASED_SPENT_REASON, DeliveryQueue
from services.generation.store import JobStore
from services.generation.submitter import SubmitQueue
from tests.integration.generation_support import new_user, request

LEASE_S = 300.0


async def new_job(pool: AsyncConnectionPool, key: str) -> Job:
    async with pool.connection() as conn:
        await new_user(conn)  # idempotent: the seed entry has one key per user
        outcome = await request(conn, key)
    assert isinstance(outcome, Created)
    return outcome.job


async def test_a_dead_leaders_delivery_claim_is_freed_when_the_next_worker_starts(
        pool: AsyncConnectionPool) -> None:
    job = await new_job(pool, "r:1")
    async with pool.connection() as conn:
        await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
        [dead] = await claim_deliveries(conn, instance_id="killed", limit=10, lease_s=LEASE_S)
        queue = DeliveryQueue("next", LEASE_S)
        # A claim a task of ours still holds stays; an unheld one is freed at any age.
        assert await queue.release_claims(conn, held={job.id}, older_than_s=0,
                                          max_attempts=3) == []
        [released] = await queue.release_claims(conn, held=set(), older_than_s=0,
                                                max_attempts=3)
        assert released.job.key == job.id and not released.dead_lettered
        [again] = await queue.claim(conn, term=2, limit=10)
        assert again.attempts == 2
        # The killed claim's record (were it alive) matches nothing now; the new one closes.
        assert not await record_delivered(conn, dead, file_ids=["f1"], message_ids=[1])
        assert await record_delivered(conn, again.payload, file_ids=["f2"], message_ids=[2])


async def test_a_delivery_freed_with_its_attempts_used_up_is_closed_as_unavailable(
        pool: AsyncConnectionPool) -> None:
    job = await new_job(pool, "r:2")
    async with pool.connection() as conn:
        await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
        await claim_deliveries(conn, instance_id="killed", limit=10, lease_s=LEASE_S)
        [released] = await DeliveryQueue("next", LEASE_S).release_claims(
            conn, held=set(), older_than_s=0, max_attempts=1)
        assert released.dead_lettered
        closed = await JobStore(conn).job(job.id)
    # Closed like any spent delivery (record_unavailable: refunded if it was charged).
    assert closed is not None and closed.undeliverable_reason is not None
    assert closed.undeliverable_reason.endswith(RELEASED_SPENT_REASON)


async def test_a_dead_leaders_submission_claim_is_freed_when_the_next_submitter_starts(
        pool: AsyncConnectionPool) -> None:
    job = await new_job(pool, "r:3")
    queue = SubmitQueue(lease_s=180.0, max_attempts=3)
    async with pool.connection() as conn:
        [first] = await queue.claim(conn, term=1, limit=10)
        assert await claim_pending(conn, limit=10, lease_s=180.0) == []  # leased
        [released] = await queue.release_claims(conn, held=set(), older_than_s=0,
                                                max_attempts=3)
        assert released.job.key == job.id and not released.dead_lettered
        [second] = await queue.claim(conn, term=2, limit=10)
    assert (first.attempts, second.attempts) == (1, 2)
