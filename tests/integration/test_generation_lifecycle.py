"""A job's life after the request: submission, callbacks and orphans, settlement exactly
once, expiry, polling and delivery leases; the invariants are audited after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import Wallet
from services.generation import (
    CallbackSource,
    CallbackUnauthorized,
    Created,
    Failed,
    Job,
    JobLimits,
    JobNotFound,
    JobStatus,
    Succeeded,
    apply_callbacks,
    apply_outcome,
    begin_submit,
    claim_deliveries,
    claim_for_poll,
    claim_pending,
    expire_overdue,
    pending_callbacks,
    read_job,
    reconcile_orphans,
    record_delivered,
    record_submitted,
    record_undeliverable,
    store_callback,
    store_poll_result,
    store_task_callback,
    user_history,
)
from services.generation.store import JobStore
from supervisor.db import autocommit
from supervisor.election import FencedError, fencing_errors
from tests.helpers import lead
from tests.integration.generation_support import (
    DEADLINES_S,
    OTHER,
    PRICE_KOP,
    USER,
    VIDEO,
    assert_invariants,
    new_user,
    request,
    wait_until_blocked,
    wallet,
)

MAX_ATTEMPTS = 3
VIDEO_PARAMS = {"prompt": "waves", "image_urls": ["https://cdn/in.png"]}
SUCCESS = {"taskId": "task-1", "state": "success", "resultUrls": ["https://cdn/x.png"]}


@pytest.fixture
async def funded(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnectionPool]:
    """USER and OTHER with 5,000 kop each; the invariants are audited after the test."""
    async with pool.connection() as conn:
        await new_user(conn)
        await new_user(conn, OTHER)
    yield pool
    await assert_invariants(pool)


async def new_job(pool: AsyncConnectionPool, key: str = "press:1", *, user_id: int = USER,
                  video: bool = False) -> Job:
    extra = {"model_id": VIDEO, "params": VIDEO_PARAMS} if video else {}
    async with pool.connection() as conn:
        outcome = await request(conn, key, user_id=user_id,  # type: ignore[arg-type]
                                limits=JobLimits(max_active_jobs=10, free_daily_quota=5),
                                **extra)
    assert isinstance(outcome, Created)
    return outcome.job


async def submitted_job(pool: AsyncConnectionPool, task_id: str = "task-1",
                        **kwargs: object) -> tuple[Job, str]:
    """Return a submitted job and the callback token of its attempt."""
    job = await new_job(pool, **kwargs)  # type: ignore[arg-type]
    async with pool.connection() as conn:
        ticket = await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS)
        assert ticket is not None
        assert await record_submitted(conn, job.id, task_id, first_poll_s=0) is not None
    return job, ticket.token


async def committed_job(pool: AsyncConnectionPool, job_id: int) -> Job:
    async with pool.connection() as conn:
        job = await read_job(conn, job_id)
    assert job is not None
    return job


async def apply_all(pool: AsyncConnectionPool, outcome: Succeeded | Failed | None) -> int:
    """Apply every pending callback with outcome, as the leader would; return how many."""
    async with pool.connection() as conn:
        callbacks = await pending_callbacks(conn, limit=100)
        for callback in callbacks:
            await apply_callbacks(conn, [(callback, outcome)])
    return len(callbacks)


# ---- settlement ----


async def test_success_commits_the_hold_exactly_once_whatever_the_replays(
        funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    for _ in range(3):
        async with funded.connection() as conn:
            await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
    async with funded.connection() as conn:
        late = await apply_outcome(conn, job.id, Failed(code="late", message="too late"))
    assert late.applied is False and late.job.status is JobStatus.SUCCEEDED
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=0)
    assert (await committed_job(funded, job.id)).result_urls == ["https://cdn/x.png"]


async def test_failure_releases_the_hold_and_charges_nothing(
        funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    async with funded.connection() as conn:
        first = await apply_outcome(conn, job.id, Failed(code="500", message="kie broke"))
        again = await apply_outcome(conn, job.id, Failed(code="500", message="kie broke"))
        late = await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
    assert (first.applied, again.applied, late.applied) == (True, False, False)
    assert await wallet(funded) == Wallet(balance_kop=5000, hold_kop=0)
    finished = await committed_job(funded, job.id)
    assert (finished.status, finished.fail_code) == (JobStatus.FAILED, "500")


async def test_an_outcome_for_an_unknown_job_is_refused(funded: AsyncConnectionPool) -> None:
    async with funded.connection() as conn:
        with pytest.raises(JobNotFound):
            await apply_outcome(conn, 999_999, Succeeded([]))


async def test_a_settlement_rolled_back_midway_is_applied_by_the_next_attempt(
        funded: AsyncConnectionPool) -> None:
    job, token = await submitted_job(funded)
    async with funded.connection() as conn:
        await store_callback(conn, job.id, token, SUCCESS)
    with pytest.raises(RuntimeError):
        async with funded.connection() as conn, conn.transaction():
            [callback] = await pending_callbacks(conn, limit=10)
            await apply_callbacks(conn, [(callback, Succeeded(["https://cdn/x.png"]))])
            raise RuntimeError("leader dies before the commit")
    assert (await committed_job(funded, job.id)).status is JobStatus.SUBMITTED
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 1
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=0)


# ---- callbacks ----


async def test_a_callback_is_stored_once_and_wakes_the_leader(
        funded: AsyncConnectionPool, database_url: str) -> None:
    job, token = await submitted_job(funded)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("LISTEN job_callbacks")
        async with funded.connection() as conn:
            first = await store_callback(conn, job.id, token, SUCCESS)
            duplicate = await store_callback(conn, job.id, token, dict(SUCCESS))
        notice = await anext(listener.notifies(timeout=10))
    assert first is not None and duplicate is None
    assert notice.payload == str(job.user_id)  # the applier wakes that user's partition
    assert await apply_all(funded, Succeeded(SUCCESS["resultUrls"])) == 1  # type: ignore[arg-type]
    assert await apply_all(funded, Succeeded([])) == 0
    assert (await committed_job(funded, job.id)).status is JobStatus.SUCCEEDED


async def test_a_callback_with_a_wrong_token_or_for_an_unknown_job_is_refused(
        funded: AsyncConnectionPool) -> None:
    job, token = await submitted_job(funded)
    async with funded.connection() as conn:
        with pytest.raises(CallbackUnauthorized):
            await store_callback(conn, job.id, token + "x", SUCCESS)
        with pytest.raises(CallbackUnauthorized):
            await store_callback(conn, job.id, "", SUCCESS)
        with pytest.raises(JobNotFound):
            await store_callback(conn, job.id + 1000, token, SUCCESS)
        assert await pending_callbacks(conn, limit=10) == []


async def test_the_token_of_an_earlier_attempt_still_verifies(
        funded: AsyncConnectionPool) -> None:
    job = await new_job(funded)
    async with funded.connection() as conn:
        first = await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS)
        second = await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS)
    assert first is not None and second is not None
    assert (first.attempt, second.attempt) == (1, 2) and first.token != second.token
    async with funded.connection() as conn:
        assert await store_callback(conn, job.id, first.token, SUCCESS) is not None
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 1


async def test_a_callback_completes_a_job_whose_task_id_was_lost_in_a_crash(
        funded: AsyncConnectionPool) -> None:
    job = await new_job(funded)
    async with funded.connection() as conn:
        ticket = await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS)
    assert ticket is not None
    # Kie accepted the task; the submitter died before record_submitted.
    async with funded.connection() as conn:
        await store_callback(conn, job.id, ticket.token, SUCCESS)
        # The job is not offered to the submitter again: Kie has it.
        assert await claim_pending(conn, limit=10, lease_s=0) == []
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 1
    assert (await committed_job(funded, job.id)).status is JobStatus.SUCCEEDED
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=0)


async def test_a_non_final_callback_is_marked_applied_and_settles_nothing(
        funded: AsyncConnectionPool) -> None:
    job, token = await submitted_job(funded)
    async with funded.connection() as conn:
        await store_callback(conn, job.id, token, {"taskId": "task-1", "state": "generating"})
    assert await apply_all(funded, None) == 1
    assert (await committed_job(funded, job.id)).status is JobStatus.SUBMITTED


async def test_an_orphan_callback_is_reconciled_when_its_task_id_is_recorded(
        funded: AsyncConnectionPool) -> None:
    job = await new_job(funded)
    async with funded.connection() as conn:
        assert await store_task_callback(conn, "task-9", SUCCESS) is None
        assert await store_task_callback(conn, "task-9", SUCCESS) is None  # kept once
        ticket = await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS)
        assert ticket is not None
        await record_submitted(conn, job.id, "task-9")
        [callback] = await pending_callbacks(conn, limit=10)
        assert (callback.job_id, callback.source) == (job.id, CallbackSource.ORPHAN)
        assert await reconcile_orphans(conn) == 0
        # Once the job has the task id, a task-id-only payload goes straight to it.
        assert await store_task_callback(conn, "task-9", {"state": "fail"}) is not None
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 2


async def test_a_self_fencing_record_moves_the_tasks_orphans_and_a_superseded_term_writes_nothing(
        funded: AsyncConnectionPool) -> None:
    """The submitter records alone in autocommit (fence=fence_params()): the orphan kept for
    the task id goes to the job; a term superseded meanwhile writes nothing (FencedError)."""
    job = await new_job(funded)
    superseded = await lead(funded, term=1)
    current = await lead(funded, term=2)
    async with autocommit(funded) as conn:
        assert await store_task_callback(conn, "task-5", SUCCESS) is None  # an orphan
        assert await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS) is not None
        with pytest.raises(FencedError), fencing_errors():
            await record_submitted(conn, job.id, "task-5", fence=superseded.fence_params())
        assert (await committed_job(funded, job.id)).status is JobStatus.PENDING
        assert await record_submitted(conn, job.id, "task-5",
                                      fence=current.fence_params()) is not None
        [callback] = await pending_callbacks(conn, limit=10)
        assert (callback.job_id, callback.source) == (job.id, CallbackSource.ORPHAN)
    assert (await committed_job(funded, job.id)).status is JobStatus.SUBMITTED


async def test_the_periodic_reconcile_catches_an_orphan_stored_while_the_task_id_was_recorded(
        funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded, task_id="task-7")
    async with funded.connection() as conn:
        await JobStore(conn).store_orphan("task-7", SUCCESS)  # the race's loser
        assert await reconcile_orphans(conn) == 1
        assert await reconcile_orphans(conn) == 0
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 1
    assert (await committed_job(funded, job.id)).status is JobStatus.SUCCEEDED


async def test_a_poll_answer_takes_the_callback_path(funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    async with funded.connection() as conn:
        assert await store_poll_result(conn, job.id, SUCCESS) is not None
        [callback] = await pending_callbacks(conn, limit=10)
        assert callback.source is CallbackSource.POLL
        await apply_callbacks(conn, [(callback, Failed(code="poll", message="failed at Kie"))])
    assert await wallet(funded) == Wallet(balance_kop=5000, hold_kop=0)


# ---- submission ----


async def test_submission_attempts_are_bounded_and_the_last_refusal_releases_the_hold(
        funded: AsyncConnectionPool) -> None:
    job = await new_job(funded)
    async with funded.connection() as conn:
        for _ in range(MAX_ATTEMPTS):
            assert await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS) is not None
        assert await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS) is None
    finished = await committed_job(funded, job.id)
    assert (finished.status, finished.submit_attempts) == (JobStatus.FAILED, MAX_ATTEMPTS)
    assert await wallet(funded) == Wallet(balance_kop=5000, hold_kop=0)


async def test_record_submitted_moves_only_a_pending_job(funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    async with funded.connection() as conn:
        assert await record_submitted(conn, job.id, "task-2") is None
        assert await begin_submit(conn, job.id, max_attempts=MAX_ATTEMPTS) is None
    assert (await committed_job(funded, job.id)).kie_task_id == "task-1"


async def test_claim_pending_is_fair_across_users_and_leases_its_jobs(
        funded: AsyncConnectionPool) -> None:
    queue = [await new_job(funded, f"a:{i}") for i in range(3)]
    latecomer = await new_job(funded, "b:1", user_id=OTHER)
    async with funded.connection() as conn:
        first = await claim_pending(conn, limit=2, lease_s=300)
        assert [j.id for j in first] == [queue[0].id, latecomer.id]
        second = await claim_pending(conn, limit=10, lease_s=300)
        assert [j.id for j in second] == [queue[1].id, queue[2].id]
        assert await claim_pending(conn, limit=10, lease_s=300) == []
    async with funded.connection() as conn:
        # A dead submitter's lease passes: the jobs are offered again.
        assert len(await claim_pending(conn, limit=10, lease_s=0)) == 4


async def test_a_user_with_jobs_in_flight_waits_behind_a_user_with_none(
        funded: AsyncConnectionPool) -> None:
    await submitted_job(funded, key="a:0")
    busy = await new_job(funded, "a:1")
    idle = await new_job(funded, "b:1", user_id=OTHER)
    async with funded.connection() as conn:
        assert [j.id for j in await claim_pending(conn, limit=10, lease_s=300)] == [
            idle.id, busy.id]


async def test_the_poller_claims_quiet_jobs_and_backs_off(funded: AsyncConnectionPool) -> None:
    quiet, _ = await submitted_job(funded, task_id="t-quiet", key="q")
    noisy, token = await submitted_job(funded, task_id="t-noisy", key="n")
    async with funded.connection() as conn:
        await store_callback(conn, noisy.id, token, {"state": "generating"})
        [polled] = await claim_for_poll(conn, limit=10, base_s=30, max_s=600)
        assert polled.id == quiet.id and polled.poll_attempts == 1
        assert polled.next_poll_at is not None and polled.submitted_at is not None
        assert polled.next_poll_at - polled.submitted_at >= timedelta(seconds=29)
        assert await claim_for_poll(conn, limit=10) == []


# ---- expiry ----


async def test_overdue_jobs_expire_by_category_and_release_their_holds(
        funded: AsyncConnectionPool) -> None:
    image, _ = await submitted_job(funded, key="img")
    video = await new_job(funded, "vid", video=True)
    later = datetime.now(UTC) + timedelta(seconds=DEADLINES_S["image"] + 60)
    async with funded.connection() as conn:
        expired = await expire_overdue(conn, later, DEADLINES_S)
        assert [j.id for j in expired] == [image.id]
        assert await expire_overdue(conn, later, DEADLINES_S) == []
    assert (await committed_job(funded, image.id)).status is JobStatus.EXPIRED
    assert (await committed_job(funded, video.id)).status is JobStatus.PENDING
    held = (await committed_job(funded, video.id)).price_kop
    assert await wallet(funded) == Wallet(balance_kop=5000 - held, hold_kop=held)


async def test_a_callback_after_expiry_changes_nothing(funded: AsyncConnectionPool) -> None:
    job, token = await submitted_job(funded)
    later = datetime.now(UTC) + timedelta(hours=2)
    async with funded.connection() as conn:
        await expire_overdue(conn, later, DEADLINES_S)
        await store_callback(conn, job.id, token, SUCCESS)
    assert await apply_all(funded, Succeeded(["https://cdn/x.png"])) == 1
    assert (await committed_job(funded, job.id)).status is JobStatus.EXPIRED
    assert await wallet(funded) == Wallet(balance_kop=5000, hold_kop=0)


# ---- delivery ----


async def test_a_delivery_lease_keeps_a_job_to_one_worker_until_it_expires(
        funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    async with funded.connection() as conn:
        assert await claim_deliveries(conn, instance_id="a", limit=10) == []  # not finished
        await apply_outcome(conn, job.id, Succeeded(["https://cdn/x.png"]))
    async with funded.connection() as conn:
        [mine] = await claim_deliveries(conn, instance_id="a", limit=10)
        assert await claim_deliveries(conn, instance_id="b", limit=10) == []
    async with funded.connection() as conn:  # a's lease runs out
        [theirs] = await claim_deliveries(conn, instance_id="b", limit=10, lease_s=0)
        assert not await record_delivered(conn, mine, file_ids=["f1"], message_ids=[1])
        assert await record_delivered(conn, theirs, file_ids=["f2"], message_ids=[2])
    async with funded.connection() as conn:
        assert await claim_deliveries(conn, instance_id="a", limit=10, lease_s=0) == []
    delivered = await committed_job(funded, job.id)
    assert delivered.delivered_file_ids == ["f2"] and delivered.delivered_at is not None


async def test_history_lists_the_users_jobs_newest_first_with_their_file_ids(
        funded: AsyncConnectionPool) -> None:
    older = await new_job(funded, "h:1")
    newer = await new_job(funded, "h:2")
    await new_job(funded, "h:3", user_id=OTHER)
    async with funded.connection() as conn:
        await apply_outcome(conn, older.id, Succeeded(["https://cdn/x.png"]))
    async with funded.connection() as conn:
        [claimed] = await claim_deliveries(conn, instance_id="a", limit=10)
        await record_delivered(conn, claimed, file_ids=["AgAD-file"], message_ids=[5])
    async with funded.connection() as conn:
        history = await user_history(conn, USER)
        assert await read_job(conn, newer.id) == history[0]
    assert [j.id for j in history] == [newer.id, older.id]
    assert history[1].delivered_file_ids == ["AgAD-file"]


async def test_an_undeliverable_job_is_closed_with_its_reason(
        funded: AsyncConnectionPool) -> None:
    job, _ = await submitted_job(funded)
    async with funded.connection() as conn:
        await apply_outcome(conn, job.id, Failed(code="x", message="boom"))
        [claimed] = await claim_deliveries(conn, instance_id="a", limit=10)
        assert await record_undeliverable(conn, claimed, reason="bot blocked by the user")
    async with funded.connection() as conn:
        assert await claim_deliveries(conn, instance_id="a", limit=10, lease_s=0) == []
    assert (await committed_job(funded, job.id)).undeliverable_reason == "bot blocked by the user"


async def test_concurrent_delivery_claims_never_share_a_job(
        funded: AsyncConnectionPool) -> None:
    for i in range(6):
        job = await new_job(funded, f"p:{i}", user_id=USER if i % 2 else OTHER)
        async with funded.connection() as conn:
            await apply_outcome(conn, job.id, Succeeded([f"https://cdn/{i}.png"]))

    async def claim(instance: str) -> list[int]:
        async with funded.connection() as conn:
            return [j.id for j in await claim_deliveries(conn, instance_id=instance, limit=3)]

    a, b, c = await asyncio.gather(claim("a"), claim("b"), claim("c"))
    assert len(set(a) | set(b) | set(c)) == len(a) + len(b) + len(c) == 6


async def test_concurrent_outcomes_for_one_job_settle_it_once(
        funded: AsyncConnectionPool, database_url: str) -> None:
    job, _ = await submitted_job(funded)
    async with (
        await psycopg.AsyncConnection.connect(database_url) as first,
        await psycopg.AsyncConnection.connect(database_url) as second,
    ):
        won = await apply_outcome(first, job.id, Succeeded(["https://cdn/x.png"]))
        racing = asyncio.create_task(
            apply_outcome(second, job.id, Failed(code="dup", message="other leader")))
        await wait_until_blocked(funded, second.info.backend_pid)
        await first.commit()
        lost = await racing
        await second.commit()
    assert (won.applied, lost.applied, lost.job.status) == (True, False, JobStatus.SUCCEEDED)
    assert await wallet(funded) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=0)
