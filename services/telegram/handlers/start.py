"""/start: register the user (with an empty wallet) and greet them in their language."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message

from services.accounts import Accounts
from services.telegram import texts

router = Router(name=__name__)


@router.message(CommandStart())
async def start(message: Message, accounts: Accounts) -> None:
    """Register or refresh the user, then greet them with their balance."""
    user = message.from_user
    if user is None:
        return
    registration = await accounts.register(user)
    balance = texts.rubles(registration.wallet.balance_kop)
    key = "welcome" if registration.created else "welcome_back"
    await message.answer(texts.get(user.language_code, key, name=user.first_name,
                                   balance=balance))
