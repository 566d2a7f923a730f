"""Load named SQL blocks from a `.sql` file.

A file holds blocks headed by `-- name: <query_name>` followed by a description comment:

    -- name: renew_lease
    -- Extend the lease of the current term; zero rows means leadership is lost.
    UPDATE ...;

`QueryStore(path)` parses the file once; `store["renew_lease"]` returns the SQL text.

`send_one` runs a query without waiting for its row: in pipeline mode (`conn.pipeline()`)
a store's `send_*` methods queue their statements, and the first `Sent.result()` brings
every result back in one round trip, each statement still executed (and, in READ
COMMITTED, given its snapshot) after the one before it. `first_rows` runs one query for
several parameter sets in one round trip (a batch of settlements).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

T = TypeVar("T")
Row = dict[str, Any]

_HEADER_RE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class QueryStoreError(Exception):
    """A .sql file is malformed (duplicate or empty block)."""


class QueryStore:
    """Named SQL queries of one area, loaded once from one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queries = self._parse(path.read_text(encoding="utf-8"))

    def _parse(self, text: str) -> dict[str, sql.SQL]:
        queries: dict[str, sql.SQL] = {}
        headers = list(_HEADER_RE.finditer(text))
        for index, header in enumerate(headers):
            end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
            name = header.group(1)
            body = text[header.end():end].strip()
            if not body or all(line.startswith("--") for line in body.splitlines()):
                raise QueryStoreError(f"{self.path.name}: query {name!r} is empty")
            if name in queries:
                raise QueryStoreError(f"{self.path.name}: query {name!r} is defined twice")
            queries[name] = sql.SQL(body)
        return queries

    def __getitem__(self, name: str) -> sql.SQL:
        return self._queries[name]


class Sent(Generic[T]):
    """A statement sent on a connection whose first row is read later (`send_one`)."""

    def __init__(self, cursor: psycopg.AsyncCursor[Row], read: Callable[[Row | None], T]) -> None:
        self._cursor = cursor
        self._read = read

    async def result(self) -> T:
        """Wait for the statement's first row (None: no row) and return it read."""
        return self._read(await self._cursor.fetchone())


async def first_rows(conn: psycopg.AsyncConnection, query: sql.SQL,
                     params_seq: Sequence[Mapping[str, object]]) -> list[Row | None]:
    """Run query once per parameter set, in order; return each run's first row (None: no
    row). Several travel in one round trip (psycopg's executemany, pipelined); a single one
    runs alone, since executemany's pipeline would add a sync to it."""
    if len(params_seq) == 1:
        return [await (await send_one(conn, query, params_seq[0], lambda row: row)).result()]
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.executemany(query, params_seq, returning=True)
    rows = []
    for _ in params_seq:
        rows.append(await cursor.fetchone())
        cursor.nextset()
    return rows


async def send_one(conn: psycopg.AsyncConnection, query: sql.SQL,
                   params: Mapping[str, object], read: Callable[[Row | None], T]) -> Sent[T]:
    """Send query; its first row, as a dict, is read by `read` when `result()` is awaited.
    Outside pipeline mode the statement has run by the time this returns."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(query, params)
    return Sent(cursor, read)
