"""Move money through the ledger: every change is one entry with a unique idempotency key.

`apply_entry` inserts the entry and moves the wallet in ONE statement, so a crash can never
leave an entry without its wallet change or the reverse; replaying the same key changes
nothing (and says so). The caller owns the transaction (and, on the leader, the fence).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "ledger.sql")
# The CHECKs that keep balance and hold >= 0 (PostgreSQL's default constraint names).
WALLET_FLOOR_CONSTRAINTS = frozenset({"wallets_balance_kop_check", "wallets_hold_kop_check"})


class EntryKind(StrEnum):
    """Ledger entry kinds, mirrored by the CHECK on ledger.kind."""

    TOPUP = "topup"            # approved payment: balance +
    HOLD = "hold"              # generation confirmed: balance -, hold +
    COMMIT = "commit"          # generation succeeded: hold -
    RELEASE = "release"        # generation failed or expired: hold -, balance +
    ADJUSTMENT = "adjustment"  # operator correction


class BillingError(Exception):
    """A money movement was refused."""


class InsufficientFunds(BillingError):
    """The balance (or hold) would go below zero."""


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet after a movement."""

    balance_kop: int
    hold_kop: int


@dataclass(frozen=True, slots=True)
class EntryResult:
    """Outcome of apply_entry: applied now, or already applied earlier under the same key."""

    applied: bool
    wallet: Wallet | None


async def apply_entry(conn: psycopg.AsyncConnection, *, user_id: int, kind: EntryKind,
                      balance_delta_kop: int, hold_delta_kop: int, idempotency_key: str,
                      job_id: int | None = None, payment_id: int | None = None,
                      note: str | None = None) -> EntryResult:
    """Apply one ledger entry once; raise InsufficientFunds if a total would go negative."""
    params = {"user_id": user_id, "kind": str(kind), "balance_delta_kop": balance_delta_kop,
              "hold_delta_kop": hold_delta_kop, "idempotency_key": idempotency_key,
              "job_id": job_id, "payment_id": payment_id, "note": note}
    try:
        async with conn.transaction():  # a savepoint when the caller has a transaction open
            cur = await conn.execute(QUERIES["apply_entry"], params)
            row = await cur.fetchone()
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name in WALLET_FLOOR_CONSTRAINTS:
            raise InsufficientFunds(f"wallet of user {user_id} cannot cover {kind}") from exc
        raise BillingError(f"ledger entry refused: {exc.diag.message_primary}") from exc
    if row is None:
        return EntryResult(applied=False, wallet=await read_wallet(conn, user_id))
    return EntryResult(applied=True, wallet=Wallet(balance_kop=row[0], hold_kop=row[1]))


async def read_wallet(conn: psycopg.AsyncConnection, user_id: int) -> Wallet | None:
    """Return the user's wallet, or None when they have none."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(QUERIES["wallet"], {"user_id": user_id})
    row = await cur.fetchone()
    return Wallet(**row) if row else None


async def count_entries(conn: psycopg.AsyncConnection, idempotency_key: str) -> int:
    """Return how many ledger entries carry this key (0 or 1, by the UNIQUE constraint)."""
    cur = await conn.execute(QUERIES["count_entries"], {"idempotency_key": idempotency_key})
    row = await cur.fetchone()
    return int(row[0]) if row else 0
