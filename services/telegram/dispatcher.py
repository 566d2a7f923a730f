"""The inbox dispatcher (leader only): stored updates -> aiogram handlers, in order per chat.

Overview
    Wakes on NOTIFY telegram_inbox (with a WAKE_FALLBACK_S poll in case a notification is
    missed), claims ready updates in update_id order with FOR UPDATE SKIP LOCKED, and runs
    each in its own task through aiogram's `Dispatcher.feed_update`. At most `concurrency`
    updates run at once. Each loop turn is one fenced transaction that marks the updates
    handled since the last turn done and claims more (while busy, only once a quarter of the
    slots are free), so round trips per update stay well below one under load.

Ordering
    The claim query only takes the *head* of each chat (its oldest open update) and only if
    that head is pending; while a chat's update is processing or backing off, nothing else of
    that chat is claimed. So one chat is strictly serial; different chats run in parallel.

States of an update (telegram_updates.status)
    pending -> processing -> done | pending (retry after backoff) | failed (dead letter)
    On promotion, updates left processing by an older term go back to pending: they were in
    flight when that leader died, so they run again (the only source of duplicates).

Failure handling
    A handler error or HANDLER_TIMEOUT_S: retried with backoff up to MAX_ATTEMPTS, then
    dead-lettered (error kept) and the user gets a polite "something went wrong" reply.
    Every status change carries our term in its WHERE and runs after the term fence.

Shutdown
    Draining: claim nothing new, let in-flight handlers finish, return. Cancelled: in-flight
    handlers are cancelled; their updates stay processing and the next term re-runs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import psycopg
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.telegram import texts
from services.telegram.inbox import QUERIES
from supervisor.aio import wait_event
from supervisor.election import FencedError, Leadership
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

# Poll the inbox this often even without a NOTIFY (a missed notification costs at most this).
WAKE_FALLBACK_S = 1.0
HANDLER_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3
RETRY_BASE_S = 1.0
RETRY_MAX_S = 30.0
LISTEN_RETRY_S = 1.0
# While all slots are busy, claim again only once concurrency / this many are free.
CLAIM_BATCH_DIVISOR = 4
# Handlers at once while the webhook ingress is flooded (never zero: the backlog still moves).
FLOODED_CONCURRENCY = 2
# Opens the dedicated autocommit session that LISTENs (never a pooled connection).
ConnectFn = Callable[[], Awaitable[psycopg.AsyncConnection]]


class CurrentTerm:
    """The leadership the dispatcher runs under, for writes made by handlers' helpers."""

    def __init__(self) -> None:
        self.leadership: Leadership | None = None

    async def fence(self, conn: psycopg.AsyncConnection) -> None:
        """Fence conn's transaction with the current term; raise FencedError if none."""
        if self.leadership is None:
            raise FencedError("no current term")
        await self.leadership.fence(conn)


class InboxDispatcher:
    """Run stored updates through aiogram, per-chat serial, chats in parallel."""

    name = "telegram-dispatcher"

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, dispatcher: Dispatcher,
                 state: RuntimeState, *, term: CurrentTerm, listen_connect: ConnectFn,
                 instance_id: str, concurrency: int,
                 flooded: Callable[[], bool] = lambda: False) -> None:
        self._pool = pool
        self._listen_connect = listen_connect
        self._bot = bot
        self._dp = dispatcher
        self._state = state
        self._instance_id = instance_id
        self._concurrency = concurrency
        self._term = term
        self._flooded = flooded
        self._wake = asyncio.Event()
        self._done: list[int] = []   # handled, to be marked done at the next loop turn

    async def run(self, leadership: Leadership | None) -> None:
        """Dispatch until draining (finish in-flight work) or cancelled."""
        assert leadership is not None, "leader-only service"
        self._term.leadership = leadership
        self._done = []  # marks left by an earlier term are that term's business
        listener = asyncio.create_task(self._listen(leadership), name="inbox-listen")
        # Draining must end the idle wait at once, not after WAKE_FALLBACK_S.
        drain_waker = asyncio.create_task(self._wake_on(leadership.draining), name="drain-wake")
        in_flight: set[asyncio.Task[None]] = set()
        # Claim in batches: while busy, wait until this many slots are free (fewer round trips).
        claim_batch = max(1, self._concurrency // CLAIM_BATCH_DIVISOR)
        try:
            await self._release_stale_claims(leadership)
            while not leadership.draining.is_set():
                self._wake.clear()
                # While webhook deliveries pour in, storing them comes first (see pressure.py).
                slots = self._concurrency
                if self._flooded():
                    slots = min(slots, FLOODED_CONCURRENCY)
                free = max(0, slots - len(in_flight))
                limit = free if not in_flight or free >= min(claim_batch, slots) else 0
                claimed = await self._settle_and_claim(leadership, limit)
                for row in claimed:
                    task = asyncio.create_task(self._handle(leadership, row),
                                               name=f"update-{row['update_id']}")
                    in_flight.add(task)
                    task.add_done_callback(self._on_done(in_flight))
                if limit and len(claimed) == limit:
                    continue  # there may be more ready right now
                # Backed-off updates become due within RETRY_BASE_S >= WAKE_FALLBACK_S.
                await wait_event(self._wake, WAKE_FALLBACK_S)
            if in_flight:
                await asyncio.wait(in_flight)
            await self._settle_and_claim(leadership, 0)  # a drained handover re-runs nothing
        finally:
            listener.cancel()
            drain_waker.cancel()
            for task in in_flight:
                task.cancel()
            await asyncio.wait([listener, drain_waker, *in_flight])
            self._term.leadership = None

    async def _wake_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self._wake.set()

    def _on_done(self, in_flight: set[asyncio.Task[None]]) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._wake.set()
        return done

    async def _listen(self, leadership: Leadership) -> None:
        """Hold a LISTEN session and set the wake event on every inbox notification."""
        while not leadership.draining.is_set():
            try:
                async with await self._listen_connect() as conn:
                    await conn.execute(QUERIES["listen"])
                    self._wake.set()  # catch up on anything stored before LISTEN began
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                logger.warning("inbox_listen_failed", extra={"error": str(exc)})
                await wait_event(leadership.draining, LISTEN_RETRY_S)

    async def _release_stale_claims(self, leadership: Leadership) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await leadership.fence(conn)
            cur = await conn.execute(QUERIES["release_stale_claims"], {"term": leadership.term})
        if cur.rowcount:
            logger.warning("inbox_claims_released", extra={"count": cur.rowcount,
                                                           "term": leadership.term})

    async def _settle_and_claim(self, leadership: Leadership,
                                limit: int) -> list[dict[str, Any]]:
        """Mark handled updates done and claim up to limit more, in one fenced transaction.

        Done-marks are batched: a handler's update is only marked at the next loop turn (a
        few ms later), so a crash in between re-runs it, like any in-flight update.
        """
        done, self._done = self._done, []
        if not done and not limit:
            return []
        rows: list[dict[str, Any]] = []
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await leadership.fence(conn)
                if done:
                    await conn.execute(QUERIES["mark_done"], {"update_ids": done,
                                                              "term": leadership.term})
                if limit:
                    cur = conn.cursor(row_factory=dict_row)
                    await cur.execute(QUERIES["claim"], {
                        "limit": limit, "term": leadership.term,
                        "instance_id": self._instance_id})
                    rows = await cur.fetchall()
        except BaseException:
            self._done = done + self._done  # not recorded: try again next turn
            raise
        self._state.mark_db_ok()
        self._state.count("updates_processed", len(done))
        return rows

    async def _handle(self, leadership: Leadership, row: Mapping[str, Any]) -> None:
        update_id = row["update_id"]
        started = time.perf_counter()
        try:
            # The payload comes as JSON text: pydantic parses it faster than dict validation.
            update = Update.model_validate_json(row["payload"], context={"bot": self._bot})
            async with asyncio.timeout(HANDLER_TIMEOUT_S):
                await self._dp.feed_update(self._bot, update, leadership=leadership)
        except asyncio.CancelledError:
            raise
        except FencedError:
            return  # our term is over; the next leader owns this update now
        except Exception as exc:
            await self._record_failure(leadership, row, exc)
            return
        self._done.append(update_id)
        self._wake.set()
        logger.debug("update_handled", extra={
            "update_id": update_id, "ms": round((time.perf_counter() - started) * 1000, 2)})

    async def _record_failure(self, leadership: Leadership, row: Mapping[str, Any],
                              exc: BaseException) -> None:
        update_id, attempts = row["update_id"], row["attempts"]
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts < MAX_ATTEMPTS:
            delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempts - 1))
            logger.error("update_failed", extra={"update_id": update_id, "error": error,
                                                 "attempt": attempts, "next_delay_s": delay})
            await self._update_status(leadership, "mark_retry", {
                "update_id": update_id, "delay_s": delay, "error": error})
            return
        logger.error("update_dead_lettered", extra={"update_id": update_id, "error": error,
                                                    "attempt": attempts})
        self._state.count("updates_failed")
        await self._update_status(leadership, "mark_failed", {"update_id": update_id,
                                                             "error": error})
        await self._apologize(orjson.loads(row["payload"]))

    async def _update_status(self, leadership: Leadership, query: str,
                             params: dict[str, Any]) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await leadership.fence(conn)
                await conn.execute(QUERIES[query], params | {"term": leadership.term})
        except FencedError:
            logger.warning("update_status_fenced", extra={"query": query})

    async def _apologize(self, payload: Mapping[str, Any]) -> None:
        """Tell the user their request failed for good (best effort)."""
        chat_id, language = _reply_target(payload)
        if chat_id is None:
            return
        try:
            await self._bot.send_message(chat_id, texts.get(language, "something_went_wrong"))
        except Exception as exc:
            logger.warning("apology_not_sent", extra={"chat_id": chat_id, "error": str(exc)})


def _reply_target(payload: Mapping[str, Any]) -> tuple[int | None, str | None]:
    for name in ("message", "edited_message", "callback_query"):
        obj = payload.get(name)
        if not isinstance(obj, dict):
            continue
        user = obj.get("from") or {}
        message = obj.get("message", obj) if name == "callback_query" else obj
        chat = message.get("chat") or {}
        return chat.get("id") or user.get("id"), user.get("language_code")
    return None, None
