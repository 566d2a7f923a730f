"""Telegram users as the product knows them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "users.sql")


class Language(StrEnum):
    """UI languages a user can choose, mirrored by the CHECK on users.ui_language."""

    RU = "ru"  # Russian
    EN = "en"  # English


@dataclass(frozen=True, slots=True)
class Entered:
    """A user as one update sees them: new or returning, their choice of language, money."""

    created: bool
    ui_language: Language | None
    balance_kop: int
    hold_kop: int


@dataclass(frozen=True, slots=True)
class Profile:
    """What Telegram told us about a user (refreshed when it changes)."""

    username: str | None
    first_name: str | None
    language_code: str | None


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

    async def member(self, user_id: int) -> tuple[Profile, Entered] | None:
        """Return a registered user's stored profile and state, or None."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["member"], {"user_id": user_id})
        row = await cur.fetchone()
        if row is None:
            return None
        return (Profile(row["username"], row["first_name"], row["language_code"]),
                _entered(row, created=False))

    async def enter_user(self, *, user_id: int, username: str | None, first_name: str | None,
                         language_code: str | None) -> Entered:
        """Register the user or refresh a changed profile; return them with their wallet."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["enter_user"], {
            "user_id": user_id, "username": username, "first_name": first_name,
            "language_code": language_code})
        row = await cur.fetchone()
        assert row is not None  # the upsert or the read returns the user's row
        return _entered(row, created=row["created"])

    async def set_ui_language(self, user_id: int, language: Language | None) -> None:
        """Store the user's chosen UI language."""
        await self._conn.execute(QUERIES["set_ui_language"], {
            "user_id": user_id, "ui_language": str(language) if language else None})

    async def languages(self, user_ids: Sequence[int]
                        ) -> dict[int, tuple[Language | None, str | None]]:
        """Return (chosen UI language, Telegram language_code) of the known users."""
        cur = await self._conn.execute(QUERIES["languages"], {"user_ids": list(user_ids)})
        return {row[0]: (Language(row[1]) if row[1] else None, row[2])
                for row in await cur.fetchall()}

    async def remember_start_payload(self, user_id: int, payload: str) -> bool:
        """Keep the user's first deep-link payload; return whether this one was kept."""
        cur = await self._conn.execute(QUERIES["remember_start_payload"],
                                       {"user_id": user_id, "payload": payload})
        return cur.rowcount == 1


def _entered(row: dict[str, Any], *, created: bool) -> Entered:
    chosen = row["ui_language"]
    return Entered(created=created, ui_language=Language(chosen) if chosen else None,
                   balance_kop=row["balance_kop"], hold_kop=row["hold_kop"])


async def ensure_user(conn: psycopg.AsyncConnection, *, user_id: int, username: str | None,
                      first_name: str | None, language_code: str | None) -> bool:
    """Register the user with an empty wallet, or refresh their profile; return True if new."""
    return await UserStore(conn).ensure_user(user_id=user_id, username=username,
                                             first_name=first_name, language_code=language_code)
