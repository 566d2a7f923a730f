"""The storefront: the catalog as users see it, with operators' overrides applied.

The catalog file is the single source of the models; `model_overrides` rows (database, set by
operators) hide a model or replace its price. Screens read them through a short cache
(`OVERRIDES_CACHE_S`; every update used to pay a transaction for this small table): an
operator's change shows on this process's next screen at once (`set_override` and the console
drop the cache after their commit) and on any other within the cache time. That lag can never
charge a price nobody saw: `request_generation` reads the model's override again inside its
own fenced transaction and refuses a press whose price differs from the live one
(`PriceChanged`) or whose model was switched off (`ModelUnavailable`). Prices come from
`pricing.user_price_kop`, the one pricing function (override, else SKU price x markup).

A listing's `index` is its position in the catalog file: buttons carry it (model ids can
exceed Telegram's 64-byte callback data), and it is stable for one catalog file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.catalog import Catalog, Model
from services.storefront.pricing import Override, Price, kie_cost_kop, quote, user_price_kop
from supervisor.db import autocommit
from supervisor.election import FencedError, Leadership
from supervisor.sqlstore import QueryStore, Sent, send_one

__all__ = ["CATEGORIES", "Listing", "Override", "OverrideStore", "Price", "Shelf",
           "Storefront", "kie_cost_kop", "quote", "user_price_kop"]

QUERIES = QueryStore(Path(__file__).with_name("sql") / "overrides.sql")
# The order categories are offered in (every catalog category is one of these).
CATEGORIES = ("image", "video", "audio", "upscale")
# How long screens trust the overrides they read (the request re-reads them, see above).
OVERRIDES_CACHE_S = 2.0


@dataclass(frozen=True, slots=True)
class Listing:
    """One model on sale: its catalog position, its price range in kopecks over its SKUs."""

    index: int
    model: Model
    min_kop: int
    max_kop: int

    @property
    def free(self) -> bool:
        """Return whether every way of running the model costs nothing."""
        return self.max_kop == 0

    def title(self, language: str) -> str:
        """Return the model's name in the language."""
        return self.model.title.get(language)


@dataclass(frozen=True, slots=True)
class Shelf:
    """The visible listings of one moment, in catalog order."""

    listings: Sequence[Listing]

    def categories(self) -> list[tuple[str, int]]:
        """Return each category that has visible models, with how many, in offering order."""
        counts = {c: 0 for c in CATEGORIES}
        for listing in self.listings:
            counts[listing.model.category] += 1
        return [(c, n) for c, n in counts.items() if n]

    def in_category(self, category: str) -> list[Listing]:
        """Return the category's listings, cheapest first."""
        return _by_price(lg for lg in self.listings if lg.model.category == category)

    def free(self) -> list[Listing]:
        """Return the free listings, in category order."""
        order = {c: i for i, c in enumerate(CATEGORIES)}
        return sorted((lg for lg in self.listings if lg.free),
                      key=lambda lg: (order[lg.model.category], lg.model.title.en))

    def search(self, query: str) -> list[Listing]:
        """Return listings whose name (either language) or id contains the query, cheapest first."""
        needle = " ".join(query.casefold().split())
        if not needle:
            return []
        return _by_price(lg for lg in self.listings
                         if any(needle in text.casefold() for text in (
                             lg.model.title.en, lg.model.title.ru, lg.model.id)))

    def listing(self, index: int) -> Listing | None:
        """Return the visible listing at this catalog position, or None (gone or hidden)."""
        return next((lg for lg in self.listings if lg.index == index), None)

    def by_id(self, model_id: str) -> Listing | None:
        """Return the visible listing of this model, or None."""
        return next((lg for lg in self.listings if lg.model.id == model_id), None)


class Storefront:
    """Build shelves from the catalog, the markup and the operators' overrides."""

    def __init__(self, pool: AsyncConnectionPool, catalog: Catalog, *, markup: Decimal,
                 leadership: Callable[[], Leadership | None],
                 cache_s: float = OVERRIDES_CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._leadership = leadership
        self.catalog = catalog
        self.markup = markup
        self._cache_s = cache_s
        self._clock = clock
        self._read_at: float | None = None
        self._overrides: dict[str, Override] = {}
        self._shelf = self._build({})

    async def overrides(self) -> Mapping[str, Override]:
        """Return the operators' overrides by model id (read at most every cache_s)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._cache_s:
            async with autocommit(self._pool) as conn:
                found = {o.model_id: o for o in await OverrideStore(conn).overrides()}
            if found != self._overrides:
                self._overrides, self._shelf = found, self._build(found)
            self._read_at = now
        return self._overrides

    async def shelf(self) -> Shelf:
        """Return what is on sale now."""
        await self.overrides()
        return self._shelf

    def forget(self) -> None:
        """Drop the cached overrides: the next screen reads them (after an operator's change)."""
        self._read_at = None

    def _build(self, overrides: Mapping[str, Override]) -> Shelf:
        listings = []
        for index, model in enumerate(self.catalog.models):
            override = overrides.get(model.id)
            if override is None or override.enabled:
                listings.append(_listing(index, model, self.markup, override))
        return Shelf(tuple(listings))

    async def set_override(self, model_id: str, *, enabled: bool, price_kop: int | None,
                           operator_id: int) -> None:
        """Store an operator's override of a catalog model (one idempotent upsert)."""
        if model_id not in self.catalog:
            raise KeyError(model_id)
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        async with leadership.fenced(self._pool) as conn:
            await OverrideStore(conn).set_override(model_id, enabled=enabled,
                                                   price_kop=price_kop, operator_id=operator_id)
        self.forget()


class OverrideStore:
    """The overrides' queries (sql/overrides.sql) on one connection, one method per query."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def overrides(self) -> list[Override]:
        """Return every override."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["overrides"])
        return [Override(**row) for row in await cur.fetchall()]

    async def override(self, model_id: str) -> Override | None:
        """Return the override of one model, or None."""
        return await (await self.send_override(model_id)).result()

    async def send_override(self, model_id: str) -> Sent[Override | None]:
        """Send override, its result read later (pipelined: `sqlstore.send_one`)."""
        return await send_one(self._conn, QUERIES["override"], {"model_id": model_id},
                              lambda row: None if row is None else Override(**row))

    async def set_override(self, model_id: str, *, enabled: bool, price_kop: int | None,
                           operator_id: int) -> None:
        """Insert or replace the override of one model."""
        await self._conn.execute(QUERIES["set_override"], {
            "model_id": model_id, "enabled": enabled, "price_kop": price_kop,
            "updated_by": operator_id})


def _listing(index: int, model: Model, markup: Decimal, override: Override | None) -> Listing:
    prices = [user_price_kop(sku, markup=markup, override=override) for sku in model.skus]
    return Listing(index=index, model=model, min_kop=min(prices), max_kop=max(prices))


def _by_price(listings: Iterable[Listing]) -> list[Listing]:
    return sorted(listings, key=lambda lg: (lg.min_kop, lg.model.title.en))
