"""The applier hands the jobs its batch finished to the running delivery worker: claimed in the
batch's own transaction (as many as the worker has free slots) and started once it committed,
so the result goes out without waiting for the worker's NOTIFY and claim turn. Without a free
slot or a running worker nothing is claimed, and the worker's own claim delivers the job.
Real pieces only: PostgreSQL, the applier, the delivery worker and the Telegram sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiogram import Bot
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

import services.generation.delivery_worker as delivery_worker
from sandbox.telegram import SandboxClient
from sandbox.telegram.media import make_png
from services.generation import Created, Job, begin_submit, record_submitted, store_callback
from services.generation.applier import CallbackApplier
from services.generation.delivery_worker import DeliveryWorker
from services.generation.store import JobStore
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState
from tests.helpers import eventually, lead, serve_loopback
from tests.integration.generation_support import (
    CATALOG,
    OTHER,
    USER,
    assert_invariants,
    new_user,
    request,
)

RESULT = "https://cdn.kie.test/r/fox.png"  # not loopback: the sandbox stores it unfetched


def success(task_id: str, url: str = RESULT) -> dict[str, Any]:
    """Kie's success callback for a task with one result file."""
    return {"code": 200, "msg": "success", "data": {
        "taskId": task_id, "state": "success",
        "resultJson": orjson.dumps({"resultUrls": [url]}).decode()}}


class Node:
    """One leader's applier and delivery worker on one pool, as build_engine wires them."""

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, database_url: str,
                 leadership: Leadership) -> None:
        self.pool = pool
        self.leadership = leadership
        self.state = RuntimeState(instance_id="t", bot_mode="polling", version="test")

        self._turned = asyncio.Event()
        self.delivery = DeliveryWorker(pool, bot, CATALOG, self.state, instance_id="test",
                                       on_progress=self._turned.set)
        self.applier = CallbackApplier(pool, CATALOG, self.state, deliveries=self.delivery)
        self._running: asyncio.Task[None] | None = None

    async def start_delivery(self) -> None:
        """Run the delivery worker; return once its first turn committed (the claims release
        of its start, which frees every claim no task of the run holds, is behind it)."""
        self._running = asyncio.create_task(self.delivery.run(self.leadership))
        await asyncio.wait_for(self._turned.wait(), 10)

    async def stop(self) -> None:
        self.leadership.draining.set()
        if self._running is not None:
            await asyncio.wait_for(self._running, 10)

    async def finished_job(self, user_id: int, task_id: str, url: str = RESULT) -> int:
        """Create, submit and answer a job of a new user: its callback is stored, unapplied."""
        async with self.pool.connection() as conn, conn.transaction():
            await new_user(conn, user_id)
            created = await request(conn, f"press-{user_id}", user_id=user_id)
        assert isinstance(created, Created)
        job_id = created.job.id
        async with self.leadership.fenced(self.pool) as conn:
            ticket = await begin_submit(conn, job_id, max_attempts=3)
            assert ticket is not None
            await record_submitted(conn, job_id, task_id)
        async with self.pool.connection() as conn:
            assert await store_callback(conn, job_id, ticket.token, success(task_id, url))
        return job_id

    async def job(self, job_id: int) -> Job:
        async with self.pool.connection() as conn:
            job = await JobStore(conn).job(job_id)
        assert job is not None
        return job

    async def delivered(self, job_id: int) -> bool:
        return (await self.job(job_id)).delivered_at is not None


@pytest.fixture
async def node(pool: AsyncConnectionPool, bot: Bot,
               database_url: str) -> AsyncIterator[Node]:
    running = Node(pool, bot, database_url, await lead(pool))
    try:
        yield running
    finally:
        await running.stop()
    await assert_invariants(pool)


async def test_a_job_finished_by_the_applier_is_claimed_in_its_batch_and_delivered_once(
        node: Node, control: SandboxClient) -> None:
    job_id = await node.finished_job(USER, "task-1")
    await node.start_delivery()
    assert node.delivery.worker.free_slots(node.leadership) == delivery_worker.CONCURRENCY
    assert await node.applier.apply_batch(node.leadership) == 1
    # Handed over as the batch returned (no await since): already in the worker's hands.
    assert node.delivery.worker.free_slots(node.leadership) == delivery_worker.CONCURRENCY - 1
    await eventually(lambda: node.delivered(job_id), what="the result delivered")
    await node.stop()  # drained: nothing else can send after this
    job = await node.job(job_id)
    # One claim, taken by the applier's transaction: now() is the same for the finish and
    # the claim only inside one transaction.
    assert job.delivery_attempts == 1
    assert job.delivering_at == job.finished_at
    assert job.delivered_file_ids and job.undeliverable_reason is None
    [message] = await control.chat_messages(USER)
    assert message["method"] == "sendPhoto"


async def test_without_a_running_worker_the_applier_claims_nothing_and_the_worker_delivers(
        node: Node, control: SandboxClient) -> None:
    job_id = await node.finished_job(USER, "task-1")
    assert node.delivery.worker.free_slots(node.leadership) == 0
    assert await node.applier.apply_batch(node.leadership) == 1
    job = await node.job(job_id)
    assert job.finished_at is not None
    assert (job.delivering_at, job.delivery_attempts) == (None, 0)  # not claimed
    await node.start_delivery()  # its own claim (its first turn) takes the job
    await eventually(lambda: node.delivered(job_id), what="the result delivered")
    await node.stop()
    job = await node.job(job_id)
    assert job.delivery_attempts == 1
    assert job.delivering_at is not None and job.delivering_at != job.finished_at
    assert len(await control.chat_messages(USER)) == 1


class HeldFile:
    """A result file whose download (by Telegram, i.e. the sandbox) waits for `release`."""

    def __init__(self) -> None:
        self.fetching = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.fetching.set()
        await self.release.wait()
        return web.Response(body=make_png(4, 4, (10, 20, 30)), content_type="image/png")


@pytest.fixture
async def held_file() -> AsyncIterator[HeldFile]:
    held = HeldFile()
    app = web.Application()
    app.router.add_get("/held.png", held.handle)
    async with serve_loopback(app) as base_url:
        held.url = f"{base_url}/held.png"
        try:
            yield held
        finally:
            held.release.set()


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivery workers built from now on deliver one job at a time."""
    monkeypatch.setattr(delivery_worker, "CONCURRENCY", 1)


async def test_with_no_free_slot_the_applier_claims_nothing_and_the_worker_delivers_later(
        one_slot: None, node: Node, control: SandboxClient, held_file: HeldFile) -> None:
    busy = await node.finished_job(OTHER, "task-busy", url=held_file.url)
    await node.start_delivery()
    assert node.delivery.worker.free_slots(node.leadership) == 1
    assert await node.applier.apply_batch(node.leadership) == 1  # busy: handed over
    await asyncio.wait_for(held_file.fetching.wait(), 10)  # its send hangs on the file
    assert node.delivery.worker.free_slots(node.leadership) == 0

    job_id = await node.finished_job(USER, "task-1")
    wakes: list[str] = []
    wake = node.delivery.wake
    node.delivery.wake = lambda: (wakes.append("delivery"), wake())[-1]  # type: ignore[method-assign]
    assert await node.applier.apply_batch(node.leadership) == 1
    job = await node.job(job_id)
    assert job.finished_at is not None
    assert (job.delivering_at, job.delivery_attempts) == (None, 0)  # no slot: not claimed
    assert wakes == ["delivery"]  # the applier woke the worker to claim it
    held_file.release.set()
    # The busy job's end frees the slot; the worker's own claim takes the job (woken by
    # the applier while the slot was taken, and the end of a job wakes the loop anyway).
    await eventually(lambda: node.delivered(job_id), what="the second result delivered")
    await node.stop()
    job, first = await node.job(job_id), await node.job(busy)
    assert job.delivery_attempts == 1 and job.delivering_at != job.finished_at
    assert first.delivery_attempts == 1 and first.delivering_at == first.finished_at
    assert first.delivered_at is not None
    assert len(await control.chat_messages(USER)) == 1
    assert len(await control.chat_messages(OTHER)) == 1
