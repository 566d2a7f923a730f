"""The storefront: the catalog as users see it, with operators' overrides applied.

The catalog file is the single source of the models; `model_overrides` rows (database, set by
operators) hide a model or replace its price, and are read on every `shelf()` call (one small
query), so a change shows on the next screen on any instance. Prices are the catalog's RUB
price per SKU x `PRICE_MARKUP`, in kopecks, computed once at start; a free SKU costs 0.

A listing's `index` is its position in the catalog file: buttons carry it (model ids can
exceed Telegram's 64-byte callback data), and it is stable for one catalog file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.catalog import Catalog, Model, price_kopecks
from supervisor.election import FencedError, Leadership
from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "overrides.sql")
# The order categories are offered in (every catalog category is one of these).
CATEGORIES = ("image", "video", "audio", "upscale")


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's override of one model."""

    model_id: str
    enabled: bool
    price_kop: int | None


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
                 leadership: Callable[[], Leadership | None]) -> None:
        self._pool = pool
        self._leadership = leadership
        self.catalog = catalog
        self._listings = tuple(_listing(i, m, markup) for i, m in enumerate(catalog.models))

    async def shelf(self) -> Shelf:
        """Return what is on sale now."""
        async with self._pool.connection() as conn:
            overrides = await OverrideStore(conn).overrides()
        return Shelf(tuple(_apply(self._listings, {o.model_id: o for o in overrides})))

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


class OverrideStore:
    """The overrides' queries (sql/overrides.sql) on one connection, one method per query."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def overrides(self) -> list[Override]:
        """Return every override."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["overrides"])
        return [Override(**row) for row in await cur.fetchall()]

    async def set_override(self, model_id: str, *, enabled: bool, price_kop: int | None,
                           operator_id: int) -> None:
        """Insert or replace the override of one model."""
        await self._conn.execute(QUERIES["set_override"], {
            "model_id": model_id, "enabled": enabled, "price_kop": price_kop,
            "updated_by": operator_id})


def _listing(index: int, model: Model, markup: Decimal) -> Listing:
    prices = [0 if sku.free else price_kopecks(model, dict(sku.params), markup)
              for sku in model.skus]
    return Listing(index=index, model=model, min_kop=min(prices), max_kop=max(prices))


def _apply(listings: Iterable[Listing], overrides: dict[str, Override]) -> Iterable[Listing]:
    for listing in listings:
        override = overrides.get(listing.model.id)
        if override is None:
            yield listing
        elif override.enabled:
            price = override.price_kop
            yield listing if price is None else replace(listing, min_kop=price, max_kop=price)


def _by_price(listings: Iterable[Listing]) -> list[Listing]:
    return sorted(listings, key=lambda lg: (lg.min_kop, lg.model.title.en))
