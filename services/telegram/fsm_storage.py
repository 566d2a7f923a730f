"""aiogram FSM storage on PostgreSQL, so a conversation survives a leader failover.

`PostgresStorage` keeps one `fsm_states` row per StorageKey, with the same semantics as
aiogram's `MemoryStorage` (the contract tests run both). Key mapping: every StorageKey field is
part of the primary key; `thread_id=None` is stored as 0 and `business_connection_id=None` as
'' (Telegram never uses 0 or '' for a real thread or business connection).

Writes
    Each write is one transaction on a pool connection. When a `fenced` unit of work is given
    (the leader's `leadership.fenced`, through `CurrentTerm.fenced`), the write runs inside
    it, so a write from a superseded term raises and changes nothing. Reads take no fence.
    `FsmStore` is the only user of `sql/fsm.sql`.
    `update_data` merges in SQL (`data || patch`) in a single upsert: concurrent patches are
    serialised by the row lock, none is lost (no read-modify-write).

Empty rows are deleted
    A row left with no state and empty data (`state.clear()`, `set_state(None)` on a key with no
    data, ...) is deleted in the same transaction, keeping the table to live conversations. The
    upsert that emptied it still holds its row lock, so no concurrent write can be deleted; a
    missing row reads as no state and empty data, exactly like a stored empty one.

Data must be JSON
    Data is stored as JSONB: values must be JSON-serializable (dict, list, str, int, float,
    bool, None; no NaN/Infinity, no NUL character in strings) and come back as JSON types
    (tuples as lists, non-str keys as str). A value that cannot be stored raises TypeError
    naming its top-level key, before any SQL runs. Nested dicts are replaced, not merged, by
    `update_data` (like `dict.update`).

The pool is owned elsewhere: `close()` does not close it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psycopg
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from supervisor.sqlstore import QueryStore

_QUERIES = QueryStore(Path(__file__).with_name("sql") / "fsm.sql")
# Stored in place of a None thread_id / business_connection_id (the columns are NOT NULL).
NO_THREAD_ID = 0
NO_BUSINESS_CONNECTION_ID = ""
# PostgreSQL rejects the NUL character in JSONB strings; in JSON text it is the escape \u0000
# preceded by an even number of backslashes (an odd number would make it a literal backslash).
_JSON_NUL_RE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

# A unit of work: a pooled connection inside a transaction (e.g. `Leadership.fenced`).
Fenced = Callable[[AsyncConnectionPool], AbstractAsyncContextManager[psycopg.AsyncConnection]]


def key_params(key: StorageKey) -> dict[str, Any]:
    """Return the SQL parameters that address the row of a storage key."""
    return {
        "bot_id": key.bot_id,
        "chat_id": key.chat_id,
        "user_id": key.user_id,
        "thread_id": NO_THREAD_ID if key.thread_id is None else key.thread_id,
        "business_connection_id": (NO_BUSINESS_CONNECTION_ID if key.business_connection_id is None
                                   else key.business_connection_id),
        "destiny": key.destiny,
    }


def _dumps(value: Any) -> str:
    """Encode a value as JSON text that PostgreSQL accepts as JSONB; raise ValueError if none."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if "\\u0000" in text and _JSON_NUL_RE.search(text):
        raise ValueError("strings in JSONB cannot contain the NUL character")
    return text


def encode_data(data: Mapping[str, Any]) -> Jsonb:
    """Encode FSM data as a JSONB parameter; raise TypeError naming a key that is not JSON."""
    try:
        text = _dumps(data)
    except (TypeError, ValueError) as exc:
        for name, value in data.items():
            try:
                _dumps({name: value})
            except (TypeError, ValueError) as item_exc:
                raise TypeError(
                    f"FSM data key {name!r}: value of type {type(value).__name__} cannot be "
                    f"stored as JSON ({item_exc})") from item_exc
        raise TypeError(f"FSM data cannot be stored as JSON ({exc})") from exc
    return Jsonb(data, dumps=lambda _obj: text)


@contextlib.asynccontextmanager
async def unfenced(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """Yield a pooled connection in a plain transaction (tools and tests, never the leader)."""
    async with pool.connection() as conn, conn.transaction():
        yield conn


class FsmStore:
    """The queries of fsm_states (the only reader of sql/fsm.sql)."""

    async def get_state(self, conn: psycopg.AsyncConnection,
                        where: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Return (state,) of a key's row, or None."""
        return await self._one(conn, "get_state", where)

    async def get_data(self, conn: psycopg.AsyncConnection,
                       where: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Return (data,) of a key's row, or None."""
        return await self._one(conn, "get_data", where)

    async def set_state(self, conn: psycopg.AsyncConnection, where: Mapping[str, Any],
                        state: str | None) -> tuple[Any, ...] | None:
        """Upsert a key's state; return (empty,)."""
        return await self._one(conn, "set_state", {**where, "state": state})

    async def set_data(self, conn: psycopg.AsyncConnection, where: Mapping[str, Any],
                       data: Jsonb) -> tuple[Any, ...] | None:
        """Upsert a key's data; return (empty,)."""
        return await self._one(conn, "set_data", {**where, "data": data})

    async def update_data(self, conn: psycopg.AsyncConnection, where: Mapping[str, Any],
                          data: Jsonb) -> tuple[Any, ...] | None:
        """Merge a patch into a key's data; return (data, empty)."""
        return await self._one(conn, "update_data", {**where, "data": data})

    async def prune(self, conn: psycopg.AsyncConnection, where: Mapping[str, Any]) -> None:
        """Delete a key's row if it holds nothing."""
        await conn.execute(_QUERIES["prune"], where)

    @staticmethod
    async def _one(conn: psycopg.AsyncConnection, query: str,
                   params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cur = await conn.execute(_QUERIES[query], params)
        return await cur.fetchone()


class PostgresStorage(BaseStorage):
    """Keep aiogram FSM state and data in the fsm_states table."""

    def __init__(self, pool: AsyncConnectionPool, *, fenced: Fenced = unfenced,
                 state_cache_size: int = 0, cache_scope: Callable[[], object] | None = None,
                 ) -> None:
        self._pool = pool
        self._fenced = fenced
        self._store = FsmStore()
        # Optional write-through cache of states (aiogram reads the state of every update).
        # Only sound while this storage is the only writer: the leader's dispatcher, with
        # cache_scope returning the current term, so a new term starts with an empty cache.
        self._cache_size = state_cache_size
        self._cache_scope = cache_scope or (lambda: None)
        self._cached_for: object = None
        self._states: OrderedDict[tuple[Any, ...], str | None] = OrderedDict()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the state of key; None clears it (the data is kept)."""
        value = state.state if isinstance(state, State) else state
        await self._write(key, lambda conn, where: self._store.set_state(conn, where, value))
        self._remember(key, value)

    async def get_state(self, key: StorageKey) -> str | None:
        """Return the state of key, or None."""
        cache_key = self._cache_key(key)
        if cache_key in self._states:
            self._states.move_to_end(cache_key)
            return self._states[cache_key]
        row = await self._read(key, self._store.get_state)
        state: str | None = row[0] if row else None
        self._remember(key, state)
        return state

    def _cache_key(self, key: StorageKey) -> tuple[Any, ...]:
        scope = self._cache_scope()
        if scope is not self._cached_for:
            self._states.clear()
            self._cached_for = scope
        return tuple(key_params(key).values())

    def _remember(self, key: StorageKey, state: str | None) -> None:
        if not self._cache_size:
            return
        self._states[self._cache_key(key)] = state
        if len(self._states) > self._cache_size:
            self._states.popitem(last=False)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the data of key (the state is kept); an empty dict empties it."""
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        encoded = encode_data(data)
        await self._write(key, lambda conn, where: self._store.set_data(conn, where, encoded))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """Return a fresh copy of the data of key (empty if none)."""
        row = await self._read(key, self._store.get_data)
        return dict(row[0]) if row else {}

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge data into the data of key atomically (like dict.update); return the result."""
        encoded = encode_data(dict(data))
        row = await self._write(
            key, lambda conn, where: self._store.update_data(conn, where, encoded))
        return dict(row[0])

    async def close(self) -> None:
        """Release nothing: the pool belongs to the caller."""

    async def _read(self, key: StorageKey, query: Callable[..., Any]) -> tuple[Any, ...] | None:
        """Run a one-row read for key, without a fence."""
        async with self._pool.connection() as conn:
            row: tuple[Any, ...] | None = await query(conn, key_params(key))
            return row

    async def _write(self, key: StorageKey, upsert: Callable[..., Any]) -> tuple[Any, ...]:
        """Run an upsert for key in the (fenced) unit of work; prune the row if it ended up
        empty."""
        where = key_params(key)
        async with self._fenced(self._pool) as conn:
            row = await upsert(conn, where)
            if row is None:  # an upsert always returns its row
                raise RuntimeError("fsm_states upsert returned no row")
            if row[-1]:  # `empty`: no state and no data left
                await self._store.prune(conn, where)
            return tuple(row)
