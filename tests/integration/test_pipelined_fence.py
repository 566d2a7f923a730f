"""The fenced unit of work in pipeline mode (`fenced(pool, pipeline=True)`): it commits, refuses
a superseded term and rolls back on an error exactly as the plain one does, although its
statements' errors only surface at the next read or at the COMMIT."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from supervisor.election import FencedError
from tests.helpers import lead, set_term

INSERT_SQL = "INSERT INTO service_state (bot_id, key, value) VALUES (1, %s, %s)"
COUNT_SQL = "SELECT count(*) FROM service_state"


async def stored(pool: AsyncConnectionPool) -> dict[str, str]:
    """Return the committed service_state rows, key -> value."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT key, value FROM service_state ORDER BY key")
        return {key: value for key, value in await cur.fetchall()}


async def test_a_pipelined_block_commits_its_writes_like_a_plain_one(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    async with leadership.fenced(pool, pipeline=True) as conn:
        await conn.execute(INSERT_SQL, ("a", "1"))  # result never read: goes with the COMMIT
        cur = await conn.execute(COUNT_SQL)  # a read inside the block sees the block's writes
        assert await cur.fetchone() == (1,)
        await conn.execute(INSERT_SQL, ("b", "2"))
    assert await stored(pool) == {"a": "1", "b": "2"}


async def test_a_superseded_term_refuses_a_block_that_only_writes(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    await set_term(pool, 4)
    # The fence's error comes back with the COMMIT's sync: still FencedError, not LF001 raw.
    with pytest.raises(FencedError):
        async with leadership.fenced(pool, pipeline=True) as conn:
            await conn.execute(INSERT_SQL, ("k", "v"))
    assert await stored(pool) == {}


async def test_a_superseded_term_surfaces_at_the_blocks_first_read_as_fenced_error(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    await set_term(pool, 4)
    reached_after_read = False
    with pytest.raises(FencedError):
        async with leadership.fenced(pool, pipeline=True) as conn:
            await conn.execute(INSERT_SQL, ("k", "v"))
            await (await conn.execute(COUNT_SQL)).fetchone()
            reached_after_read = True
    assert not reached_after_read, "the block went on past a read of a fenced transaction"
    assert await stored(pool) == {}
    # The connection went back to the pool usable: the current term writes through it.
    current = await lead(pool, term=4)
    async with current.fenced(pool, pipeline=True) as conn:
        await conn.execute(INSERT_SQL, ("k", "current"))
    assert await stored(pool) == {"k": "current"}


async def test_an_exception_inside_a_pipelined_block_rolls_everything_back(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    with pytest.raises(RuntimeError, match="dies mid-block"):
        async with leadership.fenced(pool, pipeline=True) as conn:
            await conn.execute(INSERT_SQL, ("a", "1"))
            await (await conn.execute(COUNT_SQL)).fetchone()  # the insert reached the server
            await conn.execute(INSERT_SQL, ("b", "2"))
            raise RuntimeError("the leader dies mid-block")
    assert await stored(pool) == {}


async def test_a_failing_statement_rolls_the_pipelined_block_back_and_is_not_fenced_error(
        pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool, term=3)
    # A duplicate key whose result is never read: its error surfaces at the COMMIT, raw (only
    # a superseded term becomes FencedError), and the insert before it is rolled back too.
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with leadership.fenced(pool, pipeline=True) as conn:
            await conn.execute(INSERT_SQL, ("a", "1"))
            await conn.execute(INSERT_SQL, ("a", "again"))
    assert await stored(pool) == {}
