"""Long polling (leader only): getUpdates -> durable inbox -> only then confirm by offset.

Overview
    On start it deletes any webhook (Telegram refuses getUpdates while one is set), then loops:
    getUpdates(offset, timeout=POLL_TIMEOUT_S); store the batch in one fenced transaction;
    set offset = max update_id + 1, which the *next* getUpdates confirms. Updates are never
    confirmed before they are durable: a crash anywhere means Telegram sends them again and
    the inbox deduplicates them by update_id.

Bad updates never block the offset
    Each update goes through the webhook's own check (`inbox.parse_update`: U+0000 cleaned,
    ids that fit BIGINT). One it refuses is stored as a dead letter (`failed`, with the
    reason); a batch the database refuses as bad data is stored update by update, and an
    update that still fails is dead-lettered the same way. Only an update_id that cannot be
    stored at all is skipped (logged). So one poisoned update never stops polling for all.

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
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from services.telegram.inbox import BadUpdate, InboxStore, Incoming, parse_update, update_id_of
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
# Reasons kept with a dead letter are cut to this many characters.
MAX_ERROR_CHARS = 1000


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
                 token: str, allowed_updates: Sequence[str], inbox: InboxStore) -> None:
        self._pool = pool
        self._state = state
        self._url = f"{api_base}/bot{token}/"
        self._allowed_updates = list(allowed_updates)
        self._inbox = inbox

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
                ids = [i for i in (u.get("update_id") for u in updates)
                       if isinstance(i, int) and not isinstance(i, bool)]
                if ids:
                    await self._store(leadership, updates)
                    offset = max(ids) + 1

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
        """Store a batch durably: good updates together, the rest as dead letters."""
        good: list[Incoming] = []
        bad: list[tuple[Mapping[str, Any], str]] = []  # (update, why it was refused)
        for update in updates:
            try:
                good.append(parse_update(orjson.dumps(update)))
            except BadUpdate as exc:
                bad.append((update, str(exc)))
        try:
            inserted = await self._insert(leadership, good)
        except psycopg.DataError:
            inserted = 0
            for one in good:  # one refused update must not keep its neighbours out
                try:
                    inserted += await self._insert(leadership, [one])
                except psycopg.DataError as exc:
                    bad.append((one.update, f"{type(exc).__name__}: {exc}"))
        for refused, reason in bad:
            await self._dead_letter(leadership, refused, reason)
        self._state.mark_db_ok()
        self._state.count("updates_received", inserted)

    async def _insert(self, leadership: Leadership, incoming: list[Incoming]) -> int:
        async with leadership.fenced(self._pool) as conn:
            return await self._inbox.insert_updates(conn, incoming)

    async def _dead_letter(self, leadership: Leadership, update: Mapping[str, Any],
                           reason: str) -> None:
        update_id = update_id_of(update)
        logger.warning("update_refused", extra={"update_id": update.get("update_id"),
                                                "error": reason[:200]})
        if update_id is None:
            return  # no row can hold it; the offset moves past it all the same
        whole = orjson.dumps(update).replace(b"\\u0000", b"\\ufffd").decode()
        only_id = orjson.dumps({"update_id": update_id}).decode()
        try:
            await self._insert_dead_letter(leadership, update_id, whole, reason)
        except psycopg.DataError:  # keep what is sure to fit: the id (the reason says why)
            await self._insert_dead_letter(leadership, update_id, only_id, reason)

    async def _insert_dead_letter(self, leadership: Leadership, update_id: int, payload: str,
                                  reason: str) -> None:
        async with leadership.fenced(self._pool) as conn:
            await self._inbox.insert_dead_letter(conn, update_id=update_id, payload=payload,
                                                 error=reason[:MAX_ERROR_CHARS])

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
