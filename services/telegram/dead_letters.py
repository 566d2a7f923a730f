"""What the product tells a user whose update was dead-lettered (the dispatcher's hook).

The dispatcher calls the hook with the stored payload (JSON text) only after the dead letter
committed, so a deposed leader never sends it. The text promises nothing about money: once
holds exist, a failed update may have one open, and its release is the ledger's business.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiogram import Bot

from services.telegram import texts

logger = logging.getLogger(__name__)


def apology(bot: Bot) -> Callable[[str], Awaitable[None]]:
    """Return a hook that tells the user, in their language, that their request failed."""

    async def apologize(payload: str) -> None:
        chat_id, language = reply_target(orjson.loads(payload))
        if chat_id is None:
            return
        try:
            await bot.send_message(chat_id, texts.get(language, "something_went_wrong"))
        except Exception as exc:
            logger.warning("apology_not_sent", extra={"chat_id": chat_id, "error": str(exc)})

    return apologize


def reply_target(payload: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """Return the chat to answer an update in and its sender's language, if any."""
    for name in ("message", "edited_message", "callback_query"):
        obj = payload.get(name)
        if not isinstance(obj, dict):
            continue
        user = obj.get("from") or {}
        message = obj.get("message", obj) if name == "callback_query" else obj
        chat = message.get("chat") or {}
        return chat.get("id") or user.get("id"), user.get("language_code")
    return None, None
