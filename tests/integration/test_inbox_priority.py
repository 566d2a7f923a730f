"""The inbox's priority lane: a pre-checkout (or a button press) stored behind a backlog of
50,000 updates is in the very next claim, and a chat's own order still holds."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from services.telegram.inbox import PRIORITY_LANE, PRIORITY_NORMAL, parse_update, priority_of
from tests.helpers import inbox_store, lead, message_update

BACKLOG = 50_000
BACKLOG_CHATS = 5_000
BATCH = 5_000
PAYER = 9_000_001


def pre_checkout(update_id: int, user_id: int = PAYER) -> dict[str, Any]:
    return {"update_id": update_id, "pre_checkout_query": {
        "id": f"q{update_id}", "currency": "XTR", "total_amount": 100,
        "invoice_payload": "kb1:100:12000",
        "from": {"id": user_id, "is_bot": False, "first_name": "Payer"}}}


def press(update_id: int, chat_id: int) -> dict[str, Any]:
    return {"update_id": update_id, "callback_query": {
        "id": f"c{update_id}", "data": "home", "chat_instance": "1",
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
        "message": {"message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "private"}}}}


async def store(pool: AsyncConnectionPool, updates: list[dict[str, Any]]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await inbox_store().insert_updates(conn, [parse_update(orjson.dumps(u)) for u in updates])


def test_pre_checkouts_and_presses_take_the_lane_and_nothing_else_does() -> None:
    assert priority_of(pre_checkout(1)) == PRIORITY_LANE
    assert priority_of(press(2, 5)) == PRIORITY_LANE
    assert priority_of(message_update(3)) == PRIORITY_NORMAL


async def test_a_pre_checkout_behind_a_50000_update_backlog_is_in_the_next_claim(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool)
    for start in range(1, BACKLOG + 1, BATCH):
        await store(pool, [message_update(i, 1_000 + i % BACKLOG_CHATS)
                           for i in range(start, start + BATCH)])
    await store(pool, [pre_checkout(BACKLOG + 1), press(BACKLOG + 2, 7_000_001)])
    async with leadership.fenced(pool) as conn:
        claimed = await inbox_store().claim(conn, term=leadership.term, limit=4)
    keys = [job.key for job in claimed]
    assert keys[:2] == [BACKLOG + 1, BACKLOG + 2]
    assert keys[2:] == [1, 2]  # then the backlog, oldest first


async def test_a_press_waits_for_the_older_updates_of_its_own_chat(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool)
    await store(pool, [message_update(i, 1_000 + i) for i in range(1, 6)])
    await store(pool, [message_update(6, 42), press(7, 42)])
    async with leadership.fenced(pool) as conn:
        first = [job.key for job in await inbox_store().claim(conn, term=leadership.term,
                                                               limit=10)]
    assert 7 not in first and 6 in first
