"""/help: what the bot can do."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from services.telegram import texts

router = Router(name=__name__)


@router.message(Command("help"))
async def show_help(message: Message) -> None:
    """List the commands."""
    language = message.from_user.language_code if message.from_user else None
    await message.answer(texts.get(language, "help"))
