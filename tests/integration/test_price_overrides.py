"""Operators' overrides are what a request charges: one price from the card to the ledger.

The override is read inside the request's fenced transaction: a price changed since the card
was shown is refused (nothing held), a model switched off is refused, and Kie's cost in the
operators' figures stays the SKU's catalog cost whatever the user paid.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from psycopg_pool import AsyncConnectionPool

from services.admin.service import Admin
from services.billing.ledger import Wallet
from services.catalog import select_sku
from services.generation import (
    Created,
    Duplicate,
    FreeQuotaExhausted,
    JobLimits,
    ModelUnavailable,
    PriceChanged,
    Succeeded,
    apply_outcome,
    request_generation,
)
from services.generation.service import Generations
from services.storefront import Storefront, kie_cost_kop
from supervisor.election import Leadership
from tests.helpers import lead
from tests.integration.generation_support import (
    CATALOG,
    LIMITS,
    MARKUP,
    PRICE_KOP,
    PRICED,
    PROMPT,
    USER,
    assert_invariants,
    new_user,
    wallet,
)

OPERATOR = 1001
PRICED_INDEX = next(i for i, m in enumerate(CATALOG.models) if m.id == PRICED)
# seedream/4.5-text-to-image's default SKU: 5.11 RUB, what Kie bills for one run.
KIE_COST_KOP = 511
OVERRIDE_KOP = 777
JOB_SQL = b"SELECT price_kop, free, kie_cost_kop FROM generation_jobs WHERE id = %s"
JOBS_SQL = b"SELECT count(*) FROM generation_jobs"


@dataclass
class Shop:
    """The services a confirm press goes through, on one leadership."""

    leadership: Leadership
    storefront: Storefront
    generations: Generations
    admin: Admin

    async def set_price(self, price_kop: int | None, *, enabled: bool = True) -> None:
        await self.admin.set_model(PRICED_INDEX, enabled=enabled, price_kop=price_kop,
                                   operator_id=OPERATOR)

    async def confirm(self, key: str, shown_price_kop: int) -> object:
        return await self.generations.request(user_id=USER, chat_id=USER, model_id=PRICED,
                                              params=PROMPT, idempotency_key=key,
                                              shown_price_kop=shown_price_kop)


@pytest.fixture
async def shop(pool: AsyncConnectionPool) -> AsyncIterator[Shop]:
    """USER with 5,000 kop and the chat's services; the invariants are audited after."""
    async with pool.connection() as conn:
        await new_user(conn)
    leadership = await lead(pool)
    storefront = Storefront(pool, CATALOG, markup=MARKUP, leadership=lambda: leadership)
    yield Shop(leadership, storefront,
               Generations(pool, leadership=lambda: leadership, storefront=storefront,
                           limits=LIMITS),
               Admin(pool, storefront, operators=(OPERATOR,), markup=MARKUP,
                     lease_name="test-lease", leadership=lambda: leadership))
    await assert_invariants(pool)


async def jobs(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute(JOBS_SQL)).fetchone()
    return int(row[0]) if row else 0


def test_kie_cost_is_the_skus_catalog_price_without_markup() -> None:
    assert kie_cost_kop(select_sku(CATALOG[PRICED], PROMPT)) == KIE_COST_KOP
    assert PRICE_KOP == KIE_COST_KOP * MARKUP


async def test_the_override_price_is_shown_held_and_committed_and_kie_cost_stays_the_skus(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    await shop.set_price(OVERRIDE_KOP)
    shown = await shop.generations.price(PRICED, PROMPT)
    listing = (await shop.storefront.shelf()).by_id(PRICED)
    assert not isinstance(shown, Exception) and listing is not None
    assert getattr(shown, "price_kop", None) == OVERRIDE_KOP
    assert (listing.min_kop, listing.max_kop) == (OVERRIDE_KOP, OVERRIDE_KOP)

    made = await shop.confirm("gen:1:1", OVERRIDE_KOP)
    assert isinstance(made, Created) and made.job.price_kop == OVERRIDE_KOP
    assert await wallet(pool) == Wallet(balance_kop=5000 - OVERRIDE_KOP, hold_kop=OVERRIDE_KOP)
    async with pool.connection() as conn:
        row = await (await conn.execute(JOB_SQL, (made.job.id,))).fetchone()
        assert row == (OVERRIDE_KOP, False, KIE_COST_KOP)
        await apply_outcome(conn, made.job.id, Succeeded(["https://cdn/x.png"]))
    assert await wallet(pool) == Wallet(balance_kop=5000 - OVERRIDE_KOP, hold_kop=0)
    stats = await shop.admin.stats()
    assert (stats.revenue_kop, stats.kie_cost_kop) == (OVERRIDE_KOP, KIE_COST_KOP)


async def test_a_price_changed_since_the_card_is_refused_with_the_new_price_holding_nothing(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    await shop.storefront.shelf()  # the card was shown at the catalog price
    await shop.set_price(OVERRIDE_KOP)
    refused = await shop.confirm("gen:1:1", PRICE_KOP)
    assert refused == PriceChanged(OVERRIDE_KOP)
    assert await jobs(pool) == 0
    assert await wallet(pool) == Wallet(balance_kop=5000, hold_kop=0)
    # The new card carries the new price; the same card (same key) confirms at it.
    again = await shop.confirm("gen:1:1", OVERRIDE_KOP)
    assert isinstance(again, Created) and again.job.price_kop == OVERRIDE_KOP


async def test_a_price_set_on_another_instance_is_refused_even_while_screens_cache_the_old(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    assert getattr(await shop.generations.price(PRICED, PROMPT), "price_kop", None) == PRICE_KOP
    async with pool.connection() as conn:  # not through this process: its cache is stale
        await conn.execute(b"INSERT INTO model_overrides (model_id, enabled, price_kop,"
                           b" updated_by) VALUES (%s, true, %s, 1)", (PRICED, OVERRIDE_KOP))
    assert getattr(await shop.generations.price(PRICED, PROMPT), "price_kop", None) == PRICE_KOP
    assert await shop.confirm("gen:1:1", PRICE_KOP) == PriceChanged(OVERRIDE_KOP)
    # The refusal dropped the cache: the card re-shown carries the live price.
    assert getattr(await shop.generations.price(PRICED, PROMPT), "price_kop", None) == \
        OVERRIDE_KOP
    assert await wallet(pool) == Wallet(balance_kop=5000, hold_kop=0)


async def test_a_model_switched_off_is_refused_and_nothing_is_held(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    await shop.set_price(None, enabled=False)
    assert (await shop.storefront.shelf()).by_id(PRICED) is None
    assert await shop.confirm("gen:1:1", PRICE_KOP) == ModelUnavailable(PRICED)
    assert await jobs(pool) == 0
    assert await wallet(pool) == Wallet(balance_kop=5000, hold_kop=0)


async def test_a_replayed_press_finds_its_job_after_the_price_changed(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    made = await shop.confirm("gen:1:1", PRICE_KOP)
    await shop.set_price(OVERRIDE_KOP)
    again = await shop.confirm("gen:1:1", PRICE_KOP)
    assert isinstance(made, Created) and isinstance(again, Duplicate)
    assert again.job.id == made.job.id
    assert await wallet(pool) == Wallet(balance_kop=5000 - PRICE_KOP, hold_kop=PRICE_KOP)


async def test_an_override_of_zero_makes_free_generations_under_the_daily_quota(
        pool: AsyncConnectionPool, shop: Shop) -> None:
    await shop.set_price(0)
    limits = JobLimits(max_active_jobs=10, free_daily_quota=2)
    outcomes = []
    for n in range(3):
        async with shop.leadership.fenced(pool) as conn:
            outcomes.append(await request_generation(
                conn, catalog=CATALOG, markup=MARKUP, limits=limits, user_id=USER,
                chat_id=USER, model_id=PRICED, params=PROMPT, idempotency_key=f"gen:1:{n}",
                expected_price_kop=0))
    first, second, third = outcomes
    assert isinstance(first, Created) and first.job.free and first.job.price_kop == 0
    assert isinstance(second, Created)
    assert third == FreeQuotaExhausted(2)
    assert await wallet(pool) == Wallet(balance_kop=5000, hold_kop=0)
