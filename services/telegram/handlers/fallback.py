"""Anything no other handler took: a hint towards /help. Included last."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from services.telegram import texts

router = Router(name=__name__)


# Quoting the user's words shows what was not understood; long texts are cut.
QUOTE_MAX_CHARS = 60


@router.message()
async def hint(message: Message) -> None:
    """Point the user at /help, quoting what they sent."""
    language = message.from_user.language_code if message.from_user else None
    said = message.text or message.caption or "…"
    if len(said) > QUOTE_MAX_CHARS:
        said = said[:QUOTE_MAX_CHARS - 1] + "…"
    await message.answer(texts.get(language, "hint", text=said))
