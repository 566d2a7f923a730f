"""request_generation: every outcome, idempotent replays, and race-free per-user limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import Wallet
from services.generation import (
    ActiveJobsLimit,
    Created,
    Duplicate,
    Failed,
    FreeQuotaExhausted,
    GenerationError,
    InsufficientFunds,
    InvalidParams,
    JobLimits,
    JobStatus,
    RequestConflict,
    apply_outcome,
)
from tests.integration.generation_support import (
    FREE,
    PRICE_KOP,
    PRICED,
    PROMPT,
    assert_invariants,
    new_user,
    request,
    wait_until_blocked,
    wallet,
)


@pytest.fixture
async def funded(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnectionPool]:
    """A pool whose database has USER with 5,000 kop; the invariants are audited after."""
    async with pool.connection() as conn:
        await new_user(conn)
    yield pool
    await assert_invariants(pool)


async def count_jobs(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM generation_jobs")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_a_request_holds_the_price_and_creates_a_pending_job(
        funded: AsyncConnectionPool) -> None:
    async with funded.connection() as conn:
        outcome = await request(conn, "press:1")
    assert isinstance(outcome, Created)
    job = outcome.job
    assert (job.status, job.price_kop, job.free, job.category) == (
        JobStatus.PENDING, PRICE_KOP, False, "image")
    assert job.params == {"prompt": PROMPT["prompt"], "aspect_ratio": "1:1", "quality": "basic"}
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=PRICE_KOP)


async def test_a_replayed_request_returns_the_same_job_and_holds_once(
        funded: AsyncConnectionPool) -> None:
    async with funded.connection() as conn:
        first = await request(conn, "press:1")
    async with funded.connection() as conn:
        again = await request(conn, "press:1")
    assert isinstance(first, Created) and isinstance(again, Duplicate)
    assert again.job.id == first.job.id
    assert await count_jobs(funded) == 1
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=PRICE_KOP)


async def test_a_handler_rolled_back_midway_leaves_nothing_and_its_rerun_creates_the_job(
        funded: AsyncConnectionPool) -> None:
    with pytest.raises(RuntimeError):
        async with funded.connection() as conn, conn.transaction():
            assert isinstance(await request(conn, "press:1"), Created)
            raise RuntimeError("crash before the handler's transaction commits")
    assert await count_jobs(funded) == 0
    assert await wallet(funded) == Wallet(balance_kop=5000, hold_kop=0)
    async with funded.connection() as conn:
        assert isinstance(await request(conn, "press:1"), Created)


async def test_the_same_key_for_another_request_is_a_conflict(
        funded: AsyncConnectionPool) -> None:
    async with funded.connection() as conn:
        await request(conn, "press:1")
    async with funded.connection() as conn:
        with pytest.raises(RequestConflict):
            await request(conn, "press:1", params={"prompt": "something else"})
    assert await count_jobs(funded) == 1


async def test_a_request_beyond_the_balance_reports_the_shortfall_and_writes_nothing(
        pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await new_user(conn, balance_kop=1000)
        outcome = await request(conn, "press:1")
    assert outcome == InsufficientFunds(shortfall_kop=PRICE_KOP - 1000)
    assert await count_jobs(pool) == 0
    assert await wallet(pool) == Wallet(balance_kop=1000, hold_kop=0)
    await assert_invariants(pool)


@pytest.mark.parametrize(("model_id", "params", "field", "rule"), [
    (PRICED, {}, "prompt", "is required"),
    (PRICED, {"prompt": "x", "seed": 3}, "seed", "is not a parameter of this model"),
    (PRICED, {"prompt": "x", "quality": "ultra"}, "quality", "'ultra' is not one of"),
    ("no-such-model", PROMPT, "model_id", "is not a model in the catalog"),
], ids=["missing", "unknown-field", "bad-enum", "unknown-model"])
async def test_invalid_params_name_the_field_and_the_rule_and_write_nothing(
        funded: AsyncConnectionPool, model_id: str, params: dict[str, object], field: str,
        rule: str) -> None:
    async with funded.connection() as conn:
        outcome = await request(conn, "press:1", model_id=model_id, params=params)
    assert isinstance(outcome, InvalidParams)
    assert outcome.field == field and rule in outcome.rule
    assert await count_jobs(funded) == 0


async def test_a_request_of_a_user_without_a_wallet_is_refused(
        pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        with pytest.raises(GenerationError):
            await request(conn, "press:1")


async def test_a_user_at_the_active_jobs_limit_is_refused_until_a_job_finishes(
        funded: AsyncConnectionPool) -> None:
    async with funded.connection() as conn:
        first = await request(conn, "press:1")
        await request(conn, "press:2")
        assert await request(conn, "press:3") == ActiveJobsLimit(limit=2)
    assert isinstance(first, Created)
    async with funded.connection() as conn:
        await apply_outcome(conn, first.job.id, Failed(code="x", message="boom"))
        assert isinstance(await request(conn, "press:3"), Created)


async def test_free_jobs_take_no_hold_and_stop_at_the_daily_quota(
        funded: AsyncConnectionPool) -> None:
    limits = JobLimits(max_active_jobs=10, free_daily_quota=2)
    async with funded.connection() as conn:
        first = await request(conn, "free:1", model_id=FREE, limits=limits)
        await request(conn, "free:2", model_id=FREE, limits=limits)
        assert await request(conn, "free:3", model_id=FREE, limits=limits) == \
            FreeQuotaExhausted(limit=2)
        assert isinstance(await request(conn, "paid:1", limits=limits), Created)
    assert isinstance(first, Created) and first.job.free and first.job.price_kop == 0
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=PRICE_KOP)


async def test_a_failed_free_job_gives_its_quota_back(funded: AsyncConnectionPool) -> None:
    limits = JobLimits(max_active_jobs=10, free_daily_quota=1)
    async with funded.connection() as conn:
        first = await request(conn, "free:1", model_id=FREE, limits=limits)
        assert isinstance(first, Created)
        await apply_outcome(conn, first.job.id, Failed(code="kie", message="boom"))
        assert isinstance(await request(conn, "free:2", model_id=FREE, limits=limits), Created)


@pytest.mark.parametrize(("model_id", "limits", "refusal"), [
    (PRICED, JobLimits(max_active_jobs=1, free_daily_quota=5), ActiveJobsLimit(limit=1)),
    (FREE, JobLimits(max_active_jobs=5, free_daily_quota=1), FreeQuotaExhausted(limit=1)),
], ids=["active-jobs", "free-quota"])
async def test_two_concurrent_requests_cannot_both_pass_a_limit(
        funded: AsyncConnectionPool, database_url: str, model_id: str, limits: JobLimits,
        refusal: object) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url) as first,
        await psycopg.AsyncConnection.connect(database_url) as second,
    ):
        first_outcome = await request(first, "press:a", model_id=model_id, limits=limits)
        assert isinstance(first_outcome, Created)  # uncommitted: first holds the user's lock
        racing = asyncio.create_task(
            request(second, "press:b", model_id=model_id, limits=limits))
        await wait_until_blocked(funded, second.info.backend_pid)
        await first.commit()
        assert await racing == refusal
        await second.commit()
    assert await count_jobs(funded) == 1
