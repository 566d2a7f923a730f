"""The inbox store: chat heads always match the open updates, whatever the mix of inserts,
claims, settles and releases; and the status enum mirrors the table's CHECK."""

from __future__ import annotations

import random
import re

import orjson
from psycopg_pool import AsyncConnectionPool

from services.telegram.inbox import InboxStatus, parse_update
from supervisor.election import Leadership
from supervisor.worker import Job, Outcome, Settlement
from tests.helpers import inbox_store, lead, message_update

CHATS = (101, 102, 103, 104)
STEPS = 300
SEED = 8
MAX_ATTEMPTS = 2
# A chat's head: its running update if any (an older one may arrive late, out of order, and
# waits), else its oldest open one.
TRUTH_SQL = b"""
SELECT chat_id, update_id, status = 'processing'
  FROM (SELECT DISTINCT ON (chat_id) chat_id, update_id, status
          FROM telegram_updates
         WHERE status IN ('pending', 'processing') AND chat_id IS NOT NULL
         ORDER BY chat_id, status = 'processing' DESC, update_id) AS heads
 ORDER BY chat_id
"""
HEADS_SQL = b"SELECT chat_id, head_id, busy FROM telegram_chat_heads ORDER BY chat_id"
PROCESSING_SQL = b"""
SELECT update_id, chat_id, attempts FROM telegram_updates WHERE status = 'processing'
"""
CHECK_SQL = b"""
SELECT pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'telegram_updates'::regclass AND contype = 'c'
   AND pg_get_constraintdef(oid) LIKE '%%status%%'
"""


async def rows(pool: AsyncConnectionPool, query: bytes) -> list[tuple[object, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        return [tuple(r) for r in await cur.fetchall()]


async def step(pool: AsyncConnectionPool, leadership: Leadership, rng: random.Random,
               next_ids: list[int], claimed: list[tuple[int, int | None]]) -> None:
    """Do one random inbox operation the dispatcher or an ingress could do."""
    store = inbox_store()
    processing = await rows(pool, PROCESSING_SQL)
    action = rng.choice(["insert", "insert", "claim", "settle", "settle", "release"])
    async with leadership.fenced(pool) as conn:
        if action == "insert":
            batch = [next_ids.pop(rng.randrange(min(8, len(next_ids))))
                     for _ in range(rng.randint(1, 3)) if next_ids]
            updates = [message_update(i, rng.choice(CHATS)) if rng.random() < 0.9
                       else {"update_id": i, "poll": {"id": str(i)}} for i in batch]
            await store.insert_updates(conn, [parse_update(orjson.dumps(u)) for u in updates])
        elif action == "claim":
            for job in await store.claim(conn, term=1, limit=rng.randint(1, 4)):
                chat = next((r[1] for r in await rows(pool, PROCESSING_SQL)
                             if r[0] == job.key), None)
                claimed.append((int(job.key), chat))  # type: ignore[call-overload]
        elif action == "settle" and processing:
            picked = rng.sample(processing, rng.randint(1, len(processing)))
            await store.settle(conn, term=1, settlements=[
                Settlement(Job(r[0], int(r[2]), ""),  # type: ignore[call-overload]
                           rng.choice(list(Outcome)), "boom", retry_in_s=0.0)
                for r in picked])
        elif action == "release":
            held = [r[0] for r in processing if rng.random() < 0.5]
            await store.release_claims(conn, held=held, older_than_s=0.0,
                                       max_attempts=MAX_ATTEMPTS)


async def test_chat_heads_match_the_open_updates_through_any_mix_of_operations(
        pool: AsyncConnectionPool) -> None:
    rng = random.Random(SEED)
    leadership = await lead(pool)
    next_ids = list(range(1, 400))
    claimed: list[tuple[int, int | None]] = []
    for _ in range(STEPS):
        await step(pool, leadership, rng, next_ids, claimed)
        truth = await rows(pool, TRUTH_SQL)
        assert await rows(pool, HEADS_SQL) == truth
        # One chat runs one update at a time.
        processing = await rows(pool, PROCESSING_SQL)
        chats = [r[1] for r in processing if r[1] is not None]
        assert len(chats) == len(set(chats))
        assert {(c, u) for c, u, busy in truth if busy} == {
            (r[1], r[0]) for r in processing if r[1] is not None}
    assert len(claimed) > 50, "the mix exercised claims"


async def test_an_update_arriving_late_waits_for_the_running_head_then_runs_next(
        pool: AsyncConnectionPool) -> None:
    store, leadership = inbox_store(), await lead(pool)
    async with leadership.fenced(pool) as conn:
        await store.insert_updates(conn, [parse_update(orjson.dumps(message_update(5, 101)))])
        assert [j.key for j in await store.claim(conn, term=1, limit=5)] == [5]
        await store.insert_updates(conn, [parse_update(orjson.dumps(message_update(3, 101)))])
        assert await store.claim(conn, term=1, limit=5) == []  # the chat is busy
        await store.settle(conn, term=1, settlements=[Settlement(Job(5, 1, ""), Outcome.DONE)])
        assert [j.key for j in await store.claim(conn, term=1, limit=5)] == [3]


async def test_the_status_enum_mirrors_the_tables_check(pool: AsyncConnectionPool) -> None:
    (definition,), = await rows(pool, CHECK_SQL)
    assert set(re.findall(r"'(\w+)'", str(definition))) == {s.value for s in InboxStatus}
