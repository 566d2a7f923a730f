"""The demo's database side: its read-only views (sql/demo.sql) and the users' starting
balance.

The starting balance is a ledger top-up per user under the key `demo-seed:<user id>`
(`services.billing.ledger.apply_entry`): never a direct wallet write (the database refuses
those), and a second seeding of the same user changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from services.billing.ledger import EntryKind, apply_entry
from services.users import ensure_user
from supervisor.sqlstore import QueryStore

QUERIES: Final = QueryStore(Path(__file__).with_name("sql") / "demo.sql")
SEED_KEY_PREFIX: Final = "demo-seed:"

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class GenerationTotals:
    """Generation jobs by outcome (see the `generation_totals` query)."""

    requested: int = 0
    delivered: int = 0
    failed: int = 0
    undeliverable: int = 0
    unfinished: int = 0


@dataclass(frozen=True)
class SeededUser:
    """A simulated user to register with a starting balance."""

    user_id: int
    first_name: str
    language: str


class DemoStore:
    """The demo's queries on one autocommit connection, one method per query."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def counts_by_status(self) -> dict[str, int]:
        """Return stored Telegram updates per status."""
        cur = await self._conn.execute(QUERIES["counts_by_status"])
        return {str(row[0]): int(row[1]) for row in await cur.fetchall()}

    async def unhandled(self, update_ids: list[int]) -> list[tuple[int, str]]:
        """Return (update_id, status) of the given updates not yet done or dead-lettered."""
        cur = await self._conn.execute(QUERIES["unhandled"], {"update_ids": update_ids})
        return [(int(row[0]), str(row[1])) for row in await cur.fetchall()]

    async def generation_totals(self) -> GenerationTotals:
        """Return the generation jobs by outcome."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["generation_totals"])
        row = await cur.fetchone()
        return GenerationTotals(**{k: int(v) for k, v in row.items()}) if row else (
            GenerationTotals())

    async def double_charges(self) -> int:
        """Return the holds and commits beyond one per job."""
        cur = await self._conn.execute(QUERIES["double_charges"])
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def seed_balances(conn: Connection, users: Iterable[SeededUser], balance_kop: int) -> int:
    """Register each user and top their wallet up once; return how many top-ups were new.

    Crash between users: the ones done stay done (one transaction each); a rerun replays
    their keys and tops up only the rest.
    """
    applied = 0
    for user in users:
        async with conn.transaction():
            await ensure_user(conn, user_id=user.user_id, username=None,
                              first_name=user.first_name, language_code=user.language)
            result = await apply_entry(conn, user_id=user.user_id, kind=EntryKind.TOPUP,
                                       balance_delta_kop=balance_kop, hold_delta_kop=0,
                                       idempotency_key=f"{SEED_KEY_PREFIX}{user.user_id}",
                                       note="demo starting balance")
        applied += result.applied
    return applied
