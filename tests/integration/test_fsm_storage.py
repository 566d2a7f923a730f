"""FSM storage contract: PostgresStorage behaves exactly like aiogram's MemoryStorage.

The contract tests run against both storages; the tests after them are PostgreSQL-only
(persistence across a failover, concurrency, fencing, JSON rules, pruning of empty rows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from psycopg_pool import AsyncConnectionPool

from services.telegram.fsm_storage import PostgresStorage, set_state_and_update_data
from supervisor.election import FencedError
from tests.helpers import eventually, lead, set_term

KEY = StorageKey(bot_id=42, chat_id=-1001, user_id=7)


class Order(StatesGroup):
    """A two-step conversation."""

    choosing_model = State()
    confirming = State()


class FenceRefused(Exception):
    """Raised by the test fence that refuses every write."""


class FenceLog:
    """A fence (as the leader's storage gets one) that records each call and may refuse."""

    def __init__(self, *, refuse: Callable[[int], bool] = lambda n: False) -> None:
        self.calls = 0
        self._refuse = refuse

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        if self._refuse(self.calls):
            raise FenceRefused("term superseded")
        return {"fence_name": None, "fence_term": None}


@pytest.fixture(params=["memory", "postgres", "postgres-cached"])
def storage(request: pytest.FixtureRequest) -> BaseStorage:
    """Each storage under contract: aiogram's MemoryStorage and ours (with and without the
    leader's state cache) on a fresh database."""
    if request.param == "memory":
        return MemoryStorage()
    pool: AsyncConnectionPool = request.getfixturevalue("pool")
    if request.param == "postgres-cached":
        return PostgresStorage(pool, state_cache_size=3, data_cache_size=3)
    return PostgresStorage(pool)


async def count_rows(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM fsm_states")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# ---- contract: state ----


async def test_a_new_key_has_no_state_and_empty_data(storage: BaseStorage) -> None:
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    assert await storage.get_value(KEY, "missing") is None
    assert await storage.get_value(KEY, "missing", "fallback") == "fallback"


async def test_set_state_stores_a_string_state(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Order:choosing_model")
    assert await storage.get_state(KEY) == "Order:choosing_model"


async def test_set_state_accepts_a_state_object_and_stores_its_name(
        storage: BaseStorage) -> None:
    await storage.set_state(KEY, Order.confirming)
    assert await storage.get_state(KEY) == Order.confirming.state == "Order:confirming"


async def test_set_state_overwrites_the_previous_state(storage: BaseStorage) -> None:
    await storage.set_state(KEY, Order.choosing_model)
    await storage.set_state(KEY, Order.confirming)
    assert await storage.get_state(KEY) == "Order:confirming"


async def test_set_state_none_clears_the_state_and_keeps_the_data(storage: BaseStorage) -> None:
    await storage.set_state(KEY, Order.confirming)
    await storage.set_data(KEY, {"model": "flux"})
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {"model": "flux"}


async def test_set_state_without_a_state_clears_it(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Order:confirming")
    await storage.set_state(KEY)
    assert await storage.get_state(KEY) is None


async def test_clearing_the_state_of_a_key_that_has_none_is_harmless(
        storage: BaseStorage) -> None:
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}


# ---- contract: data ----


async def test_set_data_replaces_the_data_entirely(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1, "b": 2})
    await storage.set_data(KEY, {"c": 3})
    assert await storage.get_data(KEY) == {"c": 3}


async def test_set_data_with_an_empty_dict_empties_the_data_and_keeps_the_state(
        storage: BaseStorage) -> None:
    await storage.set_state(KEY, Order.choosing_model)
    await storage.set_data(KEY, {"a": 1})
    await storage.set_data(KEY, {})
    assert await storage.get_data(KEY) == {}
    assert await storage.get_state(KEY) == "Order:choosing_model"


async def test_set_data_rejects_data_that_is_not_a_dict(storage: BaseStorage) -> None:
    with pytest.raises(DataNotDictLikeError):
        await storage.set_data(KEY, [("a", 1)])  # type: ignore[arg-type]
    assert await storage.get_data(KEY) == {}


async def test_set_data_keeps_a_copy_not_the_callers_dict(storage: BaseStorage) -> None:
    data: dict[str, Any] = {"a": 1}
    await storage.set_data(KEY, data)
    data["b"] = 2
    assert await storage.get_data(KEY) == {"a": 1}


async def test_get_data_returns_a_fresh_copy_each_time(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1})
    first = await storage.get_data(KEY)
    first["a"] = 99
    first["b"] = 2
    second = await storage.get_data(KEY)
    assert second == {"a": 1}
    assert second is not first


async def test_get_data_of_an_unknown_key_returns_a_fresh_empty_dict(
        storage: BaseStorage) -> None:
    first = await storage.get_data(KEY)
    first["a"] = 1
    assert await storage.get_data(KEY) == {}


async def test_get_value_reads_one_key_of_the_data(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"model": "flux", "count": 2})
    assert await storage.get_value(KEY, "model") == "flux"
    assert await storage.get_value(KEY, "absent", 0) == 0


async def test_update_data_merges_and_returns_the_merged_dict(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1, "b": 2})
    merged = await storage.update_data(KEY, {"b": 20, "c": 30})
    assert merged == {"a": 1, "b": 20, "c": 30}
    assert await storage.get_data(KEY) == merged


async def test_update_data_on_a_new_key_creates_the_data(storage: BaseStorage) -> None:
    assert await storage.update_data(KEY, {"a": 1}) == {"a": 1}
    assert await storage.get_data(KEY) == {"a": 1}
    assert await storage.get_state(KEY) is None


async def test_update_data_with_an_empty_mapping_changes_nothing(storage: BaseStorage) -> None:
    assert await storage.update_data(KEY, {}) == {}
    await storage.set_data(KEY, {"a": 1})
    assert await storage.update_data(KEY, {}) == {"a": 1}
    assert await storage.get_data(KEY) == {"a": 1}


async def test_update_data_replaces_nested_values_like_dict_update(
        storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"options": {"size": "1k", "steps": 20}})
    merged = await storage.update_data(KEY, {"options": {"size": "2k"}})
    assert merged == {"options": {"size": "2k"}}


async def test_update_data_returns_a_copy_not_the_stored_dict(storage: BaseStorage) -> None:
    merged = await storage.update_data(KEY, {"a": 1})
    merged["a"] = 99
    assert await storage.get_data(KEY) == {"a": 1}


async def test_update_data_keeps_the_state(storage: BaseStorage) -> None:
    await storage.set_state(KEY, Order.confirming)
    await storage.update_data(KEY, {"a": 1})
    assert await storage.get_state(KEY) == "Order:confirming"


async def test_json_values_round_trip_unchanged(storage: BaseStorage) -> None:
    data = {"text": "Привет, 🌍 \"quoted\" \\ back", "int": 2**62, "neg": -5, "float": 0.1,
            "true": True, "false": False, "none": None, "list": [1, "two", [3.5, None]],
            "nested": {"deep": {"er": ["x"]}}, "empty_list": [], "empty_dict": {}}
    await storage.set_data(KEY, data)
    assert await storage.get_data(KEY) == data
    assert type((await storage.get_data(KEY))["true"]) is bool


async def test_fsm_context_drives_the_storage_through_a_conversation(
        storage: BaseStorage) -> None:
    ctx = FSMContext(storage=storage, key=KEY)
    await ctx.set_state(Order.choosing_model)
    assert await ctx.update_data(model="flux") == {"model": "flux"}
    await ctx.set_state(Order.confirming)
    assert await ctx.update_data(price_kop=1500) == {"model": "flux", "price_kop": 1500}
    assert await ctx.get_state() == "Order:confirming"
    assert await ctx.get_value("price_kop") == 1500
    await ctx.clear()
    assert await ctx.get_state() is None
    assert await ctx.get_data() == {}


async def test_close_keeps_what_was_stored(
        storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Order:confirming")
    await storage.close()
    assert await storage.get_state(KEY) == "Order:confirming"


# ---- contract: key isolation ----

OTHER_KEYS = {
    "bot_id": dataclasses.replace(KEY, bot_id=43),
    "chat_id": dataclasses.replace(KEY, chat_id=-1002),
    "user_id": dataclasses.replace(KEY, user_id=8),
    "thread_id": dataclasses.replace(KEY, thread_id=5),
    "business_connection_id": dataclasses.replace(KEY, business_connection_id="bc-1"),
    "destiny": dataclasses.replace(KEY, destiny="payment"),
}


@pytest.mark.parametrize("field", list(OTHER_KEYS))
async def test_keys_that_differ_in_one_field_do_not_share_state_or_data(
        storage: BaseStorage, field: str) -> None:
    other = OTHER_KEYS[field]
    await storage.set_state(KEY, Order.choosing_model)
    await storage.set_data(KEY, {"who": "key"})
    assert await storage.get_state(other) is None
    assert await storage.get_data(other) == {}

    await storage.set_state(other, Order.confirming)
    await storage.update_data(other, {"who": "other"})
    assert await storage.get_state(KEY) == "Order:choosing_model"
    assert await storage.get_data(KEY) == {"who": "key"}
    assert await storage.get_state(other) == "Order:confirming"
    assert await storage.get_data(other) == {"who": "other"}

    await storage.set_state(other, None)
    await storage.set_data(other, {})
    assert await storage.get_state(KEY) == "Order:choosing_model"
    assert await storage.get_data(KEY) == {"who": "key"}


async def test_two_threads_of_one_chat_do_not_share_state(storage: BaseStorage) -> None:
    first = dataclasses.replace(KEY, thread_id=5)
    second = dataclasses.replace(KEY, thread_id=6)
    await storage.set_state(first, "Order:choosing_model")
    await storage.set_state(second, "Order:confirming")
    assert await storage.get_state(first) == "Order:choosing_model"
    assert await storage.get_state(second) == "Order:confirming"
    assert await storage.get_state(KEY) is None


# ---- PostgreSQL only: persistence ----


async def test_state_and_data_survive_a_new_storage_on_a_new_pool(
        pool: AsyncConnectionPool, database_url: str) -> None:
    old_leader = PostgresStorage(pool)
    await old_leader.set_state(KEY, Order.confirming)
    await old_leader.update_data(KEY, {"model": "flux", "price_kop": 1500})
    await old_leader.close()
    await pool.close()

    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as new_pool:
        new_leader = PostgresStorage(new_pool)
        assert await new_leader.get_state(KEY) == "Order:confirming"
        assert await new_leader.get_data(KEY) == {"model": "flux", "price_kop": 1500}


async def test_close_does_not_close_the_pool(pool: AsyncConnectionPool) -> None:
    storage = PostgresStorage(pool)
    await storage.close()
    assert not pool.closed
    await storage.set_state(KEY, "Order:confirming")
    assert await storage.get_state(KEY) == "Order:confirming"


async def test_a_missing_thread_id_and_business_connection_are_stored_as_zero_and_empty(
        pool: AsyncConnectionPool) -> None:
    storage = PostgresStorage(pool)
    await storage.set_state(KEY, "Order:confirming")
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT thread_id, business_connection_id, destiny FROM fsm_states")
        assert await cur.fetchall() == [(0, "", "default")]
    same = dataclasses.replace(KEY, thread_id=0, business_connection_id="")
    assert await storage.get_state(same) == "Order:confirming"


async def test_a_key_with_neither_state_nor_data_leaves_no_row(
        pool: AsyncConnectionPool) -> None:
    storage = PostgresStorage(pool)
    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    await storage.update_data(KEY, {})
    assert await count_rows(pool) == 0

    await storage.set_state(KEY, Order.confirming)
    await storage.set_data(KEY, {"a": 1})
    await storage.set_state(KEY, None)
    assert await count_rows(pool) == 1  # data still there
    await storage.set_data(KEY, {})
    assert await count_rows(pool) == 0

    ctx = FSMContext(storage=storage, key=KEY)
    await ctx.set_state(Order.choosing_model)
    await ctx.update_data(model="flux")
    await ctx.clear()
    assert await count_rows(pool) == 0


# ---- PostgreSQL only: concurrency ----


async def test_concurrent_update_data_calls_lose_no_key(database_url: str) -> None:
    tasks = 20
    async with AsyncConnectionPool(database_url, min_size=tasks, max_size=tasks,
                                   open=False) as wide_pool:
        storage = PostgresStorage(wide_pool)
        await storage.set_data(KEY, {"seed": True})
        start = asyncio.Event()

        async def add(n: int) -> dict[str, Any]:
            await start.wait()
            return await storage.update_data(KEY, {f"k{n}": n})

        running = [asyncio.create_task(add(n)) for n in range(tasks)]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.gather(*running)

        expected = {"seed": True} | {f"k{n}": n for n in range(tasks)}
        assert await storage.get_data(KEY) == expected
        for n, merged in enumerate(results):  # each saw its own key and everything before it
            assert merged[f"k{n}"] == n
            assert merged["seed"] is True
        assert max(len(merged) for merged in results) == tasks + 1


async def test_concurrent_clears_and_updates_never_delete_written_data(
        database_url: str) -> None:
    tasks = 20
    async with AsyncConnectionPool(database_url, min_size=10, max_size=10,
                                   open=False) as wide_pool:
        storage = PostgresStorage(wide_pool)

        async def add(n: int) -> None:
            await storage.update_data(KEY, {f"k{n}": n})

        async def clear_state() -> None:
            await storage.set_state(KEY, None)

        jobs = [add(n) for n in range(tasks)] + [clear_state() for _ in range(tasks)]
        jobs = [job for pair in zip(jobs[:tasks], jobs[tasks:], strict=True) for job in pair]
        await asyncio.gather(*jobs)
        assert await storage.get_data(KEY) == {f"k{n}": n for n in range(tasks)}
        assert await storage.get_state(KEY) is None


# ---- PostgreSQL only: fencing ----


async def test_with_a_refusing_fence_writes_raise_and_change_nothing(
        pool: AsyncConnectionPool) -> None:
    unfenced = PostgresStorage(pool)
    await unfenced.set_state(KEY, Order.choosing_model)
    await unfenced.set_data(KEY, {"model": "flux"})

    fenced = PostgresStorage(pool, fence=FenceLog(refuse=lambda n: True))
    other = dataclasses.replace(KEY, user_id=8)
    for key in (KEY, other):
        with pytest.raises(FenceRefused):
            await fenced.set_state(key, Order.confirming)
        with pytest.raises(FenceRefused):
            await fenced.set_state(key, None)
        with pytest.raises(FenceRefused):
            await fenced.set_data(key, {"model": "midjourney"})
        with pytest.raises(FenceRefused):
            await fenced.set_data(key, {})
        with pytest.raises(FenceRefused):
            await fenced.update_data(key, {"price_kop": 1})

    assert await fenced.get_state(KEY) == "Order:choosing_model"  # reads need no fence
    assert await fenced.get_data(KEY) == {"model": "flux"}
    assert await fenced.get_state(other) is None
    assert await count_rows(pool) == 1


async def test_the_fence_is_asked_once_per_write_and_never_for_reads(
        pool: AsyncConnectionPool) -> None:
    fence = FenceLog()
    storage = PostgresStorage(pool, fence=fence)
    await storage.set_state(KEY, Order.confirming)
    await storage.set_data(KEY, {"a": 1})
    await storage.update_data(KEY, {"b": 2})
    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    assert fence.calls == 5

    await storage.get_state(KEY)
    await storage.get_data(KEY)
    await storage.get_value(KEY, "a")
    assert fence.calls == 5


async def test_a_write_fences_itself_in_one_statement_that_a_promotion_waits_for(
        pool: AsyncConnectionPool, database_url: str) -> None:
    leadership = await lead(pool, term=1)
    storage = PostgresStorage(pool, fence=leadership.fence_params)
    async with await psycopg.AsyncConnection.connect(database_url) as promoter:
        # A promotion in flight holds the term row: the write waits for it, then is refused.
        await promoter.execute("UPDATE leader_lease SET term = term + 1 WHERE name = %s",
                               (leadership.lease_name,))
        write = asyncio.create_task(storage.set_state(KEY, Order.confirming))
        await wait_until_waiting(pool)
        await promoter.commit()
        with pytest.raises(FencedError):
            await write
    assert await count_rows(pool) == 0


async def wait_until_waiting(pool: AsyncConnectionPool) -> None:
    """Wait until some backend waits on a lock."""
    async def waiting() -> bool:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM pg_stat_activity"
                                     " WHERE wait_event_type = 'Lock'")
            row = await cur.fetchone()
            return bool(row and row[0])

    await eventually(waiting, what="a write waiting on the term row")


async def test_a_superseded_leader_term_cannot_write(pool: AsyncConnectionPool) -> None:
    term1 = await lead(pool, term=1)
    storage = PostgresStorage(pool, fence=term1.fence_params)
    await storage.set_state(KEY, Order.confirming)
    await storage.update_data(KEY, {"model": "flux"})

    await set_term(pool, 2)  # a newer leader took over
    with pytest.raises(FencedError):
        await storage.set_state(KEY, None)
    with pytest.raises(FencedError):
        await storage.update_data(KEY, {"model": "midjourney"})
    with pytest.raises(FencedError):
        await storage.set_data(KEY, {})

    term2 = await lead(pool, term=2)
    new_leader = PostgresStorage(pool, fence=term2.fence_params)
    assert await new_leader.get_state(KEY) == "Order:confirming"
    assert await new_leader.update_data(KEY, {"step": 2}) == {"model": "flux", "step": 2}


# ---- PostgreSQL only: JSON rules ----


class Opaque:
    """Not JSON."""


NOT_JSON = [
    pytest.param({1, 2}, id="set"),
    pytest.param(Opaque(), id="object"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="infinity"),
    pytest.param({"nested": {"deeper": {1}}}, id="nested-set"),
    pytest.param("nul \x00 inside", id="nul-character"),
    pytest.param({(1, 2): "tuple key"}, id="tuple-key"),
]


@pytest.mark.parametrize("value", NOT_JSON)
async def test_a_value_that_is_not_json_raises_a_type_error_naming_its_key(
        pool: AsyncConnectionPool, value: Any) -> None:
    fence = FenceLog()
    storage = PostgresStorage(pool, fence=fence)
    with pytest.raises(TypeError, match="'bad_key'"):
        await storage.set_data(KEY, {"ok": 1, "bad_key": value})
    with pytest.raises(TypeError, match="'bad_key'"):
        await storage.update_data(KEY, {"ok": 1, "bad_key": value})
    assert fence.calls == 0  # refused before any SQL
    assert await count_rows(pool) == 0


async def test_a_string_with_an_escaped_backslash_before_u0000_is_not_taken_for_nul(
        pool: AsyncConnectionPool) -> None:
    storage = PostgresStorage(pool)
    data = {"path": "C:\\u0000", "double": "\\\\u0000"}
    await storage.set_data(KEY, data)
    assert await storage.get_data(KEY) == data


async def test_values_come_back_as_json_types(pool: AsyncConnectionPool) -> None:
    storage = PostgresStorage(pool)
    await storage.set_data(KEY, {"pair": (1, 2), "by_id": {5: "five"}})
    assert await storage.get_data(KEY) == {"pair": [1, 2], "by_id": {"5": "five"}}


@pytest.fixture
async def second_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as p:
        yield p


async def test_two_storages_on_two_pools_see_each_others_writes_at_once(
        pool: AsyncConnectionPool, second_pool: AsyncConnectionPool) -> None:
    first, second = PostgresStorage(pool), PostgresStorage(second_pool)
    await first.set_state(KEY, Order.choosing_model)
    assert await second.get_state(KEY) == "Order:choosing_model"
    await second.update_data(KEY, {"model": "flux"})
    assert await first.get_data(KEY) == {"model": "flux"}


async def test_the_state_cache_serves_reads_within_a_term_and_starts_empty_in_the_next(
        pool: AsyncConnectionPool) -> None:
    term: list[object] = [object()]
    cached = PostgresStorage(pool, state_cache_size=10, cache_scope=lambda: term[0])
    other_writer = PostgresStorage(pool)
    await cached.set_state(KEY, Order.confirming)
    await other_writer.set_state(KEY, "changed behind the cache")
    # Within one term the leader is the only writer, so its cache is the truth.
    assert await cached.get_state(KEY) == Order.confirming.state
    term[0] = object()  # a new term: nothing cached may be trusted
    assert await cached.get_state(KEY) == "changed behind the cache"


async def test_the_state_cache_keeps_only_the_most_recent_keys(pool: AsyncConnectionPool) -> None:
    cached = PostgresStorage(pool, state_cache_size=2)
    other_writer = PostgresStorage(pool)
    keys = [dataclasses.replace(KEY, user_id=n) for n in (1, 2, 3)]
    for key in keys:
        await cached.set_state(key, f"s{key.user_id}")
    await other_writer.set_state(keys[0], "evicted, so read again")
    assert await cached.get_state(keys[0]) == "evicted, so read again"
    assert await cached.get_state(keys[2]) == "s3"


async def test_a_refused_write_leaves_the_cached_state_unchanged(
        pool: AsyncConnectionPool) -> None:
    allowed = PostgresStorage(pool, state_cache_size=10)
    await allowed.set_state(KEY, "kept")
    refusing = PostgresStorage(pool, fence=FenceLog(refuse=lambda n: True), state_cache_size=10)
    assert await refusing.get_state(KEY) == "kept"
    with pytest.raises(FenceRefused):
        await refusing.set_state(KEY, "never stored")
    assert await refusing.get_state(KEY) == "kept"


async def test_the_data_cache_serves_reads_within_a_term_and_starts_empty_in_the_next(
        pool: AsyncConnectionPool) -> None:
    term: list[object] = [object()]
    cached = PostgresStorage(pool, data_cache_size=10, cache_scope=lambda: term[0])
    other_writer = PostgresStorage(pool)
    await cached.update_data(KEY, {"form": {"model": "flux"}})
    await other_writer.set_data(KEY, {"form": "changed behind the cache"})
    mine = await cached.get_data(KEY)
    assert mine == {"form": {"model": "flux"}}
    mine["form"]["model"] = "edited by the caller"  # a fresh copy each read
    assert await cached.get_data(KEY) == {"form": {"model": "flux"}}
    term[0] = object()
    assert await cached.get_data(KEY) == {"form": "changed behind the cache"}


async def test_a_failed_write_drops_the_cached_state_and_data(pool: AsyncConnectionPool) -> None:
    cached = PostgresStorage(pool, fence=FenceLog(refuse=lambda n: n == 2), state_cache_size=10,
                             data_cache_size=10)
    await cached.update_state_and_data(KEY, Order.confirming, {"a": 1})
    with pytest.raises(FenceRefused):
        await cached.update_state_and_data(KEY, None, {"a": 2})
    await PostgresStorage(pool).update_state_and_data(KEY, "written by another", {"a": 3})
    assert await cached.get_state(KEY) == "written by another"
    assert await cached.get_data(KEY) == {"a": 3}


async def test_state_and_data_change_in_one_fenced_write_and_an_unchanged_state_writes_nothing(
        pool: AsyncConnectionPool) -> None:
    fence = FenceLog()
    cached = PostgresStorage(pool, fence=fence, state_cache_size=10, data_cache_size=10)
    context = FSMContext(storage=cached, key=KEY)
    await set_state_and_update_data(context, Order.confirming, {"form": {"step": 1}})
    assert fence.calls == 1
    await context.set_state(Order.confirming)  # already the stored state
    assert await context.get_data() == {"form": {"step": 1}}
    assert fence.calls == 1
    fresh = PostgresStorage(pool)
    assert await fresh.get_state(KEY) == Order.confirming.state
    assert await fresh.get_data(KEY) == {"form": {"step": 1}}
    await set_state_and_update_data(context, None, {"form": None})
    assert (await fresh.get_state(KEY), await fresh.get_data(KEY)) == (None, {"form": None})
    memory = FSMContext(storage=MemoryStorage(), key=KEY)
    await set_state_and_update_data(memory, Order.confirming, {"form": 1})
    assert (await memory.get_state(), await memory.get_data()) == (Order.confirming.state,
                                                                   {"form": 1})

