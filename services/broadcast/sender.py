"""The leader's broadcast sender: a `supervisor.worker.Worker` over the recipient rows.

Overview
    An operator's confirm writes one `broadcast_recipients` row per user (pending) and
    NOTIFYs `broadcast_ready`. The sender claims rows under its term (status `sending`,
    `claimed_term`), sends each text through a token bucket of BROADCAST_RATE per second, and
    the worker settles the outcomes at its next turn (guarded by term and status):
    `sent`, `blocked` (Telegram's 403), `failed` (a 400 such as chat not found, or attempts
    used up), or back to `pending` after a backoff (network errors; 429s are retried by the
    Bot's own RetryMiddleware, and the bucket keeps us under Telegram's ~30/s per bot).
    A side loop edits each operator's progress message at most every PROGRESS_EVERY_S,
    and once every row is settled shows the final counts and stops editing it.

Rate
    `TokenBucket(capacity, window_s)` with capacity = rate / BUCKET_SLICES_PER_S: at most
    `rate` sends in any second, in small slices so Telegram never sees a burst.

Crash analysis
    - Crash after a claim committed, before the send: the row stays `sending` under our
      term; the next leader (or this worker's restart) releases it and it is sent once.
    - Crash after the send, before the settle committed: the row is released and sent again.
      These in-flight rows (at most `CONCURRENCY` plus the outcomes of one turn) are the only
      duplicates a failover can make.
    - Crash after the settle: nothing to redo.
    - Progress edits are idempotent (the same counts edit to the same text); `finish` is
      fenced, so a deposed leader never closes a broadcast the next one still sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from psycopg_pool import AsyncConnectionPool

from services.broadcast.store import BroadcastStore, Progress, Recipient, RecipientQueue
from services.kie.ratelimit import TokenBucket
from services.telegram import texts
from supervisor import worker
from supervisor.aio import wait_event
from supervisor.election import FencedError, Leadership

logger = logging.getLogger(__name__)

# Sends in flight at once: enough to keep the bucket busy while a send takes ~10-50 ms.
CONCURRENCY: Final[int] = 16
# A recipient gets this many tries before it is marked failed.
MAX_ATTEMPTS: Final[int] = 5
# One send (bucket wait included) may take this long before it is retried.
HANDLER_TIMEOUT_S: Final[float] = 30.0
# Without a NOTIFY the sender looks for work this often.
POLL_INTERVAL_S: Final[float] = 1.0
# The bucket grants rate / this per slice: smooth sending, no burst at a second's start.
BUCKET_SLICES_PER_S: Final[int] = 5
# An operator's progress message is edited at most this often (each edit is a Bot API call).
PROGRESS_EVERY_S: Final[float] = 3.0


def bucket_for(rate_per_s: float) -> TokenBucket:
    """Return a bucket that grants at most rate_per_s sends in any second."""
    capacity = max(1, round(rate_per_s / BUCKET_SLICES_PER_S))
    return TokenBucket(capacity, capacity / rate_per_s)


class BroadcastSender:
    """Send confirmed broadcasts while this instance leads."""

    name = "broadcast-sender"

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, *, rate_per_s: float,
                 listen_connect: worker.ConnectFn | None = None,
                 progress_every_s: float = PROGRESS_EVERY_S) -> None:
        """Send with bot at most rate_per_s messages per second."""
        self._pool = pool
        self._bot = bot
        self._rate_per_s = rate_per_s
        self._progress_every_s = progress_every_s
        self._bucket = bucket_for(rate_per_s)
        self.worker = worker.Worker(
            worker.WorkerConfig(name=self.name, concurrency=CONCURRENCY,
                                max_attempts=MAX_ATTEMPTS, handler_timeout_s=HANDLER_TIMEOUT_S,
                                poll_interval_s=POLL_INTERVAL_S),
            pool=pool, queue=RecipientQueue(), handle=self._send,
            listen_connect=listen_connect)

    async def run(self, leadership: Leadership | None) -> None:
        """Send until draining (in-flight sends finish and settle) or cancelled."""
        assert leadership is not None, "leader-only service"
        self._bucket = bucket_for(self._rate_per_s)  # a new term starts without debt
        progress = asyncio.create_task(self._progress_loop(leadership),
                                       name=f"{self.name}-progress")
        try:
            await self.worker.run(leadership)
        finally:
            progress.cancel()
            await asyncio.wait([progress])

    async def _send(self, job: worker.Job[Recipient], leadership: Leadership) -> None:
        recipient = job.payload
        await self._bucket.acquire()
        try:
            await self._bot.send_message(recipient.user_id, recipient.text)
        except TelegramForbiddenError:
            recipient.blocked = True  # settled as blocked: the user stopped the bot
        except TelegramBadRequest as exc:
            raise worker.Unprocessable(str(exc)) from exc  # e.g. chat not found: never sendable

    async def _progress_loop(self, leadership: Leadership) -> None:
        while not leadership.draining.is_set():
            try:
                await self.show_progress(leadership)
            except FencedError:
                return
            except Exception as exc:  # a failed edit is retried at the next tick
                logger.warning("broadcast_progress_failed", extra={"error": str(exc)[:200]})
            await wait_event(leadership.draining, self._progress_every_s)

    async def show_progress(self, leadership: Leadership) -> None:
        """Edit every open broadcast's progress message; close the finished ones."""
        async with self._pool.connection() as conn:
            unfinished = await BroadcastStore(conn).unfinished()
        for progress in unfinished:
            if progress.progress_chat_id is not None and progress.progress_message_id is not None:
                await self._edit(progress)
            if progress.open == 0:
                async with leadership.fenced(self._pool) as conn:
                    await BroadcastStore(conn).finish(progress.id)
                logger.info("broadcast_finished", extra={
                    "broadcast_id": progress.id, "sent": progress.sent,
                    "blocked": progress.blocked, "failed": progress.failed})

    async def _edit(self, progress: Progress) -> None:
        assert progress.progress_chat_id is not None and progress.progress_message_id is not None
        key = "admin-broadcast-progress" if progress.open else "admin-broadcast-done"
        text = texts.get(progress.language, key, id=str(progress.id),
                         sent=str(progress.sent), blocked=str(progress.blocked),
                         failed=str(progress.failed), total=str(progress.recipients))
        try:
            await self._bot.edit_message_text(text, chat_id=progress.progress_chat_id,
                                              message_id=progress.progress_message_id)
        except TelegramBadRequest as exc:
            if "not modified" not in str(exc):
                raise
