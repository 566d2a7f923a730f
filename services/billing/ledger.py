"""Move money through the ledger: every change is one entry with a unique idempotency key.

`apply_entry` inserts the entry (`apply_entries` several, in one round trip); the database
moves the wallet in the same statement (the `ledger_move_wallet` trigger, migration 007), so a
crash can never leave an entry without its wallet change or the reverse, and nothing else can
move a wallet: a direct `UPDATE wallets` is refused by the database. Replaying the same key
with the same movement changes nothing (and says so); replaying it with another user, kind,
amount, job or payment raises `LedgerConflict`, as does a second top-up of one payment or a
second hold or settlement of one job. The caller owns the transaction (and, on the leader,
the fence).

Crash analysis: the entry and its wallet move are one statement, inside the caller's
transaction: a crash before its commit leaves neither, after it both; the retry replays the
key and gets "already applied".

A refusal (InsufficientFunds, LedgerConflict) leaves the caller's transaction aborted, as
any failed statement does: no savepoint is taken per entry (two round trips on every money
movement), because the hold, the settlement and every operator's movement end their
transaction on a refusal anyway. A caller that goes on after one wraps the entry in its
own savepoint (`async with conn.transaction()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore, Sent, first_rows, send_one

QUERIES = QueryStore(Path(__file__).with_name("sql") / "ledger.sql")
# The CHECKs that keep balance and hold >= 0 (PostgreSQL's default constraint names).
WALLET_FLOOR_CONSTRAINTS = frozenset({"wallets_balance_kop_check", "wallets_hold_kop_check"})


class EntryKind(StrEnum):
    """Ledger entry kinds, mirrored by the CHECKs on ledger.kind (sign rules: migration 007)."""

    TOPUP = "topup"            # approved payment: balance +, hold 0
    HOLD = "hold"              # generation confirmed: balance -x, hold +x
    COMMIT = "commit"          # generation succeeded: balance 0, hold -
    RELEASE = "release"        # generation failed or expired: hold -x, balance +x
    ADJUSTMENT = "adjustment"  # operator correction: balance +/-, hold 0


class BillingError(Exception):
    """A money movement was refused."""


class InsufficientFunds(BillingError):
    """The balance (or hold) would go below zero."""


class LedgerConflict(BillingError):
    """The movement contradicts one already recorded (same key or same payment/job)."""


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet's totals in kopecks."""

    balance_kop: int
    hold_kop: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger movement, as asked for or as stored."""

    user_id: int
    kind: EntryKind
    balance_delta_kop: int
    hold_delta_kop: int
    job_id: int | None = None
    payment_id: int | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """An entry to apply once under its idempotency key."""

    entry: Entry
    idempotency_key: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One stored ledger entry as a statement shows it."""

    id: int
    kind: EntryKind
    balance_delta_kop: int
    hold_delta_kop: int
    job_id: int | None
    payment_id: int | None
    created_at: datetime


class LedgerStore:
    """The ledger's queries (sql/ledger.sql) on one connection, one method per query."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def insert_entries(self, moves: Sequence[Move]) -> list[bool]:
        """Insert the entries in order (the trigger moves each wallet), several in one round
        trip; return, for each, False if its key was used."""
        params = [{"user_id": m.entry.user_id, "kind": str(m.entry.kind),
                   "balance_delta_kop": m.entry.balance_delta_kop,
                   "hold_delta_kop": m.entry.hold_delta_kop,
                   "idempotency_key": m.idempotency_key, "job_id": m.entry.job_id,
                   "payment_id": m.entry.payment_id, "note": m.note} for m in moves]
        return [row is not None
                for row in await first_rows(self._conn, QUERIES["insert_entry"], params)]

    async def entry_by_key(self, idempotency_key: str) -> Entry | None:
        """Return the movement stored under this key, or None."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["entry_by_key"], {"idempotency_key": idempotency_key})
        row = await cur.fetchone()
        return Entry(**(row | {"kind": EntryKind(row["kind"])})) if row else None

    async def wallet(self, user_id: int) -> Wallet | None:
        """Return the user's wallet, or None when they have none."""
        return await self._wallet("wallet", user_id)

    async def lock_wallet(self, user_id: int) -> Wallet | None:
        """Return the user's wallet locked until the transaction ends, or None."""
        return await (await self.send_lock_wallet(user_id)).result()

    async def send_lock_wallet(self, user_id: int) -> Sent[Wallet | None]:
        """Send lock_wallet, its result read later (pipelined: `sqlstore.send_one`)."""
        return await send_one(self._conn, QUERIES["lock_wallet"], {"user_id": user_id},
                              _wallet_of)

    async def count_entries(self, idempotency_key: str) -> int:
        """Return how many entries carry this key (0 or 1)."""
        cur = await self._conn.execute(QUERIES["count_entries"],
                                       {"idempotency_key": idempotency_key})
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def recent_entries(self, user_id: int, *, limit: int) -> list[LedgerLine]:
        """Return the user's latest entries, newest first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["recent_entries"], {"user_id": user_id, "limit": limit})
        return [LedgerLine(**(row | {"kind": EntryKind(row["kind"])}))
                for row in await cur.fetchall()]

    async def _wallet(self, query: str, user_id: int) -> Wallet | None:
        sent = await send_one(self._conn, QUERIES[query], {"user_id": user_id}, _wallet_of)
        return await sent.result()


def _wallet_of(row: dict[str, Any] | None) -> Wallet | None:
    return Wallet(**row) if row else None


async def apply_entry(conn: psycopg.AsyncConnection, *, user_id: int, kind: EntryKind,
                      balance_delta_kop: int, hold_delta_kop: int, idempotency_key: str,
                      job_id: int | None = None, payment_id: int | None = None,
                      note: str | None = None) -> bool:
    """Apply one ledger entry once; return True if applied now, False if the key was
    applied earlier (the same movement: nothing changes).

    Raise InsufficientFunds if a total would go negative, LedgerConflict if the key (or the
    payment's top-up, or the job's hold or settlement) already stands for another movement.
    """
    entry = Entry(user_id=user_id, kind=kind, balance_delta_kop=balance_delta_kop,
                  hold_delta_kop=hold_delta_kop, job_id=job_id, payment_id=payment_id)
    [applied] = await apply_entries(conn, [Move(entry, idempotency_key, note)])
    return applied


async def apply_entries(conn: psycopg.AsyncConnection, moves: Sequence[Move]) -> list[bool]:
    """Apply several ledger entries, each once, in order and in one round trip (a batch of
    settlements); return, for each, whether it was applied now. Raises as apply_entry: a
    refused entry fails the whole call (and the caller's transaction)."""
    if not moves:
        return []
    store = LedgerStore(conn)
    try:
        applied = await store.insert_entries(moves)
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name in WALLET_FLOOR_CONSTRAINTS:
            raise InsufficientFunds(f"a wallet cannot cover {_named(moves)}") from exc
        raise BillingError(f"ledger entry refused: {exc.diag.message_primary}") from exc
    except psycopg.errors.UniqueViolation as exc:
        raise LedgerConflict(f"{_named(moves)} refused: {exc.diag.constraint_name} already "
                             f"has an entry") from exc
    for move, done in zip(moves, applied, strict=True):
        if not done:
            stored = await store.entry_by_key(move.idempotency_key)
            if stored != move.entry:
                raise LedgerConflict(f"idempotency key {move.idempotency_key!r} was used for "
                                     f"another movement: {stored} (asked: {move.entry})")
    return applied


def _named(moves: Sequence[Move]) -> str:
    """Name the movements of an error (kind, user, job or payment of each)."""
    return ", ".join(f"{m.entry.kind} of user {m.entry.user_id} (job {m.entry.job_id}, "
                     f"payment {m.entry.payment_id})" for m in moves)


async def read_wallet(conn: psycopg.AsyncConnection, user_id: int) -> Wallet | None:
    """Return the user's wallet, or None when they have none."""
    return await LedgerStore(conn).wallet(user_id)


async def count_entries(conn: psycopg.AsyncConnection, idempotency_key: str) -> int:
    """Return how many ledger entries carry this key (0 or 1, by the UNIQUE constraint)."""
    return await LedgerStore(conn).count_entries(idempotency_key)
