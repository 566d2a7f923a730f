"""Every button's callback data fits Telegram's 64 bytes at its largest; prefixes differ."""

from __future__ import annotations

from typing import Any

from aiogram.filters.callback_data import CallbackData

import services.telegram.handlers  # noqa: F401  (defines every feature's factories)
from services.storefront import CATEGORIES
from services.telegram.forms.screens import Verb
from services.telegram.handlers.admin import Screen
from services.telegram.handlers.catalog import BACK_TO_CATEGORY, BACK_TO_FREE, BACK_TO_SEARCH
from services.telegram.handlers.menu import FREE
from services.telegram.ui import ResultAct
from services.users import Language

TELEGRAM_MAX_CALLBACK_BYTES = 64
# The longest value each text field can carry; an int field gets the longest 64-bit integer.
LONGEST_TEXT = {
    "category": max((*CATEGORIES, FREE), key=len),
    "back": max((BACK_TO_CATEGORY, BACK_TO_FREE, BACK_TO_SEARCH), key=len),
    "language": max((str(lang) for lang in Language), key=len),
    "verb": max((str(verb) for verb in Verb), key=len),
    "screen": max(Screen, key=len),
    "act": max((str(act) for act in ResultAct), key=len),
}
LONGEST_INT = -(2 ** 63)


def factories() -> list[type[CallbackData]]:
    """Return the product's factories (once each: tests that reload routers redefine them)."""
    found: dict[str, type[CallbackData]] = {}
    todo = list(CallbackData.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("services."):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def largest(cls: type[CallbackData]) -> CallbackData:
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if info.annotation is int:
            values[name] = LONGEST_INT
        else:
            assert name in LONGEST_TEXT, f"{cls.__name__}.{name}: declare its longest value"
            values[name] = LONGEST_TEXT[name]
    return cls(**values)


def test_the_largest_value_of_every_factory_packs_into_64_bytes() -> None:
    assert len(factories()) >= 10
    for cls in factories():
        packed = largest(cls).pack()
        assert len(packed.encode()) <= TELEGRAM_MAX_CALLBACK_BYTES, (cls.__name__, packed)
        assert cls.unpack(packed) == largest(cls)


def test_every_factory_has_its_own_prefix() -> None:
    prefixes = [cls.__prefix__ for cls in factories()]
    assert len(prefixes) == len(set(prefixes)), prefixes
