"""/start: register the user (with an empty wallet) and greet them in their language."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import read_wallet
from services.telegram import texts
from services.users import ensure_user
from supervisor.election import Leadership

router = Router(name=__name__)


@router.message(CommandStart())
async def start(message: Message, pool: AsyncConnectionPool, leadership: Leadership) -> None:
    """Register or refresh the user, then greet them with their balance."""
    user = message.from_user
    if user is None:
        return
    async with pool.connection() as conn, conn.transaction():
        await leadership.fence(conn)
        created = await ensure_user(conn, user_id=user.id, username=user.username,
                                    first_name=user.first_name,
                                    language_code=user.language_code)
        wallet = await read_wallet(conn, user.id)
    balance = texts.rubles(wallet.balance_kop if wallet else 0)
    key = "welcome" if created else "welcome_back"
    await message.answer(texts.get(user.language_code, key, name=user.first_name,
                                   balance=balance))
