"""What delivery says to users, per language (ru, en), beside the bot's other texts."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.telegram.texts import language_of

TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "ru": MappingProxyType({
        "failed": ("❌ {model}: не получилось. {reason}\nДеньги не списаны: резерв вернулся "
                   "на баланс."),
    }),
    "en": MappingProxyType({
        "failed": ("❌ {model}: it did not work. {reason}\nYou were not charged: the hold is back "
                   "on your balance."),
    }),
})


def get(code: str | None, key: str, **values: object) -> str:
    """Return delivery text `key` in the user's language, formatted with values."""
    return TEXTS[language_of(code)][key].format(**values)
