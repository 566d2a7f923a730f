"""Load named SQL blocks from a `.sql` file.

A file holds blocks headed by `-- name: <query_name>` followed by a description comment:

    -- name: renew_lease
    -- Extend the lease of the current term; zero rows means leadership is lost.
    UPDATE ...;

`QueryStore(path)` parses the file once; `store["renew_lease"]` returns the SQL text.
"""

from __future__ import annotations

import re
from pathlib import Path

from psycopg import sql

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
