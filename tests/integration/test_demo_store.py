"""The demo's database side: the users' starting balance and the money totals."""

from __future__ import annotations

import psycopg

from sandbox.harness.demo_store import (
    SEED_KEY_PREFIX,
    DemoStore,
    GenerationTotals,
    SeededUser,
    seed_balances,
)
from services.billing.ledger import count_entries, read_wallet

USERS = [SeededUser(700_001, "User0", "en"), SeededUser(700_002, "User1", "ru")]
BALANCE_KOP = 50_000


async def test_seeding_tops_each_user_up_once_through_the_ledger(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await seed_balances(conn, USERS, BALANCE_KOP) == len(USERS)
        assert await seed_balances(conn, USERS, BALANCE_KOP) == 0  # a rerun changes nothing
        for user in USERS:
            wallet = await read_wallet(conn, user.user_id)
            assert wallet is not None
            assert (wallet.balance_kop, wallet.hold_kop) == (BALANCE_KOP, 0)
            assert await count_entries(conn, f"{SEED_KEY_PREFIX}{user.user_id}") == 1


async def test_a_fresh_database_has_no_generations_and_no_double_charge(
        database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        store = DemoStore(conn)
        assert await store.generation_totals() == GenerationTotals()
        assert await store.double_charges() == 0
        assert await store.counts_by_status() == {}
        assert await store.unhandled([1, 2]) == [(1, "missing"), (2, "missing")]
