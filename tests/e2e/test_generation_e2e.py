"""Generations end to end through both sandboxes: request -> createTask -> callback ->
settlement -> the result in the Telegram sandbox; every Kie fault ends settled once, and the
invariants hold after every scenario."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.harness.env import BOT_TOKEN, KIE_KEY
from sandbox.harness.generation import GenerationStack, StackOptions, sample_params
from sandbox.kie import KieSandboxClient, KieSandboxConfig
from sandbox.telegram import SandboxClient
from services.catalog import get_catalog
from services.catalog.loader import Model
from services.delivery.files import ResultKind
from services.generation import Created, JobStatus
from services.generation.delivery_worker import MAX_DELIVERY_ATTEMPTS, result_kind
from services.generation.engine import Timings
from services.kie import client as kie_client
from tests.helpers import eventually

CATALOG = get_catalog()
BALANCE_KOP = 10_000_000
HMAC_KEY = "kie-webhook-hmac-key-0123456789"
MEDIA_OF_KIND = {ResultKind.IMAGE: "photo", ResultKind.VIDEO: "video",
                 ResultKind.AUDIO: "audio", ResultKind.OTHER: "document"}
# A quick Kie: tasks finish in 50 ms, callbacks retried after 50 ms.
FAST_KIE = {"task_duration_s": 0.05, "callback_retry_delay_s": 0.05}


def fast_kie(**changes: Any) -> KieSandboxConfig:
    config = KieSandboxConfig()
    config.update({**FAST_KIE, **changes})
    return config


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[GenerationStack]:
    options = StackOptions(kie=fast_kie(rate_limit_enabled=False), rate_limited=False)
    async with GenerationStack(database_url, options) as running:
        yield running
        assert await running.violations() == []


@pytest.fixture
async def telegram(stack: GenerationStack) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(stack.telegram_url) as client:
        yield client


@pytest.fixture
async def kie(stack: GenerationStack) -> AsyncIterator[KieSandboxClient]:
    async with KieSandboxClient(stack.kie_url) as client:
        yield client


def expected_media(model: Model) -> str | None:
    """Return the Telegram media type a model's result arrives as (None: text)."""
    if model.model_type == "speech_to_text":
        return None
    extension = {"image": "png", "video": "mp4", "audio": "mp3"}.get(model.category, "")
    if model.category == "upscale":
        extension = "mp4" if "video" in model.model_type else "png"
    return MEDIA_OF_KIND[result_kind(f"https://x/result.{extension}", model)]


async def place(stack: GenerationStack, user_id: int, model: Model, key: str) -> int:
    outcome = await stack.request(user_id, model.id, sample_params(model), key=key)
    assert isinstance(outcome, Created), (model.id, outcome)
    return outcome.job.id


async def test_every_catalog_model_is_generated_and_delivered_with_its_media_type(
        stack: GenerationStack, telegram: SandboxClient) -> None:
    models = list(CATALOG)
    assert len(models) == 73
    job_ids = {}
    for number, model in enumerate(models):
        user_id = 10_000 + number
        await stack.fund(user_id, BALANCE_KOP)
        job_ids[model.id] = await place(stack, user_id, model, f"press-{model.id}")

    await eventually(lambda: stack.all_delivered(list(job_ids.values())), timeout_s=120,
                     what="every model's result delivered")
    jobs = await stack.jobs(list(job_ids.values()))
    wrong = []
    for number, model in enumerate(models):
        job = jobs[job_ids[model.id]]
        log = await telegram.chat_messages(10_000 + number)
        media = {entry["media"]["type"] for entry in log if entry.get("media")}
        expected = expected_media(model)
        ok = job.status is JobStatus.SUCCEEDED and (
            media == {expected} if expected else
            [e["method"] for e in log] == ["sendMessage"] and "transcript" in log[0]["text"])
        if not ok:
            wrong.append((model.id, job.status, job.fail_code, media, expected))
    assert wrong == []


# ---- Kie's faults: each ends settled once, delivered once, the invariants intact ----

PHOTO_MODEL = CATALOG["seedream/4.5-text-to-image"]
QUICK = Timings(first_poll_s=0.3, poll_base_s=0.2, poll_max_s=0.5, poll_interval_s=0.1,
                submit_lease_s=1.0, delivery_lease_s=0.5, submit_retry_s=0.05,
                submit_retry_max_s=0.2, delivery_retry_s=0.05, delivery_retry_max_s=0.2)
USERS = (501, 502)


@pytest.fixture(autouse=True)
def quick_kie_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Kie client's retries back off in milliseconds, not seconds."""
    monkeypatch.setattr(kie_client, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(kie_client, "BACKOFF_MAX_S", 0.05)


@contextlib.asynccontextmanager
async def scenario(database_url: str, *, hmac_key: str | None = None,
                   timings: Timings = QUICK,
                   **kie: Any) -> AsyncIterator[tuple[GenerationStack, KieSandboxClient,
                                                      SandboxClient]]:
    options = StackOptions(kie=fast_kie(**kie), hmac_key=hmac_key, timings=timings,
                           rate_limited=False, env={"KIE_REQUEST_TIMEOUT": "1"})
    async with GenerationStack(database_url, options) as stack, \
            KieSandboxClient(stack.kie_url) as kie_control, \
            SandboxClient(stack.telegram_url) as telegram_control:
        for user_id in USERS:
            await stack.fund(user_id, BALANCE_KOP)
        yield stack, kie_control, telegram_control
        assert await stack.violations() == []


async def run_jobs(stack: GenerationStack) -> dict[int, Any]:
    """Place one photo job per user and wait until every delivery is closed."""
    ids = [await place(stack, user_id, PHOTO_MODEL, f"press-{user_id}") for user_id in USERS]
    await eventually(lambda: stack.all_delivered(ids), timeout_s=30, what="deliveries closed")
    return await stack.jobs(ids)


async def assert_charged_once_and_delivered_once(stack: GenerationStack,
                                                 telegram: SandboxClient,
                                                 jobs: dict[int, Any]) -> None:
    for job in jobs.values():
        assert job.status is JobStatus.SUCCEEDED, (job.id, job.fail_code, job.fail_message)
        log = await telegram.chat_messages(job.user_id)
        assert [entry["method"] for entry in log] == ["sendPhoto"]
        assert job.delivered_file_ids == [log[0]["media"]["file_id"]]
        wallet = await stack.wallet(job.user_id)
        assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP - job.price_kop, 0)


@pytest.mark.parametrize(("fault", "counted"), [
    ({"lost": True}, {"kie_callbacks_stored": 0}),
    ({"duplicate": 2}, {"kie_callbacks_stored": 2, "kie_callbacks_duplicate": 4}),
    # Late callbacks may lose the race with the status poller: either path settles once.
    ({"delay_ms": 300}, {}),
    ({"out_of_order": True}, {}),
    ({"early": True}, {"kie_callbacks_stored": 2})],
    ids=["lost", "duplicated", "delayed", "out_of_order", "early"])
async def test_a_callback_fault_still_settles_once_and_delivers_once(
        database_url: str, fault: dict[str, Any], counted: dict[str, int]) -> None:
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("callback", fail_next=len(USERS), **fault)
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        counters = stack.state.counters
        assert {name: counters.get(name, 0) for name in counted} == counted
        if fault.get("lost"):
            assert counters["kie_polls"] >= len(USERS)  # the poller found the results


@pytest.mark.parametrize("fault", [{"unsigned": True}, {"bad_signature": True}],
                         ids=["unsigned", "wrongly_signed"])
async def test_callbacks_without_kies_signature_are_refused_and_the_poller_settles(
        database_url: str, fault: dict[str, Any]) -> None:
    async with scenario(database_url, hmac_key=HMAC_KEY) as (stack, kie, telegram):
        await kie.fault("callback", fail_next=len(USERS), **fault)
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        assert stack.state.counters.get("kie_callbacks_refused", 0) >= len(USERS)
        assert stack.state.counters.get("kie_callbacks_stored", 0) == 0
        assert stack.state.counters["kie_polls"] >= len(USERS)


async def test_signed_callbacks_are_accepted(database_url: str) -> None:
    async with scenario(database_url, hmac_key=HMAC_KEY) as (stack, _, telegram):
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        assert stack.state.counters["kie_callbacks_stored"] == len(USERS)


@pytest.mark.parametrize("code", [500, 429])
async def test_create_task_errors_are_retried_and_charge_once(database_url: str,
                                                              code: int) -> None:
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("request", op="create", code=code, fail_next=3)
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        stats = await kie.stats()
        assert stats["answers_5xx" if code >= 500 else f"answers_{code}"] == 3


async def test_create_task_failing_every_attempt_fails_the_job_and_releases_the_hold(
        database_url: str) -> None:
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("request", op="create", code=500, fail_next=1_000)
        jobs = await run_jobs(stack)
        for job in jobs.values():
            assert job.status is JobStatus.FAILED
            wallet = await stack.wallet(job.user_id)
            assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP, 0)
            [entry] = await telegram.chat_messages(job.user_id)
            assert entry["method"] == "sendMessage" and "not charged" in entry["text"]
        assert stack.state.counters["kie_resubmits"] >= len(USERS)


async def test_an_answer_lost_after_kie_created_the_task_is_settled_by_its_callback(
        database_url: str) -> None:
    # Kie creates the task, but its answer never arrives (the client times out): the job's
    # task id is never stored; the callback URL names the job, so the callback settles it.
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("request", op="create", created=True, hang_ms=1_500, fail_next=1)
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        assert [job.kie_task_id is None for job in jobs.values()].count(True) == 1


async def test_a_failed_task_releases_the_hold_and_tells_the_user_why(database_url: str) -> None:
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("task", fail_next=len(USERS), fail_code="400",
                        fail_msg="Your prompt was flagged by the content policy")
        jobs = await run_jobs(stack)
        for job in jobs.values():
            assert job.status is JobStatus.FAILED
            wallet = await stack.wallet(job.user_id)
            assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP, 0)
            [entry] = await telegram.chat_messages(job.user_id)
            assert "content rules" in entry["text"]


async def test_a_result_gone_from_kie_is_refunded_once_and_the_user_told_not_charged(
        database_url: str) -> None:
    async with scenario(database_url) as (stack, kie, telegram):
        await kie.fault("result", missing=True, fail_next=len(USERS))
        jobs = await run_jobs(stack)
        for job in jobs.values():
            assert job.status is JobStatus.SUCCEEDED
            assert job.undeliverable_reason is not None
            assert job.delivery_attempts == MAX_DELIVERY_ATTEMPTS
            wallet = await stack.wallet(job.user_id)
            assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP, 0)

            async def told(user_id: int = job.user_id) -> bool:
                log = await telegram.chat_messages(user_id)
                return any("not charged" in e.get("text", "") for e in log)

            await eventually(told, what="the user told they were not charged")


async def test_a_result_url_that_fails_twice_is_delivered_on_the_retry_not_after_the_lease(
        database_url: str) -> None:
    # The lease is longer than the wait below: only the released claims' backoff can make
    # the retries in time.
    timings = dataclasses.replace(QUICK, delivery_lease_s=3_600.0)
    async with scenario(database_url, timings=timings) as (stack, kie, telegram):
        # Each attempt reads the file three times: Telegram's fetch of the photo URL, then our
        # probe's HEAD and GET after the refusal: 6 failed reads = 2 failed attempts.
        await kie.fault("result", failing_reads=6, fail_next=len(USERS))
        jobs = await run_jobs(stack)
        await assert_charged_once_and_delivered_once(stack, telegram, jobs)
        assert [job.delivery_attempts for job in jobs.values()] == [3] * len(USERS)


async def test_kie_never_receives_a_telegram_file_url_or_a_secret(database_url: str) -> None:
    async with scenario(database_url, hmac_key=HMAC_KEY) as (stack, kie, _):
        await run_jobs(stack)
        assert stack.settings is not None
        secrets = [BOT_TOKEN, KIE_KEY, HMAC_KEY, stack.settings.webhook_secret_token.get(),
                   "api.telegram.org", "/file/bot"]
        for secret in secrets:
            assert await kie.requests(contains=secret) == [], secret
        received = await kie.requests()
        assert received and all("authorization" not in {h.lower() for h in r["headers"]}
                                for r in received)


# A clock jump for one job: it was confirmed two hours ago (past every category's deadline).
BACKDATE_SQL = b"UPDATE generation_jobs SET created_at = now() - interval '2 hours' WHERE id = %s"


async def test_a_job_kie_never_finishes_expires_and_its_hold_is_released(
        database_url: str) -> None:
    async with scenario(database_url, task_duration_s=3_600.0) as (stack, _, telegram):
        job_id = await place(stack, USERS[0], PHOTO_MODEL, "press-slow")

        async def submitted() -> bool:
            return (await stack.jobs([job_id]))[job_id].status is JobStatus.SUBMITTED

        await eventually(submitted, what="the job at Kie")
        assert stack.pool is not None
        async with stack.pool.connection() as conn:
            await conn.execute(BACKDATE_SQL, (job_id,))
        await eventually(lambda: stack.all_delivered([job_id]), what="the expiry told")
        job = (await stack.jobs([job_id]))[job_id]
        assert job.status is JobStatus.EXPIRED
        wallet = await stack.wallet(job.user_id)
        assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP, 0)
        [entry] = await telegram.chat_messages(job.user_id)
        assert "took too long" in entry["text"] and "not charged" in entry["text"]
        assert stack.state.counters["jobs_expired"] == 1
