"""The inbox dispatcher (leader only): stored updates -> aiogram handlers, in order per chat.

A `supervisor.worker.Worker` configured for the inbox (read the worker's docstring for the
loop, the retries, the releases and the crash analysis). What is Telegram's own:

Ordering (in `InboxStore.claim`)
    Only a chat's *head* (its oldest open update) is ever claimed, and only while it is
    neither running nor backing off; so one chat is strictly serial and chats run in
    parallel. Heads live in `telegram_chat_heads`, so a claim reads ready chats only and its
    cost does not depend on any chat's backlog. Priority lane: heads whose update is a
    pre_checkout_query or a callback_query (`inbox.PRIORITY_KINDS`) are claimed first, so a
    payment's 10 s deadline holds behind any backlog.

States of an update (`InboxStatus`)
    pending -> processing -> done | pending (retry after backoff) | failed (dead letter)
    processing -> pending | failed when a claim is released (its leader died, the dispatcher
    restarted, or the handler never settled it); failed once its attempts are used up.

Handling
    The payload is parsed by aiogram (`Update`); one it cannot parse is dead-lettered at once
    without the dead-letter hook (there is no real chat to tell). Handlers get `leadership`
    as a parameter. Outcomes are written at the next loop turn, in the fenced transaction
    that also claims (the done-marks of a busy dispatcher go in batches).

Flooded ingress
    While webhook deliveries pour in (`services/telegram/pressure.py`), storing them comes
    first: the dispatcher runs FLOODED_CONCURRENCY handlers instead of `concurrency`.

Dead letters
    `on_dead_letter(payload)` comes from the composition root (the product decides what to
    tell the user); it runs only after the dead letter committed, never for a deposed leader.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import psycopg
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from services.telegram.inbox import InboxStore
from supervisor.election import FencedError, Leadership
from supervisor.runtime_state import RuntimeState
from supervisor.worker import Job, Outcome, Settlement, Unprocessable, Worker, WorkerConfig

logger = logging.getLogger(__name__)

# Poll the inbox this often even without a NOTIFY (a missed notification costs at most this).
WAKE_FALLBACK_S = 1.0
HANDLER_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3
RETRY_BASE_S = 1.0
RETRY_MAX_S = 30.0
# A claim no handler holds this long past HANDLER_TIMEOUT_S is reaped (checked this often).
REAP_MARGIN_S = 30.0
REAP_EVERY_S = 60.0
# While all slots are busy, claim again only once concurrency / this many are free.
CLAIM_BATCH_DIVISOR = 4
# Handlers at once while the webhook ingress is flooded (never zero: the backlog still moves).
FLOODED_CONCURRENCY = 2
# Opens the dedicated autocommit session that LISTENs (never a pooled connection).
ConnectFn = Callable[[], Awaitable[psycopg.AsyncConnection]]
DeadLetterHook = Callable[[str], Awaitable[None]]


class CurrentTerm:
    """The leadership the dispatcher runs under, for writes made by handlers' helpers."""

    def __init__(self) -> None:
        self.leadership: Leadership | None = None

    def current(self) -> Leadership | None:
        """Return the term handlers run under now (None between terms): the `leadership`
        callable the services that write for handlers are given."""
        return self.leadership

    def fence_params(self) -> dict[str, object]:
        """Return the current term's self-fencing statement parameters; raise FencedError if
        none (see `Leadership.fence_params`)."""
        if self.leadership is None:
            raise FencedError("no current term")
        return self.leadership.fence_params()


class InboxDispatcher:
    """Run stored updates through aiogram, per-chat serial, chats in parallel."""

    name = "telegram-dispatcher"

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, dispatcher: Dispatcher,
                 state: RuntimeState, *, inbox: InboxStore, term: CurrentTerm,
                 listen_connect: ConnectFn, concurrency: int,
                 on_dead_letter: DeadLetterHook | None = None,
                 flooded: Callable[[], bool] = lambda: False) -> None:
        self._bot = bot
        self._dp = dispatcher
        self._state = state
        self._term = term
        self._concurrency = concurrency
        self._flooded = flooded
        self._on_dead_letter = on_dead_letter
        self._pool = pool
        self._inbox = inbox
        self._listen_connect = listen_connect

    def _worker(self) -> Worker[str]:
        # Built per run so tests' monkeypatched constants apply.
        config = WorkerConfig(
            name=self.name, concurrency=self._concurrency, max_attempts=MAX_ATTEMPTS,
            handler_timeout_s=HANDLER_TIMEOUT_S, retry_initial_s=RETRY_BASE_S,
            retry_max_s=RETRY_MAX_S, poll_interval_s=WAKE_FALLBACK_S,
            claim_batch=max(1, self._concurrency // CLAIM_BATCH_DIVISOR),
            reap_margin_s=REAP_MARGIN_S, reap_every_s=REAP_EVERY_S)
        return Worker(config, pool=self._pool, queue=self._inbox, handle=self._handle,
                      listen_connect=self._listen_connect, concurrency=self._slots,
                      on_dead_letter=self._on_dead_letter, on_turn=self._count)

    async def run(self, leadership: Leadership | None) -> None:
        """Dispatch until draining (finish in-flight work) or cancelled."""
        assert leadership is not None, "leader-only service"
        self._term.leadership = leadership
        try:
            await self._worker().run(leadership)
        finally:
            self._term.leadership = None

    def _slots(self) -> int:
        # While webhook deliveries pour in, storing them comes first (see pressure.py).
        return min(self._concurrency, FLOODED_CONCURRENCY) if self._flooded() \
            else self._concurrency

    def _count(self, settled: Sequence[Settlement[str]]) -> None:
        self._state.mark_db_ok()
        self._state.count("updates_processed", sum(s.outcome is Outcome.DONE for s in settled))
        self._state.count("updates_failed", sum(s.outcome is Outcome.DEAD for s in settled))

    async def _handle(self, job: Job[str], leadership: Leadership) -> None:
        try:
            # The payload comes as JSON text: pydantic parses it faster than dict validation.
            update = Update.model_validate_json(job.payload, context={"bot": self._bot})
        except ValidationError as exc:
            raise Unprocessable(f"ValidationError: {exc}") from exc
        await self._dp.feed_update(self._bot, update, leadership=leadership)
