"""Accounts: the product service bot handlers use to register users and read their wallets.

Handlers get an `Accounts`, never the pool, the settings or a secret. It owns its
transactions: every write is one fenced unit of work under the current leadership (the term
the dispatcher runs under), so a deposed leader's handler changes nothing.

Crash analysis of `register` (one transaction: user row, empty wallet, wallet read): a crash
before the commit leaves nothing and the re-run update registers the user; a crash after it
and before the reply makes the re-run find the user already there (`created` is False).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiogram.types import User
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import Wallet, read_wallet
from services.users import ensure_user
from supervisor.election import FencedError, Leadership


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a user: new or returning, and their wallet."""

    created: bool
    wallet: Wallet


class Accounts:
    """Register Telegram users and read their wallets."""

    def __init__(self, pool: AsyncConnectionPool, *,
                 leadership: Callable[[], Leadership | None]) -> None:
        self._pool = pool
        self._leadership = leadership

    async def register(self, user: User) -> Registration:
        """Register the user with an empty wallet (or refresh their profile) under our term."""
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        async with leadership.fenced(self._pool) as conn:
            created = await ensure_user(conn, user_id=user.id, username=user.username,
                                        first_name=user.first_name,
                                        language_code=user.language_code)
            wallet = await read_wallet(conn, user.id)
        assert wallet is not None, "ensure_user creates the wallet with the user"
        return Registration(created=created, wallet=wallet)

    async def wallet(self, user_id: int) -> Wallet | None:
        """Return the user's wallet, or None if they never registered."""
        async with self._pool.connection() as conn:
            return await read_wallet(conn, user_id)
