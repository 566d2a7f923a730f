"""Long polling (leader only): getUpdates -> durable inbox -> only then confirm by offset.

Overview
    On start it deletes any webhook (Telegram refuses getUpdates while one is set), then loops:
    getUpdates(offset, timeout=POLL_TIMEOUT_S); store the batch in one fenced transaction;
    set offset = max update_id + 1, which the *next* getUpdates confirms. Updates are never
    confirmed before they are durable: a crash anywhere means Telegram sends them again and
    the inbox deduplicates them by update_id.

Raw HTTP on purpose
    The inbox keeps each update exactly as Telegram sent it, so this loop reads getUpdates'
    JSON itself instead of through aiogram's parsed objects (the URL carries the token, as
    the Bot API requires, and goes only to TELEGRAM_API_BASE).

Failure handling
    409 Conflict (another getUpdates or a webhook): another poller is alive; back off, and stop
    if our term is no longer trusted. 429: wait retry_after. Network errors, 5xx and answers
    that are not JSON (a proxy's error page): back off.
    Draining or demotion: the pending long poll is cancelled at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from psycopg_pool import AsyncConnectionPool

from services.telegram.inbox import store_updates
from supervisor.aio import Backoff, wait_event
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

POLL_TIMEOUT_S = 25
# The HTTP request may take the whole long poll plus network slack.
REQUEST_TIMEOUT_S = POLL_TIMEOUT_S + 10
BATCH_LIMIT = 100
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0


class TelegramError(Exception):
    """getUpdates answered ok=false."""

    def __init__(self, code: int, description: str, retry_after: int | None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.retry_after = retry_after


class TelegramPoller:
    """Pull updates with getUpdates into the inbox while this instance leads."""

    name = "telegram-poller"

    def __init__(self, pool: AsyncConnectionPool, state: RuntimeState, *, api_base: str,
                 token: str, allowed_updates: Sequence[str], instance_id: str) -> None:
        self._pool = pool
        self._state = state
        self._url = f"{api_base}/bot{token}/"
        self._allowed_updates = list(allowed_updates)
        self._instance_id = instance_id

    async def run(self, leadership: Leadership | None) -> None:
        """Poll until draining or cancelled."""
        assert leadership is not None, "leader-only service"
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, json_serialize=_dumps) as http:
            webhook_deleted = False
            offset: int | None = None
            backoff = Backoff(initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S)
            while not leadership.draining.is_set():
                try:
                    if not webhook_deleted:  # getUpdates is refused while a webhook is set
                        await self._call(http, "deleteWebhook", {"drop_pending_updates": False})
                        webhook_deleted = True
                    updates = await self._poll(http, leadership, offset)
                except TelegramError as exc:
                    delay = exc.retry_after or backoff.next_delay()
                    if exc.code == 409 and not leadership.trusted():
                        return
                    logger.warning("poll_refused", extra={
                        "code": exc.code, "error": str(exc), "next_delay_s": delay})
                    await wait_event(leadership.draining, delay)
                    continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    delay = backoff.next_delay()
                    logger.warning("poll_failed", extra={
                        "error": repr(exc), "attempt": backoff.attempts, "next_delay_s": delay})
                    await wait_event(leadership.draining, delay)
                    continue
                backoff.reset()
                if updates is None:
                    break  # draining interrupted the long poll
                if updates:
                    await self._store(leadership, updates)
                    offset = max(u["update_id"] for u in updates) + 1

    async def _poll(self, http: aiohttp.ClientSession, leadership: Leadership,
                    offset: int | None) -> list[dict[str, Any]] | None:
        """Return the next batch, or None if draining began during the long poll."""
        params: dict[str, Any] = {"timeout": POLL_TIMEOUT_S, "limit": BATCH_LIMIT,
                                  "allowed_updates": self._allowed_updates}
        if offset is not None:
            params["offset"] = offset
        poll = asyncio.create_task(self._call(http, "getUpdates", params), name="get-updates")
        draining = asyncio.create_task(leadership.draining.wait(), name="poll-drain")
        try:
            await asyncio.wait({poll, draining}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (poll, draining):
                task.cancel()
            await asyncio.wait({poll, draining})
        if not poll.cancelled() and poll.exception() is None:
            result: list[dict[str, Any]] = poll.result()
            return result
        if poll.cancelled():
            return None
        raise poll.exception()  # type: ignore[misc]

    async def _store(self, leadership: Leadership, updates: list[dict[str, Any]]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await leadership.fence(conn)
            inserted = await store_updates(conn, updates, instance_id=self._instance_id)
        self._state.mark_db_ok()
        self._state.count("updates_received", inserted)

    async def _call(self, http: aiohttp.ClientSession, method: str,
                    params: dict[str, Any]) -> Any:
        async with http.post(self._url + method, json=params) as response:
            raw = await response.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # A proxy's error page (e.g. an HTML 502) is an outage like any other: back off.
            raise TelegramError(response.status, "the answer is not JSON", None) from None
        if not isinstance(body, dict):
            raise TelegramError(response.status, "the answer is not a JSON object", None)
        if not body.get("ok"):
            retry_after = (body.get("parameters") or {}).get("retry_after")
            raise TelegramError(int(body.get("error_code", response.status)),
                                str(body.get("description", "")), retry_after)
        return body["result"]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
