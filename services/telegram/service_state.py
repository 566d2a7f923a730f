"""Small facts a bot's leader keeps across terms (`service_state`, e.g. the webhook it set).

`ServiceStateStore` is the only user of `sql/webhook.sql`; every row is scoped by bot id, so
two bots on one database keep their own facts.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from supervisor.sqlstore import QueryStore

_QUERIES = QueryStore(Path(__file__).with_name("sql") / "webhook.sql")


class ServiceStateStore:
    """Read and write one bot's service_state values."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id

    async def get_state(self, conn: psycopg.AsyncConnection, key: str) -> str | None:
        """Return the value of key, or None."""
        cur = await conn.execute(_QUERIES["get_state"], {"bot_id": self.bot_id, "key": key})
        row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def put_state(self, conn: psycopg.AsyncConnection, key: str, value: str) -> None:
        """Set key to value (in the caller's fenced transaction)."""
        await conn.execute(_QUERIES["put_state"], {"bot_id": self.bot_id, "key": key,
                                                   "value": value})
