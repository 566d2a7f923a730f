"""Kie callbacks end to end inside one instance: the HTTP ingress stores them durably, the
leader's applier settles the job once; the invariants are audited after each test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from config.settings import Secret
from services.generation import JobStatus, begin_submit, record_submitted
from services.generation.applier import CallbackApplier
from services.generation.callback_ingress import CallbackIngress, callback_url
from services.generation.store import JobStore
from services.kie.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState
from tests.helpers import lead
from tests.integration.generation_support import (
    CATALOG,
    PRICE_KOP,
    assert_invariants,
    new_user,
    request,
    wallet,
)

HMAC_KEY = "kie-webhook-hmac-key-0123456789"
TASK = "task-cb-1"
RESULT = "https://cdn.kie.test/r/fox.png"


def success(task_id: str = TASK) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": {
        "taskId": task_id, "state": "success",
        "resultJson": orjson.dumps({"resultUrls": [RESULT]}).decode()}}


def failure(task_id: str = TASK) -> dict[str, Any]:
    return {"code": 200, "msg": "fail", "data": {
        "taskId": task_id, "state": "fail", "failCode": "500", "failMsg": "internal error"}}


def running(task_id: str = TASK) -> dict[str, Any]:
    return {"code": 200, "msg": "ok", "data": {"taskId": task_id, "state": "generating"}}


class Instance:
    """One instance's callback route on a real port, plus the leader's applier."""

    def __init__(self, pool: AsyncConnectionPool, leadership: Leadership) -> None:
        self.pool = pool
        self.leadership = leadership
        self.state = RuntimeState(instance_id="t", bot_mode="polling", version="test")
        self.applier = CallbackApplier(pool, CATALOG, self.state)
        self.base_url = ""
        self.http: aiohttp.ClientSession | None = None

    async def post(self, job_id: int, token: str, body: Any, *,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        assert self.http is not None
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self.http.post(callback_url(self.base_url, job_id, token), data=raw,
                                  headers=headers or {}) as answer:
            return answer.status, await answer.json()

    async def job_status(self, job_id: int) -> JobStatus:
        async with self.pool.connection() as conn:
            job = await JobStore(conn).job(job_id)
        assert job is not None
        return job.status


async def _serve(pool: AsyncConnectionPool, hmac_key: str | None, *,
                 ingress_pool: AsyncConnectionPool | None = None) -> AsyncIterator[Instance]:
    instance = Instance(pool, await lead(pool))
    ingress = CallbackIngress(ingress_pool or pool, instance.state,
                              hmac_key=Secret(hmac_key) if hmac_key else None)
    app = web.Application()
    ingress.install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    instance.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as http:
        instance.http = http
        try:
            yield instance
        finally:
            await runner.cleanup()
    await assert_invariants(pool)


@pytest.fixture
async def node(pool: AsyncConnectionPool) -> AsyncIterator[Instance]:
    async for instance in _serve(pool, None):
        yield instance


@pytest.fixture
async def signed_node(pool: AsyncConnectionPool) -> AsyncIterator[Instance]:
    async for instance in _serve(pool, HMAC_KEY):
        yield instance


async def submitted_job(node: Instance, *, record: bool = True) -> tuple[int, str]:
    """Create a priced job, start its submission; return its id and callback token."""
    async with node.pool.connection() as conn, conn.transaction():
        await new_user(conn)
        created = await request(conn, "press-1")
    job_id = created.job.id  # type: ignore[union-attr]
    async with node.leadership.fenced(node.pool) as conn:
        ticket = await begin_submit(conn, job_id, max_attempts=3)
        assert ticket is not None
        if record:
            await record_submitted(conn, job_id, TASK)
    return job_id, ticket.token


async def test_a_success_callback_is_stored_then_settled_once_by_the_leader(
        node: Instance) -> None:
    job_id, token = await submitted_job(node)
    assert await node.post(job_id, token, success()) == (200, {"ok": True})
    assert await node.post(job_id, token, success()) == (200, {"ok": True})  # Kie's resend
    assert node.state.counters == {"kie_callbacks_stored": 1, "kie_callbacks_duplicate": 1}

    assert await node.applier.apply_batch(node.leadership) == 1
    assert await node.job_status(job_id) is JobStatus.SUCCEEDED
    after = await wallet(node.pool)
    assert after is not None and after.hold_kop == 0 and after.balance_kop == 5000 - PRICE_KOP
    assert await node.applier.apply_batch(node.leadership) == 0


async def test_a_failure_callback_releases_the_hold(node: Instance) -> None:
    job_id, token = await submitted_job(node)
    assert (await node.post(job_id, token, failure()))[0] == 200
    await node.applier.apply_batch(node.leadership)
    assert await node.job_status(job_id) is JobStatus.FAILED
    after = await wallet(node.pool)
    assert after is not None and after.hold_kop == 0 and after.balance_kop == 5000


async def test_late_and_out_of_order_callbacks_change_nothing(node: Instance) -> None:
    job_id, token = await submitted_job(node)
    await node.post(job_id, token, running())
    await node.applier.apply_batch(node.leadership)
    assert await node.job_status(job_id) is JobStatus.SUBMITTED  # not final: nothing moved
    await node.post(job_id, token, success())
    await node.post(job_id, token, failure())  # arrives after the success
    await node.post(job_id, token, running())
    await node.applier.apply_batch(node.leadership)
    assert await node.job_status(job_id) is JobStatus.SUCCEEDED
    after = await wallet(node.pool)
    assert after is not None and after.balance_kop == 5000 - PRICE_KOP


async def test_a_callback_before_the_task_id_was_stored_settles_the_pending_job(
        node: Instance) -> None:
    job_id, token = await submitted_job(node, record=False)  # Kie answered, we crashed
    assert (await node.post(job_id, token, success()))[0] == 200
    await node.applier.apply_batch(node.leadership)
    assert await node.job_status(job_id) is JobStatus.SUCCEEDED


async def test_unknown_jobs_wrong_tokens_and_bad_bodies_are_refused_and_change_nothing(
        node: Instance) -> None:
    job_id, token = await submitted_job(node)
    assert await node.post(job_id + 1000, token, success()) == (
        404, {"ok": False, "error": "no such job"})
    assert await node.post(job_id, "x" * len(token), success()) == (
        401, {"ok": False, "error": "wrong callback token"})
    assert await node.post(job_id, token, b"not json") == (
        400, {"ok": False, "error": "body is not JSON"})
    assert await node.post(job_id, token, [1, 2]) == (
        400, {"ok": False, "error": "body is not a JSON object"})
    status, answer = await node.post(job_id, token, {"code": 200, "data": {"state": "success"}})
    assert status == 400 and "task id" in answer["error"]
    assert node.state.counters == {"kie_callbacks_refused": 5}
    assert await node.applier.apply_batch(node.leadership) == 0
    assert await node.job_status(job_id) is JobStatus.SUBMITTED


async def test_with_an_hmac_key_only_kies_signature_is_accepted(signed_node: Instance) -> None:
    node = signed_node
    job_id, token = await submitted_job(node)
    stamp = str(int(time.time()))
    assert (await node.post(job_id, token, success()))[0] == 401  # unsigned
    wrong = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign_callback("other", TASK, stamp)}
    assert (await node.post(job_id, token, success(), headers=wrong))[0] == 401
    stale_stamp = str(int(time.time()) - 3600)
    stale = {TIMESTAMP_HEADER: stale_stamp,
             SIGNATURE_HEADER: sign_callback(HMAC_KEY, TASK, stale_stamp)}
    assert (await node.post(job_id, token, success(), headers=stale))[0] == 401
    good = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign_callback(HMAC_KEY, TASK, stamp)}
    assert await node.post(job_id, token, success(), headers=good) == (200, {"ok": True})
    await node.applier.apply_batch(node.leadership)
    assert await node.job_status(job_id) is JobStatus.SUCCEEDED


async def test_the_database_away_answers_503_so_kie_retries(unreachable_pool: AsyncConnectionPool,
                                                            pool: AsyncConnectionPool) -> None:
    async for node in _serve(pool, None, ingress_pool=unreachable_pool):
        status, answer = await node.post(1, "token", success())
        assert (status, answer) == (503, {"ok": False,
                                          "error": "storage unavailable, retry later"})


@pytest.fixture
async def unreachable_pool() -> AsyncIterator[AsyncConnectionPool]:
    """A pool whose server refuses connections (nothing listens on the port)."""
    async with AsyncConnectionPool("postgresql://nobody@127.0.0.1:9/none", min_size=0,
                                   max_size=1, timeout=0.5, open=False) as p:
        yield p
