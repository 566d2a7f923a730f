"""Accounts: the product service bot handlers use for a user's profile, money and jobs.

Handlers get an `Accounts`, never the pool, the settings or a secret. It owns its
transactions: every write is one fenced unit of work under the current leadership (the term
the dispatcher runs under), so a deposed leader's handler changes nothing; reads take a
pooled connection in autocommit (`supervisor.db.reading`: one round trip each) and no fence.

The leader's `Accounts` remembers the profiles and chosen languages it read or wrote, per
term (`known_cache_size`; only the leader writes users, every write fenced, and a new term
starts empty): a returning user with an unchanged profile costs no database round trip at
all. The wallet is not cached (settlement, payments and the console move it): a screen that
shows money reads it (`Member.wallet()`), one round trip, only there.

Crash analysis of `register` / `enter` (a read, then, only for a new user or a changed
profile, one transaction: user row, empty wallet): a crash before the commit leaves nothing
and the re-run update registers the user; a crash after it and before the reply makes the
re-run find the user already there (`created` is False). A write that fails drops the user
from the memory (it may have committed). `set_language` and `remember_start_payload` are
single idempotent UPDATEs: a re-run writes the same value again (or, for the payload,
nothing: the first one is kept).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import psycopg
from aiogram.types import User
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import LedgerLine, LedgerStore, Wallet, read_wallet
from services.generation.store import Job, JobStore
from services.users import Language, Profile, UserStore
from supervisor.db import autocommit
from supervisor.election import FencedError, Leadership


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a user: new or returning, and their wallet."""

    created: bool
    wallet: Wallet


@dataclass(frozen=True, slots=True)
class Member:
    """The user an update comes from, loaded once per update by the bot's middleware."""

    user_id: int
    first_name: str
    created: bool
    ui_language: Language | None  # None: they never chose; follow Telegram's language_code
    language_code: str | None
    wallets: Callable[[int], Awaitable[Wallet | None]] = field(repr=False, compare=False)

    async def wallet(self) -> Wallet:
        """Return the member's wallet as committed now (one read)."""
        return await self.wallets(self.user_id) or Wallet(balance_kop=0, hold_kop=0)


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a user's jobs, newest first."""

    jobs: list[Job]
    total: int


class Accounts:
    """Register Telegram users, remember their choices, read their wallets and jobs."""

    def __init__(self, pool: AsyncConnectionPool, *,
                 leadership: Callable[[], Leadership | None],
                 known_cache_size: int = 0) -> None:
        self._pool = pool
        self._leadership = leadership
        # user id -> (profile, chosen language) as stored, for the current term only.
        self._known: OrderedDict[int, tuple[Profile, Language | None]] = OrderedDict()
        self._known_size = known_cache_size
        self._known_for: object = None

    def _fenced(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        return leadership.fenced(self._pool)

    async def register(self, user: User) -> Registration:
        """Register the user with an empty wallet (or refresh their profile) under our term."""
        member = await self.enter(user)
        return Registration(created=member.created, wallet=await member.wallet())

    async def enter(self, user: User) -> Member:
        """Register the user (or refresh a changed profile) and return them.

        A returning user whose profile did not change costs one read and no write (the
        common case: most updates come from known users), or nothing when remembered.
        """
        profile = Profile(user.username, user.first_name, user.language_code)
        known = self._remembered(user.id)
        if known is not None and known[0] == profile:
            return self._member(user, created=False, ui_language=known[1])
        async with autocommit(self._pool) as conn:
            stored = await UserStore(conn).member(user.id)
        if stored is not None and stored[0] == profile:
            entered = stored[1]
        else:
            try:
                async with self._fenced() as conn:
                    entered = await UserStore(conn).enter_user(
                        user_id=user.id, username=user.username, first_name=user.first_name,
                        language_code=user.language_code)
            except BaseException:
                self._forget(user.id)
                raise
        self._remember(user.id, profile, entered.ui_language)
        return self._member(user, created=entered.created, ui_language=entered.ui_language)

    def _member(self, user: User, *, created: bool, ui_language: Language | None) -> Member:
        return Member(user_id=user.id, first_name=user.first_name, created=created,
                      ui_language=ui_language, language_code=user.language_code,
                      wallets=self.wallet)

    def _remembered(self, user_id: int) -> tuple[Profile, Language | None] | None:
        scope = self._leadership()
        if scope is not self._known_for:
            self._known.clear()
            self._known_for = scope
        known = self._known.get(user_id)
        if known is not None:
            self._known.move_to_end(user_id)
        return known

    def _remember(self, user_id: int, profile: Profile, ui_language: Language | None) -> None:
        if not self._known_size or self._leadership() is not self._known_for:
            return
        self._known[user_id] = (profile, ui_language)
        if len(self._known) > self._known_size:
            self._known.popitem(last=False)

    def _forget(self, user_id: int) -> None:
        self._known.pop(user_id, None)

    async def set_language(self, user_id: int, language: Language) -> None:
        """Store the UI language the user chose."""
        known = self._remembered(user_id)
        try:
            async with self._fenced() as conn:
                await UserStore(conn).set_ui_language(user_id, language)
        except BaseException:
            self._forget(user_id)
            raise
        if known is not None:
            self._remember(user_id, known[0], language)

    async def remember_start_payload(self, user_id: int, payload: str) -> bool:
        """Keep the user's first /start deep-link payload; return whether this one was kept."""
        async with self._fenced() as conn:
            return await UserStore(conn).remember_start_payload(user_id, payload)

    async def chosen_language(self, user_id: int) -> Language | None:
        """Return the UI language the user chose, or None (never chose, or unknown)."""
        async with autocommit(self._pool) as conn:
            known = await UserStore(conn).member(user_id)
        return known[1].ui_language if known else None

    async def wallet(self, user_id: int) -> Wallet | None:
        """Return the user's wallet, or None if they never registered."""
        async with autocommit(self._pool) as conn:
            return await read_wallet(conn, user_id)

    async def statement(self, user_id: int, *, limit: int) -> list[LedgerLine]:
        """Return the user's latest ledger entries, newest first."""
        async with autocommit(self._pool) as conn:
            return await LedgerStore(conn).recent_entries(user_id, limit=limit)

    async def jobs(self, user_id: int, *, offset: int, limit: int) -> JobPage:
        """Return one page of the user's jobs, newest first."""
        async with autocommit(self._pool) as conn:
            jobs, total = await JobStore(conn).user_jobs(user_id, offset=offset, limit=limit)
        return JobPage(jobs=jobs, total=total)

    async def job(self, user_id: int, job_id: int) -> Job | None:
        """Return one of the user's jobs, or None."""
        async with autocommit(self._pool) as conn:
            return await JobStore(conn).user_job(user_id, job_id)

    async def last_model(self, user_id: int) -> str | None:
        """Return the model id of the user's latest job, or None."""
        async with autocommit(self._pool) as conn:
            return await JobStore(conn).last_model(user_id)

