"""Webhook delivery: per-chat ordered, cross-chat concurrent POSTs with exponential retry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
import orjson

from sandbox.telegram.errors import ApiError
from sandbox.telegram.params import Params, read_multipart
from sandbox.telegram.state import BotState, StoredUpdate, WebhookSettings

SECRET_HEADER: Final[str] = "X-Telegram-Bot-Api-Secret-Token"
MAX_REPLY_BODY_BYTES: Final[int] = 10 * 1024 * 1024
USER_AGENT: Final[str] = "TelegramSandbox/1.0 (webhook)"

log = logging.getLogger(__name__)

ReplyHandler = Callable[[Params], Awaitable[None]]


class WebhookDispatcher:
    """Push pending updates of one bot to its webhook URL."""

    def __init__(self, bot: BotState, settings: WebhookSettings, on_reply: ReplyHandler) -> None:
        """Prepare (but do not start) delivery for `settings`; `on_reply` runs reply methods."""
        self._bot = bot
        self._settings = settings
        self._on_reply = on_reply
        self._ready: asyncio.Queue[int] = asyncio.Queue()
        self._scheduled: set[int] = set()
        self._failures: dict[int, int] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._timeout_s = -1.0
        self._timeout = aiohttp.ClientTimeout()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if settings.secret_token:
            headers[SECRET_HEADER] = settings.secret_token
        self._headers = headers

    @property
    def in_flight(self) -> int:
        """Return how many chats are queued, waiting for retry or being delivered."""
        return len(self._scheduled)

    def start(self) -> None:
        """Switch the bot's store to per-chat queues and start the delivery workers."""
        connections = self._settings.max_connections
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
        self._session = aiohttp.ClientSession(connector=connector)
        for chat_key in self._bot.updates.to_webhook_mode():
            self.schedule(chat_key)
        self._workers = [
            asyncio.create_task(
                self._worker(), name=f"sandbox-webhook-bot{self._bot.bot_id}-worker{index}"
            )
            for index in range(connections)
        ]

    def schedule(self, chat_key: int) -> None:
        """Queue `chat_key` for delivery unless it is already queued, waiting or in flight."""
        if chat_key in self._scheduled:
            return
        self._scheduled.add(chat_key)
        self._ready.put_nowait(chat_key)

    async def stop(self) -> None:
        """Cancel workers and retry timers and close the HTTP session."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _retry_later(self, chat_key: int) -> None:
        """Put a chat back into the ready queue after its backoff expired."""
        self._timers.pop(chat_key, None)
        self._ready.put_nowait(chat_key)

    async def _worker(self) -> None:
        """Deliver the head update of ready chats, one chat at a time, forever."""
        bot = self._bot
        store = bot.updates
        loop = asyncio.get_running_loop()
        while True:
            chat_key = await self._ready.get()
            update = store.chat_head(chat_key)
            if update is None:
                self._scheduled.discard(chat_key)
                continue
            error, reply = await self._deliver(update)
            if error is None:
                self._failures.pop(chat_key, None)
                if store.pop_chat_head(chat_key, update):
                    self._ready.put_nowait(chat_key)
                else:
                    self._scheduled.discard(chat_key)
                bot.stats.webhook_ok += 1
                bot.confirmed(1)
                if reply is not None:
                    await self._on_reply(reply)
                continue
            failures = self._failures.get(chat_key, 0) + 1
            self._failures[chat_key] = failures
            bot.stats.webhook_failed += 1
            bot.webhook_last_error_date = int(time.time())
            bot.webhook_last_error_message = error
            bot.notify()
            config = bot.config
            delay_s = min(
                config.webhook_retry_initial_s * 2 ** min(failures - 1, 30),
                config.webhook_retry_max_s,
            )
            log.debug(
                "webhook delivery failed",
                extra={
                    "bot_id": bot.bot_id,
                    "update_id": update.update_id,
                    "error": error,
                    "retry_in_s": delay_s,
                },
            )
            self._timers[chat_key] = loop.call_later(delay_s, self._retry_later, chat_key)

    def _client_timeout(self) -> aiohttp.ClientTimeout:
        """Return the per-delivery timeout, rebuilt only when the setting changed."""
        timeout_s = self._bot.config.webhook_timeout_s
        if timeout_s != self._timeout_s:
            self._timeout_s = timeout_s
            self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        return self._timeout

    async def _deliver(self, update: StoredUpdate) -> tuple[str | None, Params | None]:
        """POST one update; return (error message or None, reply method params or None)."""
        session = self._session
        if session is None:
            return "Webhook dispatcher is stopped", None
        try:
            async with session.post(
                self._settings.url,
                data=update.body,
                headers=self._headers,
                timeout=self._client_timeout(),
                allow_redirects=False,
            ) as resp:
                if not 200 <= resp.status < 300:
                    await resp.read()
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}", None
                return None, await self._read_reply(resp)
        except TimeoutError:
            return "Read timeout expired", None
        except aiohttp.ClientConnectorError:
            return "Connection refused", None
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}", None
        except Exception as exc:
            log.exception("unexpected webhook delivery error", extra={"bot_id": self._bot.bot_id})
            return f"{type(exc).__name__}: {exc}", None

    async def _read_reply(self, resp: aiohttp.ClientResponse) -> Params | None:
        """Parse a method call returned in the webhook response body, if any."""
        content_type = resp.content_type
        try:
            if content_type == "multipart/form-data":
                params = await read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
            else:
                body = await resp.read()
                if content_type != "application/json" or not body:
                    return None
                if len(body) > MAX_REPLY_BODY_BYTES:
                    return None
                decoded = orjson.loads(body)
                if not isinstance(decoded, dict):
                    return None
                params = Params(decoded)
        except (ValueError, ApiError, aiohttp.ClientError) as exc:
            log.debug("ignoring unparsable webhook reply", extra={"error": repr(exc)})
            return None
        if not params.values.get("method"):
            return None
        return params
