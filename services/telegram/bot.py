"""The aiogram Bot: pointed at TELEGRAM_API_BASE, orjson for JSON, retries on 429 and outages.

Retry policy (one place for every outgoing Bot API call):
- 429 Too Many Requests: wait `retry_after` seconds (Telegram did not execute the call), retry.
- network errors, 5xx and answers that are not JSON (a proxy's error page): back off and
  retry. The call may have been executed before the connection broke, so a retried send can
  show twice: delivery is at-least-once, like the dispatcher's retry of a failed update.
- anything else (400, 403, 409, ...) is final and raised at once.

Only a trusted leader talks to Telegram: `LeaderOnly` sits inside the retry loop and refuses
every attempt (the first and each retry) with `NotLeading` once `leading()` is false, so a
leader frozen past its trust window (SIGSTOP, a blocked loop) sends nothing when it wakes;
the next leader re-runs the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import File, Message, User, WebhookInfo

from config import Settings
from supervisor.aio import Backoff
from supervisor.election import FencedError

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Telegram asks for at most this; a larger retry_after means the chat is throttled hard and
# the caller (dispatcher retry with backoff) is a better place to wait.
MAX_RETRY_AFTER_S = 60
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 8.0
REQUEST_TIMEOUT_S = 30.0
# aiogram builds `Response[T]` for every call; pydantic caches parametrized generics only
# weakly, so after each garbage collection the class was rebuilt (~4 ms). Holding them keeps
# the cache warm for the result types the bot uses (edits return `Message | bool`).
_RESULT_TYPES = (Message, bool, WebhookInfo, User, File, Message | bool)
_RESPONSE_TYPES = tuple(Response[t] for t in _RESULT_TYPES)  # type: ignore[valid-type]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class NotLeading(FencedError):
    """A Bot API call was refused: this instance is not a trusted leader (any more)."""


class LeaderOnly(BaseRequestMiddleware):
    """Refuse each attempt of a Bot API call unless this instance is a trusted leader."""

    def __init__(self, leading: Callable[[], bool]) -> None:
        self._leading = leading

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if not self._leading():
            raise NotLeading(f"{method.__api_method__} refused: leadership is not trusted")
        return await make_request(bot, method)


class RetryMiddleware(BaseRequestMiddleware):
    """Retry Bot API calls on 429 (after retry_after) and on network or server errors."""

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        backoff = Backoff(initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= MAX_ATTEMPTS or exc.retry_after > MAX_RETRY_AFTER_S:
                    raise
                delay = float(exc.retry_after)
            except (TelegramNetworkError, TelegramServerError, ClientDecodeError) as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise
                delay = backoff.next_delay()
                logger.warning("telegram_call_failed", extra={
                    "method": method.__api_method__, "error": str(exc)[:200],
                    "attempt": attempt, "next_delay_s": round(delay, 2)})
            await asyncio.sleep(delay)


def create_bot(settings: Settings, *, leading: Callable[[], bool]) -> Bot:
    """Return a Bot talking to TELEGRAM_API_BASE with orjson, the retry policy and the guard."""
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base),
        json_loads=orjson.loads, json_dumps=_dumps, timeout=REQUEST_TIMEOUT_S)
    # Registered first is outermost: the guard runs inside the retry loop, before each attempt.
    session.middleware(RetryMiddleware())
    session.middleware(LeaderOnly(leading))
    return Bot(settings.telegram_bot_token.get(), session=session)
