"""The user's price of a generation: the one function every screen and the request use.

A price is the operator's override of the model (`model_overrides.price_kop`, one price for
every SKU of the model) when one is set, else the chosen SKU's catalog price (RUB) x
PRICE_MARKUP rounded up to the kopeck, and 0 for a free SKU. A generation is free (counted in
FREE_DAILY_QUOTA) exactly when its price is 0. The catalog screens (price ranges), the card's
Generate button and `request_generation` (with the override it reads inside its fenced
transaction) all price through `user_price_kop`, so what is shown is what is charged.
Kie's cost of a job is never this price: it is the SKU's catalog price (`kie_cost_kop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.catalog import Model, Sku, select_sku, sku_kopecks

NO_MARKUP = Decimal(1)


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's override of one model."""

    model_id: str
    enabled: bool
    price_kop: int | None


@dataclass(frozen=True, slots=True)
class Price:
    """What a generation with some parameters costs the user, and which SKU Kie bills."""

    price_kop: int
    sku: Sku

    @property
    def free(self) -> bool:
        """Return whether the user pays nothing (the free daily quota applies)."""
        return self.price_kop == 0


def user_price_kop(sku: Sku, *, markup: Decimal, override: Override | None) -> int:
    """Return what running `sku` costs the user, in kopecks (see the module docstring)."""
    if override is not None and override.price_kop is not None:
        return override.price_kop
    return 0 if sku.free else sku_kopecks(sku, markup)


def quote(model: Model, params: Mapping[str, object], *, markup: Decimal,
          override: Override | None) -> Price:
    """Return the price of params (defaults filled); raise PricingError if no SKU matches."""
    sku = select_sku(model, params)
    return Price(user_price_kop(sku, markup=markup, override=override), sku)


def kie_cost_kop(sku: Sku) -> int:
    """Return what Kie charges for one run of the SKU, in kopecks (rounded up)."""
    return sku_kopecks(sku, NO_MARKUP)
