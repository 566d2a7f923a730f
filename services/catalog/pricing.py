"""Pick the SKU for a request and turn its RUB price into kopecks with markup."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, localcontext

from services.catalog.loader import Model, PricingError, Sku

KOPECKS_PER_RUB = Decimal(100)
# Enough significant digits that price * 100 * markup is exact before rounding,
# whatever precision the process-wide decimal context has.
DECIMAL_PRECISION = 60


def select_sku(model: Model, params: Mapping[str, object]) -> Sku:
    """Return the SKU matching params (defaults filled) with the most params; first wins ties."""
    filled = model.with_defaults(params)
    best: Sku | None = None
    for sku in model.skus:
        if _matches(sku, filled) and (best is None or len(sku.params) > len(best.params)):
            best = sku
    if best is None:
        raise PricingError(model.id, filled)
    return best


def price_kopecks(model: Model, params: Mapping[str, object], markup: Decimal) -> int:
    """Return the price for params in whole kopecks: Kie's RUB price times markup, rounded up."""
    return sku_kopecks(select_sku(model, params), markup)


def sku_kopecks(sku: Sku, markup: Decimal) -> int:
    """Return the SKU's RUB price times markup in whole kopecks, rounded up (markup 1: Kie's
    cost)."""
    if not isinstance(markup, Decimal) or not markup.is_finite() or markup <= 0:
        raise ValueError(f"markup must be a positive finite Decimal, not {markup!r}")
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        kopecks = (sku.price_rub * KOPECKS_PER_RUB * markup).to_integral_value(
            rounding=ROUND_CEILING
        )
    return int(kopecks)


def _matches(sku: Sku, params: Mapping[str, object]) -> bool:
    return all(_same(params.get(name), value) for name, value in sku.params.items())


def _same(given: object, priced: object) -> bool:
    # bool is an int subclass; keep True from matching a priced 1 and vice versa.
    if isinstance(given, bool) or isinstance(priced, bool):
        return type(given) is type(priced) and given == priced
    return given == priced
