"""/balance: the user's spendable balance and what is held for running generations."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from services.accounts import Accounts
from services.telegram import texts

router = Router(name=__name__)


@router.message(Command("balance"))
async def show_balance(message: Message, accounts: Accounts) -> None:
    """Show the wallet from the database."""
    user = message.from_user
    if user is None:
        return
    wallet = await accounts.wallet(user.id)
    if wallet is None:
        await message.answer(texts.get(user.language_code, "no_wallet"))
        return
    await message.answer(texts.get(user.language_code, "balance",
                                   balance=texts.rubles(wallet.balance_kop),
                                   hold=texts.rubles(wallet.hold_kop)))
