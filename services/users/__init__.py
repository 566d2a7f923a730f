"""Telegram users as the product knows them."""

from __future__ import annotations

from pathlib import Path

import psycopg

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "users.sql")


class UserStore:
    """The users' queries (sql/users.sql) on one connection, one method per query."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def ensure_user(self, *, user_id: int, username: str | None, first_name: str | None,
                          language_code: str | None) -> bool:
        """Register the user with an empty wallet, or refresh their profile; True if new."""
        cur = await self._conn.execute(QUERIES["ensure_user"], {
            "user_id": user_id, "username": username, "first_name": first_name,
            "language_code": language_code})
        row = await cur.fetchone()
        return bool(row and row[0])


async def ensure_user(conn: psycopg.AsyncConnection, *, user_id: int, username: str | None,
                      first_name: str | None, language_code: str | None) -> bool:
    """Register the user with an empty wallet, or refresh their profile; return True if new."""
    return await UserStore(conn).ensure_user(user_id=user_id, username=username,
                                             first_name=first_name, language_code=language_code)
