"""What the bot tells a user outside any handler: the notice for a dead-lettered update.

`dead_letter_notice(bot, accounts)` is the dispatcher's `on_dead_letter` hook (the composition
root passes it): it runs after the dead letter committed, with the stored payload (JSON
text), and tells the user in their language (the one they chose, else Telegram's) that their
last action failed, what that means for a generation it may have started, and gives them
the Menu button. It promises nothing it cannot know (a hold may be open: its release is the
ledger's business). Best effort: a failure to send is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup

from services.accounts import Accounts
from services.telegram import texts
from services.telegram.i18n import language_of
from services.telegram.ui import MenuCb, button

logger = logging.getLogger(__name__)

DEAD_LETTER_KEY = "something_went_wrong"


def dead_letter_notice(bot: Bot, accounts: Accounts) -> Callable[[str], Awaitable[None]]:
    """Return the hook that tells a user, in their language, that their update failed."""

    async def notify(payload: str) -> None:
        chat_id, user_id, code = reply_target(orjson.loads(payload))
        if chat_id is None:
            return
        try:
            chosen = await accounts.chosen_language(user_id) if user_id else None
            language = str(chosen or language_of(code))
            menu = InlineKeyboardMarkup(inline_keyboard=[[
                button(texts.core().get("ui-menu", language), MenuCb())]])
            await bot.send_message(chat_id, texts.core().get(DEAD_LETTER_KEY, language),
                                   reply_markup=menu)
        except Exception as exc:
            logger.warning("dead_letter_notice_not_sent",
                           extra={"chat_id": chat_id, "error": str(exc)})

    return notify


def reply_target(payload: Mapping[str, Any]) -> tuple[int | None, int | None, str | None]:
    """Return the chat to answer an update in, its sender's id and language_code."""
    for name in ("message", "edited_message", "callback_query"):
        obj = payload.get(name)
        if not isinstance(obj, dict):
            continue
        user = obj.get("from") or {}
        message = obj.get("message", obj) if name == "callback_query" else obj
        chat = message.get("chat") or {}
        return chat.get("id") or user.get("id"), user.get("id"), user.get("language_code")
    return None, None, None
