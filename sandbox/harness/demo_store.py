"""The demo's database side: its read-only views (sql/demo.sql).

Nobody is given money: the shoppers top up by bank transfer and the simulated operator
approves (demo_operator), so every kopeck the demo spends came in through the payments flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore

QUERIES: Final = QueryStore(Path(__file__).with_name("sql") / "demo.sql")

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class GenerationTotals:
    """Generation jobs by outcome (see the `generation_totals` query)."""

    requested: int = 0
    delivered: int = 0
    failed: int = 0
    undeliverable: int = 0
    unfinished: int = 0
    charged_kop: int = 0  # committed holds: what the shoppers paid for results


@dataclass(frozen=True)
class TopUpTotals:
    """Top-ups by bank transfer by outcome (see the `topup_totals` query)."""

    requested: int = 0
    approved: int = 0
    amended: int = 0  # approved with another amount than asked
    rejected: int = 0
    pending: int = 0
    credited_kop: int = 0


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

    async def topup_totals(self) -> TopUpTotals:
        """Return the top-ups by bank transfer by outcome."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["topup_totals"])
        row = await cur.fetchone()
        return TopUpTotals(**{k: int(v) for k, v in row.items()}) if row else TopUpTotals()

    async def double_topups(self) -> int:
        """Return the top-up entries beyond one per payment."""
        cur = await self._conn.execute(QUERIES["double_topups"])
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def double_charges(self) -> int:
        """Return the holds and commits beyond one per job."""
        cur = await self._conn.execute(QUERIES["double_charges"])
        row = await cur.fetchone()
        return int(row[0]) if row else 0
