"""The money ledger: one entry per idempotency key, never negative, wallet = sum of ledger."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import AsyncIterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.billing.ledger import (
    EntryKind,
    InsufficientFunds,
    LedgerConflict,
    Wallet,
    apply_entry,
    count_entries,
    read_wallet,
)
from services.users import ensure_user

USER = 424242


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


async def new_user(conn: psycopg.AsyncConnection, user_id: int = USER) -> None:
    await ensure_user(conn, user_id=user_id, username="u", first_name="U", language_code="ru")


def deltas(kind: EntryKind, amount: int) -> tuple[int, int]:
    """Return (balance_delta, hold_delta) of a movement of `amount` kopecks."""
    return {
        EntryKind.TOPUP: (amount, 0),
        EntryKind.HOLD: (-amount, amount),
        EntryKind.COMMIT: (0, -amount),
        EntryKind.RELEASE: (amount, -amount),
    }[kind]


async def move(conn: psycopg.AsyncConnection, kind: EntryKind, amount: int, key: str,
               user_id: int = USER) -> bool:
    balance, hold = deltas(kind, amount)
    # Job movements name a job; one per key keeps "one hold / one settlement per job" apart.
    job_id = zlib.crc32(key.encode()) if kind is not EntryKind.TOPUP else None
    return await apply_entry(conn, user_id=user_id, kind=kind, balance_delta_kop=balance,
                             hold_delta_kop=hold, idempotency_key=key, job_id=job_id,
                             note="test")


async def ledger_rows(conn: psycopg.AsyncConnection, user_id: int = USER) -> int:
    cur = await conn.execute("SELECT count(*) FROM ledger WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def ledger_sum(conn: psycopg.AsyncConnection, user_id: int = USER) -> Wallet:
    cur = await conn.execute(
        "SELECT coalesce(sum(balance_delta_kop), 0)::bigint, "
        "coalesce(sum(hold_delta_kop), 0)::bigint FROM ledger WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    assert row is not None
    return Wallet(balance_kop=row[0], hold_kop=row[1])


# ---- users ----


async def test_ensure_user_creates_the_user_with_an_empty_wallet_once(
        conn: psycopg.AsyncConnection) -> None:
    assert await read_wallet(conn, USER) is None
    assert await ensure_user(conn, user_id=USER, username="ivan", first_name="Ivan",
                             language_code="ru") is True
    assert await read_wallet(conn, USER) == Wallet(balance_kop=0, hold_kop=0)
    assert await ensure_user(conn, user_id=USER, username="ivan2", first_name="Ivan",
                             language_code="en") is False
    cur = await conn.execute("SELECT username, language_code FROM users WHERE user_id = %s",
                             (USER,))
    assert await cur.fetchone() == ("ivan2", "en")
    cur = await conn.execute("SELECT count(*) FROM wallets WHERE user_id = %s", (USER,))
    assert await cur.fetchone() == (1,)


async def test_ensure_user_keeps_the_wallet_of_a_returning_user(
        conn: psycopg.AsyncConnection) -> None:
    await new_user(conn)
    await move(conn, EntryKind.TOPUP, 500, "topup-1")
    assert await ensure_user(conn, user_id=USER, username=None, first_name=None,
                             language_code=None) is False
    assert await read_wallet(conn, USER) == Wallet(balance_kop=500, hold_kop=0)


# ---- idempotency ----


async def test_same_idempotency_key_applies_once(conn: psycopg.AsyncConnection) -> None:
    await new_user(conn)
    assert await move(conn, EntryKind.TOPUP, 1000, "payment:1") is True
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)
    assert await move(conn, EntryKind.TOPUP, 1000, "payment:1") is False
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)
    assert await count_entries(conn, "payment:1") == 1


async def test_replay_with_another_amount_is_a_conflict_and_changes_nothing(
        conn: psycopg.AsyncConnection) -> None:
    await new_user(conn)
    await move(conn, EntryKind.TOPUP, 1000, "payment:1")
    with pytest.raises(LedgerConflict):
        await move(conn, EntryKind.TOPUP, 99_999, "payment:1")
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)


async def test_concurrent_replays_of_one_key_apply_once(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as setup:
        await new_user(setup)

    async def attempt() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            return await move(c, EntryKind.TOPUP, 700, "payment:race")

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as check:
        assert await read_wallet(check, USER) == Wallet(balance_kop=700, hold_kop=0)
        assert await count_entries(check, "payment:race") == 1


# ---- never negative ----


async def test_hold_beyond_the_balance_is_refused_and_changes_nothing(
        conn: psycopg.AsyncConnection) -> None:
    await new_user(conn)
    await move(conn, EntryKind.TOPUP, 300, "topup")
    with pytest.raises(InsufficientFunds):
        await move(conn, EntryKind.HOLD, 301, "hold:job-1")
    assert await read_wallet(conn, USER) == Wallet(balance_kop=300, hold_kop=0)
    assert await count_entries(conn, "hold:job-1") == 0
    assert await ledger_rows(conn) == 1
    # The key stays usable: the refused attempt left no trace.
    assert await move(conn, EntryKind.HOLD, 300, "hold:job-1")
    assert await read_wallet(conn, USER) == Wallet(0, 300)


async def test_commit_beyond_the_hold_is_refused(conn: psycopg.AsyncConnection) -> None:
    await new_user(conn)
    await move(conn, EntryKind.TOPUP, 300, "topup")
    await move(conn, EntryKind.HOLD, 100, "hold")
    with pytest.raises(InsufficientFunds):
        await move(conn, EntryKind.COMMIT, 101, "commit")
    assert await read_wallet(conn, USER) == Wallet(balance_kop=200, hold_kop=100)
    assert await count_entries(conn, "commit") == 0


async def test_a_refusal_inside_the_callers_savepoint_keeps_the_transaction_usable(
        database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as c:
        async with c.transaction():
            await new_user(c)
            await move(c, EntryKind.TOPUP, 100, "topup")
            with pytest.raises(InsufficientFunds):
                async with c.transaction():
                    await move(c, EntryKind.HOLD, 1000, "too-much")
            assert await move(c, EntryKind.HOLD, 60, "ok")
        assert await read_wallet(c, USER) == Wallet(balance_kop=40, hold_kop=60)


# ---- wallet = sum of ledger ----

KINDS = [EntryKind.TOPUP, EntryKind.HOLD, EntryKind.COMMIT, EntryKind.RELEASE]
operations = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=1, max_value=1000),
              st.booleans()),  # True: replay the key of an earlier operation
    min_size=1, max_size=25)


async def run_sequence(url: str, ops: list[tuple[EntryKind, int, bool]]) -> None:
    """Apply ops in one rolled-back transaction, checking against an in-memory model."""
    async with (
        await psycopg.AsyncConnection.connect(url) as c,
        c.transaction(force_rollback=True),
    ):
        await new_user(c)
        balance = hold = 0
        keys: list[tuple[str, EntryKind, int]] = []
        counter = itertools.count()
        for kind, amount, replay in ops:
            if replay and keys:
                key, first_kind, first_amount = keys[amount % len(keys)]
                assert await move(c, first_kind, first_amount, key) is False
                assert await read_wallet(c, USER) == Wallet(balance, hold)
                continue
            key = f"op-{next(counter)}"
            d_balance, d_hold = deltas(kind, amount)
            if balance + d_balance < 0 or hold + d_hold < 0:
                with pytest.raises(InsufficientFunds):
                    async with c.transaction():  # the sequence goes on after a refusal
                        await move(c, kind, amount, key)
                assert await count_entries(c, key) == 0
            else:
                assert await move(c, kind, amount, key) is True
                balance, hold = balance + d_balance, hold + d_hold
                assert await read_wallet(c, USER) == Wallet(balance, hold)
                keys.append((key, kind, amount))
        wallet = await read_wallet(c, USER)
        assert wallet == Wallet(balance, hold)
        assert wallet == await ledger_sum(c)
        assert await ledger_rows(c) == len(keys)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_wallet_equals_the_sum_of_its_ledger_after_any_sequence(
        database_url: str, ops: list[tuple[EntryKind, int, bool]]) -> None:
    asyncio.run(run_sequence(database_url, ops))


async def test_rolled_back_sequences_leave_nothing(database_url: str) -> None:
    await run_sequence(database_url, [(EntryKind.TOPUP, 10, False), (EntryKind.HOLD, 5, False)])
    async with await psycopg.AsyncConnection.connect(database_url) as c:
        assert await read_wallet(c, USER) is None
        assert await ledger_rows(c) == 0
