"""Kie.ai model catalog: the models the bot sells, their inputs and their prices."""

from services.catalog.loader import (
    CATALOG_PATH,
    TELEGRAM_FILE_REF_PREFIX,
    URL_TYPES,
    Catalog,
    CatalogError,
    CatalogIssue,
    CatalogProblem,
    InputError,
    InputField,
    LocalizedText,
    Model,
    PricingError,
    Sku,
    get_catalog,
    load_catalog,
)
from services.catalog.pricing import price_kopecks, select_sku, sku_kopecks

__all__ = [
    "CATALOG_PATH",
    "TELEGRAM_FILE_REF_PREFIX",
    "URL_TYPES",
    "Catalog",
    "CatalogError",
    "CatalogIssue",
    "CatalogProblem",
    "InputError",
    "InputField",
    "LocalizedText",
    "Model",
    "PricingError",
    "Sku",
    "get_catalog",
    "load_catalog",
    "price_kopecks",
    "select_sku",
    "sku_kopecks",
]
