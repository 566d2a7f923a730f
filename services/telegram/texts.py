"""Texts outside handlers (the dispatcher's notices, other services), and money for people.

Handlers use their `i18n` context; code without one (a dead-letter notice, a delivery) calls
`get(language_code, key, ...)`, which reads the same Fluent files (services/telegram/locales).
"""

from __future__ import annotations

import functools

from aiogram_i18n.cores import FluentRuntimeCore

from services.telegram.i18n import language_of, load_core, message_variables


@functools.cache
def core() -> FluentRuntimeCore:
    """Return the process's Fluent core (loaded once; start-up reads the files)."""
    return load_core()


def get(code: str | None, key: str, **values: object) -> str:
    """Return text `key` for a Telegram language_code, formatted with values."""
    return core().get(key, str(language_of(code)), **values)


def template(language: str, key: str) -> str:
    """Return text `key` with each placeholder shown as `{name}` (to match replies against)."""
    names = message_variables(language)[key]
    return core().get(key, language, **{name: "{" + name + "}" for name in names})


def rubles(kopecks: int) -> str:
    """Format kopecks as roubles for people: 1234567 -> '12 345.67 ₽'."""
    sign = "-" if kopecks < 0 else ""
    whole, cents = divmod(abs(kopecks), 100)
    return f"{sign}{whole:,}.{cents:02d} ₽".replace(",", " ")
