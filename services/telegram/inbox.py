"""The durable inbox: every update is stored once, by update_id, before it is acknowledged.

Writers (the webhook handler on any instance through `GroupCommitWriter`, the leader's poller
through `store_updates`) run one INSERT ... ON CONFLICT DO NOTHING plus a NOTIFY, committed
before the caller answers 200 or advances the getUpdates offset. A crash before the commit
means Telegram still has the update and sends it again; a crash after it means the replay is
a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from supervisor.sqlstore import QueryStore

logger = logging.getLogger(__name__)

QUERIES = QueryStore(Path(__file__).with_name("sql") / "inbox.sql")
# Updates per group-commit transaction; bounds one statement's size under a burst.
MAX_BATCH = 500
# Batches written at once: while one waits for its commit to reach disk, the next one fills
# and goes out on another connection (PostgreSQL group-commits concurrent transactions).
MAX_FLUSHERS = 3
# Fail fast when the pool has no connection: Telegram retries a 503 later.
POOL_WAIT_S = 2.0
# Update fields whose object carries the chat; the first present one decides the order key.
_CHAT_FIELDS = ("message", "edited_message", "channel_post", "edited_channel_post",
                "business_message", "edited_business_message", "my_chat_member",
                "chat_member", "chat_join_request", "message_reaction", "chat_boost")
# Update fields without a chat: their sender's private chat is the order key.
_USER_FIELDS = ("inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query",
                "poll_answer")


class BadUpdate(ValueError):
    """The body is not a Telegram update (reason in the message)."""


class Incoming(NamedTuple):
    """An update as parsed, and the exact JSON text to store for it."""

    update: dict[str, Any]
    body: bytes


def parse_update(body: bytes) -> Incoming:
    """Parse a webhook body; raise BadUpdate unless it is a JSON object with an int update_id."""
    # PostgreSQL's jsonb cannot hold U+0000; a replacement character keeps the update storable.
    if b"\\u0000" in body:
        body = body.replace(b"\\u0000", b"\\ufffd")
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadUpdate(f"body is not JSON: {exc}") from None
    if not isinstance(update, dict):
        raise BadUpdate("body is not a JSON object")
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise BadUpdate("update_id is missing or not a non-negative integer")
    return Incoming(update, body)


def chat_key(update: Mapping[str, Any]) -> int | None:
    """Return the id whose updates must be handled in order (chat, else user), or None."""
    for name in _CHAT_FIELDS:
        obj = update.get(name)
        if isinstance(obj, dict) and isinstance(obj.get("chat"), dict):
            return _int_or_none(obj["chat"].get("id"))
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return _int_or_none(message["chat"].get("id"))
        return _user_id(query.get("from"))
    for name in _USER_FIELDS:
        obj = update.get(name)
        if isinstance(obj, dict):
            return _user_id(obj.get("from") or obj.get("user"))
    return None


def _user_id(user: object) -> int | None:
    return _int_or_none(user.get("id")) if isinstance(user, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def store_updates(conn: psycopg.AsyncConnection, updates: Sequence[Mapping[str, Any]], *,
                        instance_id: str, bodies: Sequence[bytes] | None = None) -> int:
    """Store a batch of updates (within the caller's transaction); return how many were new.

    `bodies`, when given, are the updates' JSON texts as received (stored verbatim).
    """
    if not updates:
        return 0
    payloads = (b"[" + b",".join(bodies) + b"]") if bodies is not None else orjson.dumps(updates)
    cur = await conn.execute(QUERIES["insert_updates"], {
        "update_ids": [u["update_id"] for u in updates],
        "chat_ids": [chat_key(u) for u in updates],
        "payloads": payloads.decode(),
        "instance_id": instance_id})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


class GroupCommitWriter:
    """Store updates from concurrent requests in shared transactions (group commit).

    Each caller waits until *its* update is committed, so answering 200 afterwards keeps the
    "durable before acknowledged" rule. While one batch is being written, new arrivals queue
    and go together in the next one: under load a single INSERT ... unnest + COMMIT carries
    many updates, at no cost to an idle system (a lone update is flushed at once); up to
    MAX_FLUSHERS batches are in flight on separate connections. A batch the
    database refuses as bad data is retried update by update, so one poisoned update cannot
    fail its neighbours.
    """

    def __init__(self, pool: AsyncConnectionPool, *, instance_id: str,
                 max_batch: int = MAX_BATCH, pool_wait_s: float = POOL_WAIT_S) -> None:
        self._pool = pool
        self._instance_id = instance_id
        self._max_batch = max_batch
        self._pool_wait_s = pool_wait_s
        self._queue: list[tuple[Incoming, asyncio.Future[None]]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def store(self, incoming: Incoming) -> None:
        """Return once the update is committed; raise the database error if it could not be."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((incoming, future))
        if len(self._flushers) < MAX_FLUSHERS:
            flusher = asyncio.create_task(self._flush_all(), name="inbox-group-commit")
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        # A caller that goes away (client disconnect) cancels only its own future: the batch
        # runs in the flusher task and is written all the same.
        await future

    async def _flush_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[Incoming, asyncio.Future[None]]]) -> None:
        try:
            await self._write([incoming for incoming, _ in batch])
        except psycopg.DataError as exc:
            if len(batch) == 1:
                _settle(batch, exc)
                return
            for one in batch:
                await self._flush([one])
            return
        except Exception as exc:
            # Every waiting request must get an answer, whatever went wrong.
            if not isinstance(exc, (psycopg.Error, PoolTimeout, OSError)):
                logger.exception("inbox_batch_failed", extra={"updates": len(batch)})
            _settle(batch, exc)
            return
        _settle(batch, None)

    async def _write(self, batch: list[Incoming]) -> None:
        async with self._pool.connection(timeout=self._pool_wait_s) as conn, conn.transaction():
            await store_updates(conn, [i.update for i in batch], instance_id=self._instance_id,
                                bodies=[i.body for i in batch])


def _settle(batch: list[tuple[Incoming, asyncio.Future[None]]],
            error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
