"""aiogram FSM storage on PostgreSQL, so a conversation survives a leader failover.

`PostgresStorage` keeps one `fsm_states` row per StorageKey, with the same semantics as
aiogram's `MemoryStorage` (the contract tests run both). Key mapping: every StorageKey field is
part of the primary key; `thread_id=None` is stored as 0 and `business_connection_id=None` as
'' (Telegram never uses 0 or '' for a real thread or business connection).

Writes
    Each write is one statement on a pool connection in autocommit, so one transaction and
    one round trip. The leader's storage is given `fence` (`CurrentTerm.fence_params`): every
    write statement then calls `fence(name, term)` itself (sql/fsm.sql), so a write from a
    superseded term raises FencedError and changes nothing, exactly as inside a
    `leadership.fenced` unit of work, without its BEGIN, fence and COMMIT round trips. Reads
    take no fence. `update_state_and_data` sets the state and merges data in one upsert (a
    form step: one write instead of two). `FsmStore` is the only user of `sql/fsm.sql`.
    `update_data` merges in SQL (`data || patch`) in a single upsert: concurrent patches are
    serialised by the row lock, none is lost (no read-modify-write).

Leader caches
    The leader's storage keeps write-through caches of states and data, scoped to its term
    (only the leader writes, every write fenced; a new term starts empty). They are filled
    only after a write committed, dropped for a key whose write failed (it may have committed
    anyway), and a `set_state` to the state already stored writes nothing.

Empty rows are deleted
    A row left with no state and empty data (`state.clear()`, `set_state(None)` on a key with no
    data, ...) is deleted right after (a second fenced statement), keeping the table to live
    conversations. The delete repeats the emptiness condition, so a write that slipped in
    between keeps its row; a crash between the two leaves an empty row, which reads as no
    state and empty data, exactly like a missing one.

Data must be JSON
    Data is stored as JSONB: values must be JSON-serializable (dict, list, str, int, float,
    bool, None; no NaN/Infinity, no NUL character in strings) and come back as JSON types
    (tuples as lists, non-str keys as str). A value that cannot be stored raises TypeError
    naming its top-level key, before any SQL runs. Nested dicts are replaced, not merged, by
    `update_data` (like `dict.update`).

The pool is owned elsewhere: `close()` does not close it.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from supervisor.db import autocommit
from supervisor.election import NO_FENCE, fencing_errors
from supervisor.sqlstore import QueryStore

_QUERIES = QueryStore(Path(__file__).with_name("sql") / "fsm.sql")
# Stored in place of a None thread_id / business_connection_id (the columns are NOT NULL).
NO_THREAD_ID = 0
NO_BUSINESS_CONNECTION_ID = ""
# PostgreSQL rejects the NUL character in JSONB strings; in JSON text it is the escape \u0000
# preceded by an even number of backslashes (an odd number would make it a literal backslash).
_JSON_NUL_RE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

# The parameters that make a write statement fence itself (`Leadership.fence_params`).
Fence = Callable[[], Mapping[str, object]]


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
    return _encode(data)[1]


def _encode(data: Mapping[str, Any]) -> tuple[str, Jsonb]:
    """Return FSM data's JSON text and its JSONB parameter (see encode_data)."""
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
    return text, Jsonb(data, dumps=lambda _obj: text)


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

    async def update_state_data(self, conn: psycopg.AsyncConnection, where: Mapping[str, Any],
                                state: str | None, data: Jsonb) -> tuple[Any, ...] | None:
        """Upsert a key's state and merge a patch into its data; return (data, empty)."""
        return await self._one(conn, "update_state_data", {**where, "state": state,
                                                            "data": data})

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

    def __init__(self, pool: AsyncConnectionPool, *, fence: Fence | None = None,
                 state_cache_size: int = 0, data_cache_size: int = 0,
                 cache_scope: Callable[[], object] | None = None) -> None:
        self._pool = pool
        self._fence = fence
        self._store = FsmStore()
        # Optional write-through caches of states and data (aiogram reads the state of every
        # update; a form step reads its data). Only sound while this storage is the only
        # writer: the leader's dispatcher, with cache_scope returning the current term, so a
        # new term starts with empty caches. Data is kept as its JSON text (each read gets a
        # fresh copy); an entry is dropped when its write fails (it may have committed).
        self._cache_size = state_cache_size
        self._data_cache_size = data_cache_size
        self._cache_scope = cache_scope or (lambda: None)
        self._cached_for: object = None
        self._states: OrderedDict[tuple[Any, ...], str | None] = OrderedDict()
        self._data: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the state of key; None clears it (the data is kept)."""
        value = state.state if isinstance(state, State) else state
        cache_key = self._cache_key(key)
        if cache_key in self._states and self._states[cache_key] == value:
            return  # already stored (the cache is the truth within the term): nothing to write
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
            self._data.clear()
            self._cached_for = scope
        return tuple(key_params(key).values())

    def _remember(self, key: StorageKey, state: str | None) -> None:
        if not self._cache_size:
            return
        self._states[self._cache_key(key)] = state
        if len(self._states) > self._cache_size:
            self._states.popitem(last=False)

    def _remember_data(self, key: StorageKey, text: str) -> None:
        if not self._data_cache_size:
            return
        self._data[self._cache_key(key)] = text
        if len(self._data) > self._data_cache_size:
            self._data.popitem(last=False)

    def _forget(self, key: StorageKey) -> None:
        cache_key = self._cache_key(key)
        self._states.pop(cache_key, None)
        self._data.pop(cache_key, None)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the data of key (the state is kept); an empty dict empties it."""
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        text, encoded = _encode(data)
        await self._write(key, lambda conn, where: self._store.set_data(conn, where, encoded))
        self._remember_data(key, text)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """Return a fresh copy of the data of key (empty if none)."""
        cache_key = self._cache_key(key)
        text = self._data.get(cache_key)
        if text is not None:
            self._data.move_to_end(cache_key)
            loaded: dict[str, Any] = json.loads(text)
            return loaded
        row = await self._read(key, self._store.get_data)
        data = dict(row[0]) if row else {}
        self._remember_data(key, _dumps(data))
        return data

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge data into the data of key atomically (like dict.update); return the result."""
        _, encoded = _encode(dict(data))
        row = await self._write(
            key, lambda conn, where: self._store.update_data(conn, where, encoded))
        merged = dict(row[0])
        self._remember_data(key, _dumps(merged))
        return merged

    async def update_state_and_data(self, key: StorageKey, state: StateType,
                                    data: Mapping[str, Any]) -> dict[str, Any]:
        """Set the state and merge data into the data of key in one write; return the data.

        The same as set_state then update_data, at the cost of one of them.
        """
        value = state.state if isinstance(state, State) else state
        _, encoded = _encode(dict(data))
        row = await self._write(key, lambda conn, where: self._store.update_state_data(
            conn, where, value, encoded))
        merged = dict(row[0])
        self._remember(key, value)
        self._remember_data(key, _dumps(merged))
        return merged

    async def close(self) -> None:
        """Release nothing: the pool belongs to the caller."""

    async def _read(self, key: StorageKey, query: Callable[..., Any]) -> tuple[Any, ...] | None:
        """Run a one-row read for key, without a fence."""
        async with autocommit(self._pool) as conn:
            row: tuple[Any, ...] | None = await query(conn, key_params(key))
            return row

    async def _write(self, key: StorageKey, upsert: Callable[..., Any]) -> tuple[Any, ...]:
        """Run an upsert for key as one self-fencing statement; prune the row if it ended up
        empty. On any error the key's cache entries are dropped: the write may have
        committed."""
        try:
            where = {**key_params(key), **(self._fence() if self._fence else NO_FENCE)}
            async with autocommit(self._pool) as conn:
                with fencing_errors():
                    row = await upsert(conn, where)
                    if row is None:  # an upsert always returns its row
                        raise RuntimeError("fsm_states upsert returned no row")
                    if row[-1]:  # `empty`: no state and no data left
                        await self._store.prune(conn, where)
                return tuple(row)
        except BaseException:
            self._forget(key)
            raise


async def set_state_and_update_data(context: FSMContext, state: StateType,
                                    data: Mapping[str, Any]) -> None:
    """Set the state and merge data: one write on PostgresStorage, two on other storages."""
    storage = context.storage
    if isinstance(storage, PostgresStorage):
        await storage.update_state_and_data(context.key, state, data)
    else:
        await context.set_state(state)
        await context.update_data(dict(data))
