"""A stored callback wakes only its user's partition of the applier: the NOTIFY names the job's
user, `_wake_for` wakes partition user % parts (the one whose batch reads that user's
callbacks), and a notification naming no user (orphans moved to their jobs) wakes them all.
The leader's own ingress settles the callback in the transaction that stores it and sends
no NOTIFY; a follower's, or one whose term ended, only stores it and notifies."""

from __future__ import annotations

import aiohttp
import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from services.generation import Created, begin_submit, record_submitted, store_callback
from services.generation.applier import CallbackApplier, Settled
from services.generation.callback_ingress import CALLBACK_PREFIX, CALLBACK_ROUTE, CallbackIngress
from services.generation.store import StoredCallback
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState
from tests.helpers import lead, serve_loopback
from tests.integration.generation_support import (
    CATALOG,
    USER,
    assert_invariants,
    new_user,
    request,
)

PARTS = 4
SUCCESS = {"code": 200, "msg": "success", "data": {
    "taskId": "task-1", "state": "success", "resultJson": '{"resultUrls": ["https://cdn/x.png"]}'}}


def applier(pool: AsyncConnectionPool) -> CallbackApplier:
    return CallbackApplier(pool, CATALOG, RuntimeState(
        instance_id="t", bot_mode="polling", version="test"), parts=PARTS)


def woken(applier: CallbackApplier) -> list[int]:
    """Return the partitions whose wake event is set, and clear them."""
    parts = [part for part, wake in enumerate(applier._wakes) if wake.is_set()]
    for wake in applier._wakes:
        wake.clear()
    return parts


async def test_a_notification_wakes_its_users_partition_and_one_naming_no_user_wakes_all(
        pool: AsyncConnectionPool) -> None:
    loop = applier(pool)
    assert woken(loop) == []
    loop._wake_for("7")
    assert woken(loop) == [7 % PARTS]
    loop._wake_for(str(USER))
    assert woken(loop) == [USER % PARTS]
    loop._wake_for("")  # reconcile_orphans' NOTIFY: the moved callbacks' users are unknown
    assert woken(loop) == list(range(PARTS))
    loop._wake_for("not-a-user")
    assert woken(loop) == list(range(PARTS))


async def test_a_stored_callback_notifies_its_users_id_and_that_users_partition_applies_it(
        pool: AsyncConnectionPool, database_url: str) -> None:
    leadership = await lead(pool)
    async with pool.connection() as conn, conn.transaction():
        await new_user(conn)
        created = await request(conn, "press-1")
    assert isinstance(created, Created)
    job_id = created.job.id
    assert job_id != USER  # the payload below could not be the job's id by chance
    async with leadership.fenced(pool) as conn:
        ticket = await begin_submit(conn, job_id, max_attempts=3)
        assert ticket is not None
        await record_submitted(conn, job_id, "task-1")

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("LISTEN job_callbacks")
        async with pool.connection() as conn:
            assert await store_callback(conn, job_id, ticket.token, SUCCESS) is not None
        notice = await anext(listener.notifies(timeout=10))
    assert notice.payload == str(USER)

    loop = applier(pool)
    loop._wake_for(notice.payload)
    [part] = woken(loop)
    # The partition woken is the one whose batch reads the callback (the SQL's user mod
    # parts): every other partition finds nothing.
    for other in set(range(PARTS)) - {part}:
        assert await loop.apply_batch(leadership, part=other, parts=PARTS) == 0
    assert await loop.apply_batch(leadership, part=part, parts=PARTS) == 1
    await assert_invariants(pool)


def success(task_id: str) -> dict[str, object]:
    """Kie's success callback body for one task."""
    return {"code": 200, "msg": "success", "data": {
        "taskId": task_id, "state": "success",
        "resultJson": '{"resultUrls": ["https://cdn/x.png"]}'}}


class LeaderSide:
    """This process's applier as its ingress sees it while this instance leads: settling
    through a real CallbackApplier under `leadership` (None: the term is gone)."""

    def __init__(self, pool: AsyncConnectionPool, leadership: Leadership | None) -> None:
        self.applier = applier(pool)
        self.leading = leadership
        self.handed: list[Settled] = []

    async def settle_stored(self, conn: psycopg.AsyncConnection, callback: StoredCallback,
                            model_id: str, leadership: Leadership) -> Settled:
        return await self.applier.settle_stored(conn, callback, model_id, leadership)

    def hand_over(self, settled: Settled, leadership: Leadership) -> None:
        self.handed.append(settled)
        self.applier.hand_over(settled, leadership)


async def job_state(pool: AsyncConnectionPool, job_id: int) -> tuple[str, int]:
    """Return a job's status and how many of its callbacks are still unapplied."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT j.status, count(c.id) FILTER (WHERE c.applied_at IS NULL)"
            "  FROM generation_jobs j LEFT JOIN job_callbacks c ON c.job_id = j.id"
            " WHERE j.id = %s GROUP BY j.status", (job_id,))
        row = await cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


async def submitted_job(pool: AsyncConnectionPool, key: str, task_id: str) -> tuple[int, str]:
    """Create and submit a job of USER; return its id and its callback token."""
    leadership = await lead(pool)
    async with pool.connection() as conn, conn.transaction():
        if key == "press-1":
            await new_user(conn)
        created = await request(conn, key)
    assert isinstance(created, Created)
    async with leadership.fenced(pool) as conn:
        ticket = await begin_submit(conn, created.job.id, max_attempts=3)
        assert ticket is not None
        await record_submitted(conn, created.job.id, task_id)
    return created.job.id, ticket.token


async def test_the_leaders_own_ingress_settles_in_the_storing_transaction_a_followers_notifies(
        pool: AsyncConnectionPool, database_url: str) -> None:
    """While this instance leads, its ingress stores a callback and settles the job in one
    fenced transaction (no wake-up, no NOTIFY: PostgreSQL serializes notifying commits);
    a follower only stores it, and its NOTIFY names the user for the leader's applier."""
    state = RuntimeState(instance_id="t", bot_mode="polling", version="test")
    first, first_token = await submitted_job(pool, "press-1", "task-1")
    second, second_token = await submitted_job(pool, "press-2", "task-2")
    leader_side = LeaderSide(pool, await lead(pool))
    app = web.Application()
    app.router.add_post("/leader" + CALLBACK_ROUTE, CallbackIngress(
        pool, state, hmac_key=None, applier=leader_side).handle)
    app.router.add_post("/follower" + CALLBACK_ROUTE, CallbackIngress(
        pool, state, hmac_key=None).handle)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("LISTEN job_callbacks")
        async with serve_loopback(app) as base, aiohttp.ClientSession() as http:
            async with http.post(f"{base}/leader{CALLBACK_PREFIX}/{first}/{first_token}",
                                 json=success("task-1")) as answer:
                assert answer.status == 200
            assert await job_state(pool, first) == ("succeeded", 0)
            assert [settled.finished for settled in leader_side.handed] == [1]
            async with http.post(f"{base}/follower{CALLBACK_PREFIX}/{second}/{second_token}",
                                 json=success("task-2")) as answer:
                assert answer.status == 200
        # One notification in all (the follower's, naming USER): a round trip on the
        # listening session brings every notification committed before it.
        notice = await anext(listener.notifies(timeout=10))
        assert notice.payload == str(USER)
        await listener.execute("SELECT 1")
        assert [n async for n in listener.notifies(timeout=0.5)] == []
    assert await job_state(pool, second) == ("submitted", 1)
    await assert_invariants(pool)


async def test_a_leaders_ingress_whose_term_was_superseded_only_stores_and_notifies(
        pool: AsyncConnectionPool, database_url: str) -> None:
    """The ingress settles under its term: one another leader superseded meanwhile fences
    the settlement out, so the callback is stored as a follower stores it (the new leader's
    applier settles it, woken by the NOTIFY) and Kie still gets its 200."""
    state = RuntimeState(instance_id="t", bot_mode="polling", version="test")
    job_id, token = await submitted_job(pool, "press-1", "task-1")
    superseded = await lead(pool, term=1)
    await lead(pool, term=2)
    leader_side = LeaderSide(pool, superseded)
    app = web.Application()
    app.router.add_post(CALLBACK_ROUTE, CallbackIngress(
        pool, state, hmac_key=None, applier=leader_side).handle)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("LISTEN job_callbacks")
        async with serve_loopback(app) as base, aiohttp.ClientSession() as http, http.post(
                f"{base}{CALLBACK_PREFIX}/{job_id}/{token}", json=success("task-1")) as answer:
            assert answer.status == 200
        notice = await anext(listener.notifies(timeout=10))
    assert notice.payload == str(USER)
    assert leader_side.handed == []
    assert await job_state(pool, job_id) == ("submitted", 1)
    await assert_invariants(pool)
