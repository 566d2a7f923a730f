"""A stored callback wakes only its user's partition of the applier: the NOTIFY names the job's
user, `_wake_for` wakes partition user % parts (the one whose batch reads that user's
callbacks), and a notification naming no user (orphans moved to their jobs) wakes them all."""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.generation import Created, begin_submit, record_submitted, store_callback
from services.generation.applier import CallbackApplier
from supervisor.runtime_state import RuntimeState
from tests.helpers import lead
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
