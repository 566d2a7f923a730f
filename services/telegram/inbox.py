"""The durable inbox: every update is stored once, by (bot, update_id), before it is acknowledged.

Writers (the webhook handler on any instance through `GroupCommitWriter`, the leader's poller)
run one INSERT ... ON CONFLICT DO NOTHING plus a NOTIFY, committed before the caller answers
200 or advances the getUpdates offset. A crash before the commit means Telegram still has the
update and sends it again; a crash after it means the replay is a no-op.

One function checks and cleans what Telegram sends, for both ways in (`parse_update`): a JSON
object, an update_id and chat ids that fit PostgreSQL's BIGINT, and no U+0000 (jsonb cannot
hold it; it becomes U+FFFD). What it refuses gets a 400 from the webhook, and the poller
stores it as a dead letter.

`InboxStore` is the only user of `sql/inbox.sql`: one instance per bot, every query scoped by
the bot id (the numeric prefix of its token), so bots can share a database. It is also the
`supervisor.worker.Queue` of the dispatcher: claim from chat heads, settle, release claims.
Chat heads (`telegram_chat_heads`, one row per chat with open updates) are kept by the same
statements that change `telegram_updates`, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Hashable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from supervisor.sqlstore import QueryStore
from supervisor.worker import Job, Outcome, Released, Settlement

logger = logging.getLogger(__name__)

_QUERIES = QueryStore(Path(__file__).with_name("sql") / "inbox.sql")
# Updates per group-commit transaction; bounds one statement's size under a burst.
MAX_BATCH = 500
# Batches written at once: while one waits for its commit to reach disk, the next one fills
# and goes out on another connection (PostgreSQL group-commits concurrent transactions).
MAX_FLUSHERS = 3
# Fail fast when the pool has no connection: Telegram retries a 503 later.
POOL_WAIT_S = 2.0
# PostgreSQL BIGINT bounds: ids outside them can never be stored (Telegram would retry forever).
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
# Update fields whose object carries the chat; the first present one decides the order key.
_CHAT_FIELDS = ("message", "edited_message", "channel_post", "edited_channel_post",
                "business_message", "edited_business_message", "my_chat_member",
                "chat_member", "chat_join_request", "message_reaction", "chat_boost")
# Update fields without a chat: their sender's private chat is the order key.
_USER_FIELDS = ("inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query",
                "poll_answer")


class InboxStatus(StrEnum):
    """telegram_updates.status (mirrored by the table's CHECK)."""

    PENDING = "pending"        # stored, not yet handled (or backing off after a failure)
    PROCESSING = "processing"  # claimed by a dispatcher of claimed_term
    DONE = "done"              # handled to completion
    FAILED = "failed"          # dead-lettered: attempts used up, or never handleable


_SETTLED_STATUS = {Outcome.DONE: InboxStatus.DONE, Outcome.RETRY: InboxStatus.PENDING,
                   Outcome.DEAD: InboxStatus.FAILED}


class BadUpdate(ValueError):
    """The body is not a Telegram update we can store (reason in the message)."""


class Incoming(NamedTuple):
    """An update as parsed, and the exact JSON text to store for it."""

    update: dict[str, Any]
    body: bytes


def bot_id_of(token: str) -> int:
    """Return the bot id of a token (its numeric prefix, as Telegram and aiogram define it)."""
    prefix = token.split(":", 1)[0]
    if not prefix.isdigit():
        raise ValueError("a bot token starts with the bot's numeric id")
    return int(prefix)


def parse_update(body: bytes) -> Incoming:
    """Check and clean one update's JSON text; raise BadUpdate with the reason if unstorable."""
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
    if (not isinstance(update_id, int) or isinstance(update_id, bool)
            or not 0 <= update_id <= BIGINT_MAX):
        raise BadUpdate("update_id is missing or not an integer in 0..2^63-1")
    chat = chat_key(update)
    if chat is not None and not BIGINT_MIN <= chat <= BIGINT_MAX:
        raise BadUpdate(f"chat id {chat} is outside -2^63..2^63-1")
    return Incoming(update, body)


def update_id_of(update: Mapping[str, Any]) -> int | None:
    """Return the update's update_id if it can be stored, else None."""
    update_id = update.get("update_id")
    if isinstance(update_id, int) and not isinstance(update_id, bool) and \
            0 <= update_id <= BIGINT_MAX:
        return update_id
    return None


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


class InboxStore:
    """The queries of one bot's inbox (the only reader of sql/inbox.sql)."""

    def __init__(self, bot_id: int, *, instance_id: str) -> None:
        self.bot_id = bot_id
        self._instance_id = instance_id
        self._bot = {"bot_id": bot_id}

    async def insert_updates(self, conn: psycopg.AsyncConnection,
                             incoming: Sequence[Incoming]) -> int:
        """Store parsed updates (verbatim bodies) in the caller's transaction; return how many
        were new."""
        if not incoming:
            return 0
        cur = await conn.execute(_QUERIES["insert_updates"], self._bot | {
            "update_ids": [i.update["update_id"] for i in incoming],
            "chat_ids": [chat_key(i.update) for i in incoming],
            "payloads": (b"[" + b",".join(i.body for i in incoming) + b"]").decode(),
            "instance_id": self._instance_id})
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def insert_dead_letter(self, conn: psycopg.AsyncConnection, *, update_id: int,
                                 payload: str, error: str) -> None:
        """Store an update that cannot be handled as failed, with the reason."""
        await conn.execute(_QUERIES["insert_dead_letter"], self._bot | {
            "update_id": update_id, "payload": payload, "error": error,
            "instance_id": self._instance_id})

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """Subscribe an autocommit session to inbox wake-ups."""
        await conn.execute(_QUERIES["listen"])

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[Job[str]]:
        """Claim up to limit ready chat heads (and chatless updates) for term."""
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_QUERIES["claim"], self._bot | {
            "limit": limit, "term": term, "instance_id": self._instance_id})
        return [Job(r["update_id"], r["attempts"], r["payload"]) for r in await cur.fetchall()]

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[Settlement[str]]) -> None:
        """Record outcomes of term's claims and move their chats' heads on."""
        cur = await conn.execute(_QUERIES["settle"], self._bot | {
            "term": term,
            "update_ids": [s.job.key for s in settlements],
            "statuses": [_SETTLED_STATUS[s.outcome] for s in settlements],
            "delays_s": [s.retry_in_s for s in settlements],
            "errors": [s.error for s in settlements]})
        await self._refresh_heads(conn, [r[0] for r in await cur.fetchall()])

    async def release_claims(self, conn: psycopg.AsyncConnection, *, held: Collection[Hashable],
                             older_than_s: float, max_attempts: int) -> list[Released[str]]:
        """Free claims not in held older than older_than_s; dead-letter spent ones."""
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_QUERIES["release_claims"], self._bot | {
            "held": list(held), "older_than_s": older_than_s, "max_attempts": max_attempts})
        rows = await cur.fetchall()
        await self._refresh_heads(conn, [r["chat_id"] for r in rows])
        return [Released(Job(r["update_id"], r["attempts"], r["payload"]),
                         dead_lettered=r["status"] == InboxStatus.FAILED) for r in rows]

    async def prune_processed(self, conn: psycopg.AsyncConnection, *,
                              retention_hours: int) -> int:
        """Delete handled updates older than the retention; return how many."""
        cur = await conn.execute(_QUERIES["prune_processed"],
                                 self._bot | {"retention_hours": retention_hours})
        return cur.rowcount

    async def _refresh_heads(self, conn: psycopg.AsyncConnection,
                             chat_ids: Sequence[int | None]) -> None:
        chats = sorted({c for c in chat_ids if c is not None})
        if not chats:
            return
        # Two statements on purpose: the refresh must start after the lock is ours.
        params = self._bot | {"chat_ids": chats}
        await conn.execute(_QUERIES["lock_heads"], params)
        await conn.execute(_QUERIES["refresh_heads"], params)


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

    def __init__(self, pool: AsyncConnectionPool, store: InboxStore, *,
                 max_batch: int = MAX_BATCH, pool_wait_s: float = POOL_WAIT_S) -> None:
        self._pool = pool
        self._store = store
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
            await self._store.insert_updates(conn, batch)


def _settle(batch: list[tuple[Incoming, asyncio.Future[None]]],
            error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
