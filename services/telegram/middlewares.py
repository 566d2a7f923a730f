"""Middlewares every update goes through: its member (loaded once), a guaranteed callback answer.

`MemberMiddleware` (update level, before i18n) registers or refreshes the update's user
through `Accounts.enter` once per update and hands the result to handlers as `member`; the
i18n middleware after it reads the member's language.

`AnswerEveryCallback` (callback_query level, outer: it also wraps presses no handler took)
answers each callback query exactly once after its handler, with what the handler put in
`callback_answer` (text, alert), so no button ever spins. A handler that failed still gets
its press answered; its retry's answer is refused by Telegram as already answered, which is
logged and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer

from services.accounts import Accounts

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class MemberMiddleware(BaseMiddleware):
    """Load the update's user once and give handlers `member`."""

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        accounts: Accounts | None = data.get("accounts")
        if user is not None and not user.is_bot and accounts is not None:
            data["member"] = await accounts.enter(user)
        return await handler(event, data)


class AnswerEveryCallback(BaseMiddleware):
    """Answer every callback query once, after its handler ran."""

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = data["callback_answer"] = CallbackAnswer(answered=False)
        try:
            return await handler(event, data)
        finally:
            if not answer.disabled:
                await _answer(event, answer)


async def _answer(query: CallbackQuery, answer: CallbackAnswer) -> None:
    try:
        await query.answer(text=answer.text, show_alert=answer.show_alert)
    except TelegramAPIError as exc:
        # Answered by an earlier attempt of this update, or too old: nothing left to stop.
        logger.info("callback_answer_refused", extra={"callback_query_id": query.id,
                                                      "error": str(exc)})
