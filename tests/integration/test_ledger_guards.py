"""The database itself keeps the ledger's rules: conflicting replays, signs per kind, one
top-up per payment, wallets that move only through ledger entries (issue 8, A12)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from services.billing.ledger import (
    BillingError,
    EntryKind,
    Wallet,
    apply_entry,
    read_wallet,
)
from services.users import ensure_user

USER = 515151
OTHER = 616161


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        for user_id in (USER, OTHER):
            await ensure_user(c, user_id=user_id, username=None, first_name="U",
                              language_code="en")
        await apply_entry(c, user_id=USER, kind=EntryKind.TOPUP, balance_delta_kop=1000,
                          hold_delta_kop=0, idempotency_key="seed", payment_id=1)
        yield c


async def ledger_count(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM ledger")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("replay", [
    {"balance_delta_kop": 999},
    {"user_id": OTHER},
    {"kind": EntryKind.ADJUSTMENT},
    {"payment_id": 2},
], ids=["amount", "user", "kind", "payment"])
async def test_replaying_a_key_with_another_movement_is_a_conflict(
        conn: psycopg.AsyncConnection, replay: dict[str, object]) -> None:
    entry: dict[str, object] = {"user_id": USER, "kind": EntryKind.TOPUP,
                                "balance_delta_kop": 1000, "hold_delta_kop": 0,
                                "idempotency_key": "seed", "payment_id": 1}
    with pytest.raises(BillingError, match="another movement"):
        await apply_entry(conn, **(entry | replay))  # type: ignore[arg-type]
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)
    assert await ledger_count(conn) == 1


@pytest.mark.parametrize(("kind", "balance", "hold"), [
    (EntryKind.COMMIT, 100, -100),   # a commit that pays the user back
    (EntryKind.COMMIT, -100, 0),     # a commit that takes from the balance, not the hold
    (EntryKind.TOPUP, -100, 0),      # a negative top-up
    (EntryKind.TOPUP, 100, 100),     # a top-up straight into the hold
    (EntryKind.HOLD, -100, 50),      # a hold that loses 50
    (EntryKind.HOLD, 100, -100),     # a hold that runs backwards
    (EntryKind.RELEASE, 0, -100),    # a release that keeps the money
    (EntryKind.RELEASE, 200, -100),  # a release that gives more back than was held
    (EntryKind.ADJUSTMENT, 0, 100),  # an adjustment of the hold
], ids=lambda v: str(v))
async def test_an_entry_whose_signs_disagree_with_its_kind_is_refused(
        conn: psycopg.AsyncConnection, kind: EntryKind, balance: int, hold: int) -> None:
    await apply_entry(conn, user_id=USER, kind=EntryKind.HOLD, balance_delta_kop=-300,
                      hold_delta_kop=300, idempotency_key="hold", job_id=1)
    with pytest.raises(BillingError):
        await apply_entry(conn, user_id=USER, kind=kind, balance_delta_kop=balance,
                          hold_delta_kop=hold, idempotency_key="bad", job_id=2, payment_id=2)
    assert await read_wallet(conn, USER) == Wallet(balance_kop=700, hold_kop=300)
    assert await ledger_count(conn) == 2


async def test_a_payment_tops_up_once_whatever_the_key(conn: psycopg.AsyncConnection) -> None:
    with pytest.raises(BillingError):
        await apply_entry(conn, user_id=USER, kind=EntryKind.TOPUP, balance_delta_kop=1000,
                          hold_delta_kop=0, idempotency_key="another-key", payment_id=1)
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)


async def test_a_job_is_held_once_and_settled_once_whatever_the_keys(
        conn: psycopg.AsyncConnection) -> None:
    await apply_entry(conn, user_id=USER, kind=EntryKind.HOLD, balance_delta_kop=-100,
                      hold_delta_kop=100, idempotency_key="hold-a", job_id=7)
    with pytest.raises(BillingError):
        await apply_entry(conn, user_id=USER, kind=EntryKind.HOLD, balance_delta_kop=-100,
                          hold_delta_kop=100, idempotency_key="hold-b", job_id=7)
    await apply_entry(conn, user_id=USER, kind=EntryKind.COMMIT, balance_delta_kop=0,
                      hold_delta_kop=-100, idempotency_key="commit-a", job_id=7)
    with pytest.raises(BillingError):
        await apply_entry(conn, user_id=USER, kind=EntryKind.RELEASE, balance_delta_kop=100,
                          hold_delta_kop=-100, idempotency_key="release-a", job_id=7)
    assert await read_wallet(conn, USER) == Wallet(balance_kop=900, hold_kop=0)


@pytest.mark.parametrize("statement", [
    "UPDATE wallets SET balance_kop = balance_kop + 5000 WHERE user_id = %s",
    "UPDATE wallets SET hold_kop = 1 WHERE user_id = %s",
    "UPDATE wallets SET balance_kop = 0 WHERE user_id = %s",
], ids=["credit", "hold", "wipe"])
async def test_a_direct_wallet_update_is_refused_by_the_database(
        conn: psycopg.AsyncConnection, statement: str) -> None:
    with pytest.raises(psycopg.Error, match="only through ledger"):
        await conn.execute(statement.encode(), (USER,))
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)


async def test_a_wallet_cannot_be_born_with_money(conn: psycopg.AsyncConnection) -> None:
    await conn.execute(b"INSERT INTO users (user_id) VALUES (777)")
    with pytest.raises(psycopg.Error, match="starts empty"):
        await conn.execute(b"INSERT INTO wallets (user_id, balance_kop) VALUES (777, 100)")


@pytest.mark.parametrize("statement", [
    b"UPDATE ledger SET balance_delta_kop = 5000",
    b"DELETE FROM ledger",
], ids=["update", "delete"])
async def test_ledger_entries_cannot_be_rewritten(conn: psycopg.AsyncConnection,
                                                  statement: bytes) -> None:
    with pytest.raises(psycopg.Error, match="append-only"):
        await conn.execute(statement)
    assert await ledger_count(conn) == 1
    assert await read_wallet(conn, USER) == Wallet(balance_kop=1000, hold_kop=0)
