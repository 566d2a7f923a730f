"""Retries after a backoff instead of a lease, the submitter's backpressure, and the refund of
a result that could not be delivered: once, under the key the operators' refund uses; the
invariants audited after each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from services.admin.service import Admin
from services.billing.ledger import Wallet
from services.generation import (
    Created,
    Job,
    JobLimits,
    Succeeded,
    apply_outcome,
    audit,
    begin_submit,
    claim_deliveries,
    claim_pending,
    record_delivered,
    record_unavailable,
    record_undeliverable,
    refund_charge,
    release_delivery,
    release_submit,
)
from services.generation.delivery import UNAVAILABLE_REASON
from services.generation.submitter import SubmitQueue
from services.storefront import Storefront
from tests.helpers import lead
from tests.integration.generation_support import (
    CATALOG,
    MARKUP,
    PRICE_KOP,
    USER,
    assert_invariants,
    new_user,
    request,
    wallet,
)

BALANCE_KOP = 5000
LEASE_S = 300.0  # the claims' lease: longer than any test, so only a release frees a claim
LONG_S = 3600.0
OPERATOR = 9001


@pytest.fixture
async def funded(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnectionPool]:
    """USER with 5,000 kop; the invariants are audited after the test."""
    async with pool.connection() as conn:
        await new_user(conn, balance_kop=BALANCE_KOP)
    yield pool
    await assert_invariants(pool)


async def new_job(pool: AsyncConnectionPool, key: str = "press:1") -> Job:
    async with pool.connection() as conn:
        outcome = await request(conn, key, limits=JobLimits(max_active_jobs=10,
                                                            free_daily_quota=5))
    assert isinstance(outcome, Created)
    return outcome.job


async def claimed_success(pool: AsyncConnectionPool, key: str = "press:1") -> Job:
    """Return a succeeded (charged) job claimed for delivery."""
    job = await new_job(pool, key)
    async with pool.connection() as conn:
        await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
        [claimed] = await claim_deliveries(conn, instance_id="a", limit=10, lease_s=LEASE_S)
    return claimed


async def admin_service(pool: AsyncConnectionPool) -> Admin:
    leadership = await lead(pool)
    storefront = Storefront(pool, CATALOG, markup=MARKUP, leadership=lambda: leadership)
    return Admin(pool, storefront, operators=(OPERATOR,), markup=MARKUP,
                 lease_name="test-lease", leadership=lambda: leadership)


# ---- retries come after their backoff, not after the lease ----


async def test_a_failed_delivery_attempt_frees_its_claim_until_its_retry_time(
        funded: AsyncConnectionPool) -> None:
    first = await claimed_success(funded)
    async with funded.connection() as conn:
        assert await release_delivery(conn, first, delay_s=LONG_S)
        assert await claim_deliveries(conn, instance_id="b", limit=10, lease_s=LEASE_S) == []
        assert await release_delivery(conn, first, delay_s=0)  # the backoff has passed
        [second] = await claim_deliveries(conn, instance_id="b", limit=10, lease_s=LEASE_S)
        assert second.delivery_attempts == first.delivery_attempts + 1
        # The first claim's release comes too late: the claim is no longer its own.
        assert not await release_delivery(conn, first, delay_s=0)
        assert await claim_deliveries(conn, instance_id="c", limit=10, lease_s=LEASE_S) == []


async def test_a_refused_submission_frees_its_claim_until_its_retry_time(
        funded: AsyncConnectionPool) -> None:
    job = await new_job(funded)
    async with funded.connection() as conn:
        [claimed] = await claim_pending(conn, limit=10, lease_s=LEASE_S)
        ticket = await begin_submit(conn, claimed.id, max_attempts=3)
        assert ticket is not None
        assert await claim_pending(conn, limit=10, lease_s=LEASE_S) == []  # leased
        assert await release_submit(conn, job.id, attempt=ticket.attempt, delay_s=LONG_S)
        assert await claim_pending(conn, limit=10, lease_s=LEASE_S) == []  # backing off
        assert await release_submit(conn, job.id, attempt=ticket.attempt, delay_s=0)
        assert [j.id for j in await claim_pending(conn, limit=10, lease_s=LEASE_S)] == [job.id]
        assert not await release_submit(conn, job.id, attempt=ticket.attempt + 1, delay_s=0)


# ---- backpressure: finish work before starting new work ----


async def test_the_submitter_holds_back_while_results_wait_for_delivery(
        funded: AsyncConnectionPool) -> None:
    queue = SubmitQueue(lease_s=LEASE_S, max_attempts=3, backlog_bound=2, hold_max_s=LONG_S)
    finished = [await new_job(funded, f"done:{n}") for n in range(2)]
    waiting = await new_job(funded, "waiting")
    async with funded.connection() as conn:
        for job in finished:
            await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
    async with funded.connection() as conn:
        assert await queue.claim(conn, term=1, limit=10) == []  # 2 results wait: hold
        assert queue.held_since is not None
        # Being sent still counts (it is work after Kie's answer, competing with the rest).
        [sending] = await claim_deliveries(conn, instance_id="a", limit=1, lease_s=LEASE_S)
        assert await queue.claim(conn, term=1, limit=10) == []
        # Delivered: the backlog is under the bound again, one job may go.
        assert await record_delivered(conn, sending, file_ids=["f"], message_ids=[1])
        assert [j.key for j in await queue.claim(conn, term=1, limit=10)] == [waiting.id]
        assert queue.held_since is None


async def test_a_hold_longer_than_its_limit_lets_a_batch_through(
        funded: AsyncConnectionPool) -> None:
    queue = SubmitQueue(lease_s=LEASE_S, max_attempts=3, backlog_bound=1, hold_max_s=0.0)
    async with funded.connection() as conn:
        await apply_outcome(conn, (await new_job(funded, "done")).id,
                            Succeeded(["https://cdn/x.png"]))
    waiting = await new_job(funded, "waiting")
    async with funded.connection() as conn:
        assert await queue.claim(conn, term=1, limit=10) == []  # the hold starts
        assert [j.key for j in await queue.claim(conn, term=1, limit=10)] == [waiting.id]


# ---- a result the user never got is not charged ----


async def test_an_unavailable_result_is_refunded_once_in_the_record_that_closes_it(
        funded: AsyncConnectionPool) -> None:
    claimed = await claimed_success(funded)
    assert await wallet(funded) == Wallet(balance_kop=BALANCE_KOP - PRICE_KOP, hold_kop=0)
    async with funded.connection() as conn:
        assert await record_unavailable(conn, claimed, error="ResultsUnavailable: gone")
        assert not await record_unavailable(conn, claimed, error="again")  # closed: nothing
    assert await wallet(funded) == Wallet(balance_kop=BALANCE_KOP, hold_kop=0)
    async with funded.connection() as conn:
        cur = await conn.execute(b"SELECT kind, balance_delta_kop, idempotency_key FROM ledger"
                                 b" WHERE job_id = %s ORDER BY id", (claimed.id,))
        entries = await cur.fetchall()
        [reason] = (await (await conn.execute(
            b"SELECT undeliverable_reason FROM generation_jobs WHERE id = %s",
            (claimed.id,))).fetchone()) or [None]
    assert [kind for kind, _, _ in entries] == ["hold", "commit", "adjustment"]
    assert entries[-1][1:] == (PRICE_KOP, f"admin:refund:job:{claimed.id}")
    assert reason.startswith(UNAVAILABLE_REASON)


async def test_an_operator_refund_and_the_automatic_one_never_both_happen(
        funded: AsyncConnectionPool) -> None:
    admin = await admin_service(funded)
    automatic_first = await claimed_success(funded, "press:1")
    async with funded.connection() as conn:
        assert await record_unavailable(conn, automatic_first, error="gone")
    assert not (await admin.refund_job(automatic_first.id, operator_id=OPERATOR)).applied

    operator_first = await claimed_success(funded, "press:2")
    assert (await admin.refund_job(operator_first.id, operator_id=OPERATOR)).applied
    async with funded.connection() as conn:
        assert await record_unavailable(conn, operator_first, error="gone")  # closed, no credit
    assert await wallet(funded) == Wallet(balance_kop=BALANCE_KOP, hold_kop=0)


async def test_a_user_who_blocked_the_bot_stays_charged(funded: AsyncConnectionPool) -> None:
    claimed = await claimed_success(funded)
    async with funded.connection() as conn:
        assert await record_undeliverable(conn, claimed, reason="blocked")
    assert await wallet(funded) == Wallet(balance_kop=BALANCE_KOP - PRICE_KOP, hold_kop=0)


async def test_the_audit_finds_an_unavailable_result_left_charged(
        funded: AsyncConnectionPool) -> None:
    claimed = await claimed_success(funded)
    async with funded.connection() as conn:
        # Closed as unavailable without its refund: what record_unavailable never leaves.
        await record_undeliverable(conn, claimed, reason=f"{UNAVAILABLE_REASON}: lost")
        violations = await audit(conn)
        assert [(v.rule, v.user_id, v.job_id) for v in violations] == [
            ("undeliverable_result_refunded", USER, claimed.id)]
        assert await refund_charge(conn, claimed, note="the refund the test held back")
