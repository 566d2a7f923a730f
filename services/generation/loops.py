"""What the generation loops ask the database besides the job store (SQL in sql/loops.sql)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "loops.sql")


class LoopStore:
    """What delivery reads beside the job row: the user's language, a job's Kie answers."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def user_language(self, user_id: int) -> str | None:
        """Return the language the user chose, else their Telegram code; None when unknown."""
        cur = await self._conn.execute(QUERIES["user_language"], {"user_id": user_id})
        row = await cur.fetchone()
        return row[0] if row else None

    async def job_answers(self, job_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Return a job's stored Kie answers as (source, payload), newest first."""
        cur = await self._conn.execute(QUERIES["job_answers"], {"job_id": job_id})
        return [(row[0], row[1]) for row in await cur.fetchall()]
