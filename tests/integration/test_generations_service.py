"""Generations, the service the form uses: prices at the markup, requests in one fenced unit
of work under one key, and refuses a user who requests too often without writing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from services.catalog import select_sku
from services.generation import Created, Duplicate, InvalidParams
from services.generation.service import Generations, RateLimited, RequestThrottle
from services.storefront import Price, Storefront
from supervisor.election import FencedError, Leadership
from tests.helpers import lead, set_term
from tests.integration.generation_support import (
    CATALOG,
    LIMITS,
    MARKUP,
    PRICE_KOP,
    PRICED,
    PROMPT,
    USER,
    new_user,
    wallet,
)

JOBS_SQL = b"SELECT count(*) FROM generation_jobs"


def service(pool: AsyncConnectionPool, leadership: Leadership | None, *,
            throttle: RequestThrottle | None = None,
            on_requested: Callable[[], None] | None = None) -> Generations:
    storefront = Storefront(pool, CATALOG, markup=MARKUP, leadership=lambda: leadership)
    return Generations(pool, leadership=lambda: leadership, storefront=storefront,
                       limits=LIMITS, throttle=throttle, on_requested=on_requested)


async def jobs(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute(JOBS_SQL)).fetchone()
    return int(row[0]) if row else 0


async def test_the_price_follows_the_chosen_sku_at_the_markup(
        pool: AsyncConnectionPool) -> None:
    generations = service(pool, None)

    def sku(model_id: str, params: dict[str, object]) -> object:
        return select_sku(CATALOG[model_id], params)

    assert await generations.price(PRICED, PROMPT) == Price(PRICE_KOP, sku(PRICED, PROMPT))
    # nano-banana-pro: 1K 14.14 RUB (the default), 4K 18.86 RUB; x 2.0, in kopecks.
    assert (await generations.price("nano-banana-pro", PROMPT)).price_kop == 2828
    assert (await generations.price("nano-banana-pro", {**PROMPT, "resolution": "4K"})
            ).price_kop == 3772
    free = await generations.price("z-image", {"prompt": "x"})
    assert isinstance(free, Price) and free.price_kop == 0 and free.free
    assert isinstance(await generations.price("no-such-model", {}), InvalidParams)


async def test_one_key_makes_one_job_and_holds_its_price(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await new_user(conn)
    woken: list[str] = []  # Engine.requested: the submitter's in-process wake-up
    generations = service(pool, await lead(pool),
                          on_requested=lambda: woken.append("submitter"))
    first = await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                      params=PROMPT, idempotency_key="gen:1:10")
    again = await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                      params=PROMPT, idempotency_key="gen:1:10")
    assert isinstance(first, Created) and isinstance(again, Duplicate)
    assert again.job.id == first.job.id and first.job.price_kop == PRICE_KOP
    assert woken == ["submitter"]  # once, for the new job; a duplicate wakes no one
    found = await wallet(pool)
    assert found is not None and found.hold_kop == PRICE_KOP
    assert await jobs(pool) == 1


async def test_a_deposed_leader_requests_nothing(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await new_user(conn)
    generations = service(pool, await lead(pool, term=1))
    await set_term(pool, 2)
    with pytest.raises(FencedError):
        await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                  params=PROMPT, idempotency_key="gen:1:11")
    assert await jobs(pool) == 0


async def test_a_user_over_the_rate_limit_is_refused_without_a_write(
        pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await new_user(conn, balance_kop=100_000)
    now = [0.0]
    throttle = RequestThrottle(limit=1, window_s=60.0, clock=lambda: now[0])
    generations = service(pool, await lead(pool), throttle=throttle)
    made = await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                     params=PROMPT, idempotency_key="gen:1:12")
    refused = await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                        params=PROMPT, idempotency_key="gen:1:13")
    assert isinstance(made, Created) and refused == RateLimited(60.0)
    assert await jobs(pool) == 1
    now[0] = 60.0
    later = await generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                      params=PROMPT, idempotency_key="gen:1:13")
    assert isinstance(later, Created)
