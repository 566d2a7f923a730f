"""Accounts, the service handlers get: registration is fenced by the current term, wallets
are read without one."""

from __future__ import annotations

import pytest
from aiogram.types import User
from psycopg_pool import AsyncConnectionPool

from services.accounts import Accounts
from services.billing.ledger import Wallet
from services.generation.loops import LoopStore
from services.users import Language
from supervisor.election import FencedError, Leadership
from tests.helpers import lead, set_term

ANN = User(id=77, is_bot=False, first_name="Ann", username="ann", language_code="en")
USERS_SQL = b"SELECT user_id, first_name FROM users ORDER BY user_id"


def accounts_of(pool: AsyncConnectionPool, leadership: Leadership | None) -> Accounts:
    return Accounts(pool, leadership=lambda: leadership)


async def users(pool: AsyncConnectionPool) -> list[tuple[int, str]]:
    async with pool.connection() as conn:
        cur = await conn.execute(USERS_SQL)
        return [(int(r[0]), r[1]) for r in await cur.fetchall()]


async def test_register_creates_the_user_with_an_empty_wallet_once(
        pool: AsyncConnectionPool) -> None:
    accounts = accounts_of(pool, await lead(pool))
    first = await accounts.register(ANN)
    again = await accounts.register(ANN.model_copy(update={"first_name": "Anna"}))
    assert (first.created, again.created) == (True, False)
    assert first.wallet == again.wallet == Wallet(balance_kop=0, hold_kop=0)
    assert await users(pool) == [(77, "Anna")]
    assert await accounts.wallet(77) == Wallet(balance_kop=0, hold_kop=0)


async def test_a_deposed_leader_registers_nobody(pool: AsyncConnectionPool) -> None:
    accounts = accounts_of(pool, await lead(pool, term=1))
    await set_term(pool, 2)
    with pytest.raises(FencedError):
        await accounts.register(ANN)
    assert await users(pool) == []


async def test_without_a_current_term_nobody_is_registered(pool: AsyncConnectionPool) -> None:
    with pytest.raises(FencedError):
        await accounts_of(pool, None).register(ANN)
    assert await users(pool) == []


async def test_an_unknown_user_has_no_wallet(pool: AsyncConnectionPool) -> None:
    assert await accounts_of(pool, None).wallet(12345) is None


async def test_enter_refreshes_a_changed_profile_and_writes_nothing_for_an_unchanged_one(
        pool: AsyncConnectionPool) -> None:
    accounts = accounts_of(pool, await lead(pool))
    first = await accounts.enter(ANN)
    stamp_sql = b"SELECT xmin::text, first_name FROM users WHERE user_id = 77"
    async with pool.connection() as conn:
        before = await (await conn.execute(stamp_sql)).fetchone()
    again = await accounts.enter(ANN)
    async with pool.connection() as conn:
        unchanged = await (await conn.execute(stamp_sql)).fetchone()
    renamed = await accounts.enter(ANN.model_copy(update={"first_name": "Anna"}))
    async with pool.connection() as conn:
        after = await (await conn.execute(stamp_sql)).fetchone()
    assert (first.created, again.created, renamed.created) == (True, False, False)
    assert unchanged == before and after is not None and after[1] == "Anna"


async def test_a_chosen_language_and_the_first_deep_link_are_kept(
        pool: AsyncConnectionPool) -> None:
    accounts = accounts_of(pool, await lead(pool))
    await accounts.enter(ANN)
    assert (await accounts.enter(ANN)).ui_language is None
    await accounts.set_language(77, Language.RU)
    assert (await accounts.enter(ANN)).ui_language == Language.RU
    assert await accounts.remember_start_payload(77, "ref_1") is True
    assert await accounts.remember_start_payload(77, "ref_2") is False
    async with pool.connection() as conn:
        cur = await conn.execute(b"SELECT start_payload FROM users WHERE user_id = 77")
        assert await cur.fetchone() == ("ref_1",)


async def test_delivery_speaks_the_language_the_user_chose(pool: AsyncConnectionPool) -> None:
    accounts = accounts_of(pool, await lead(pool))
    await accounts.enter(ANN)  # Telegram says English
    async with pool.connection() as conn:
        assert await LoopStore(conn).user_language(77) == "en"
    await accounts.set_language(77, Language.RU)
    async with pool.connection() as conn:
        assert await LoopStore(conn).user_language(77) == "ru"


async def test_the_leader_remembers_known_users_for_its_term_and_reads_wallets_live(
        pool: AsyncConnectionPool) -> None:
    term: list[Leadership | None] = [await lead(pool)]
    accounts = Accounts(pool, leadership=lambda: term[0], known_cache_size=10)
    first = await accounts.enter(ANN)
    async with pool.connection() as conn:  # behind the memory: only a new term sees it
        await conn.execute(b"UPDATE users SET ui_language = 'ru' WHERE user_id = 77")
        await conn.execute(b"INSERT INTO ledger (user_id, kind, balance_delta_kop,"
                           b" hold_delta_kop, idempotency_key, payment_id)"
                           b" VALUES (77, 'topup', 300, 0, 'seed:77', 77)")
    again = await accounts.enter(ANN)
    assert (first.created, again.created, again.ui_language) == (True, False, None)
    assert await again.wallet() == Wallet(balance_kop=300, hold_kop=0)  # money is never cached
    await accounts.set_language(77, Language.EN)
    assert (await accounts.enter(ANN)).ui_language == Language.EN
    renamed = await accounts.enter(ANN.model_copy(update={"first_name": "Anna"}))
    assert renamed.first_name == "Anna" and await users(pool) == [(77, "Anna")]
    async with pool.connection() as conn:
        await conn.execute(b"UPDATE users SET ui_language = 'ru' WHERE user_id = 77")
    term[0] = await lead(pool, term=2)
    assert (await accounts.enter(ANN.model_copy(update={"first_name": "Anna"}))
            ).ui_language == Language.RU
