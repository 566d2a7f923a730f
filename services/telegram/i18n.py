"""Texts through aiogram-i18n with Fluent: locales/<language>/<feature>.ftl, one file per feature.

`load_core()` reads every .ftl file once at start (a missing key is an error, not a silent
fallback to its id). The update's language comes from the `Member` the member middleware
loaded: the UI language the user chose, else Telegram's language_code (Russian for ru, uk,
be, kk; English otherwise). Handlers take `i18n: I18nContext` and call `i18n.get(key, ...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from aiogram import Dispatcher
from aiogram_i18n import I18nMiddleware
from aiogram_i18n.cores import FluentRuntimeCore
from aiogram_i18n.managers import BaseManager
from fluent.syntax import FluentParser, ast, visitor

from services.accounts import Accounts, Member
from services.users import Language, UserStore

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT_LANGUAGE = Language.EN
# Telegram language codes whose speakers get the Russian UI unless they choose otherwise.
RUSSIAN_UI_CODES = frozenset({"ru", "uk", "be", "kk"})


def language_of(code: str | None) -> Language:
    """Map a Telegram language_code to a supported language: none at all is Russian (the
    bot's home language), a code we have no texts for is English."""
    if not code or code.split("-")[0].lower() in RUSSIAN_UI_CODES:
        return Language.RU
    return DEFAULT_LANGUAGE


def preferred_language(chosen: Language | None, code: str | None) -> Language:
    """Return the language to write in to someone who did not just write to us (an operator
    told of a receipt, a user told of a decision): the one they chose, else their Telegram
    language_code's, the same rule as on their screens."""
    return chosen if chosen is not None else language_of(code)


async def chat_languages(conn: psycopg.AsyncConnection,
                         user_ids: Sequence[int]) -> dict[int, Language]:
    """Return each user's `preferred_language` (Russian for one the bot never met)."""
    known = await UserStore(conn).languages(user_ids)
    return {user_id: preferred_language(*known.get(user_id, (None, None)))
            for user_id in user_ids}


def member_language(member: Member) -> Language:
    """Return the language to talk to this member in."""
    return member.ui_language or language_of(member.language_code)


def load_core() -> FluentRuntimeCore:
    """Read every locale's .ftl files (blocking file reads: call once at start)."""
    core = FluentRuntimeCore(path=LOCALES_DIR / "{locale}", default_locale=str(DEFAULT_LANGUAGE))
    core.locales.update(core.find_locales())
    return core


def message_variables(language: str) -> dict[str, frozenset[str]]:
    """Return each message id of a language's files with the variables it uses."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted((LOCALES_DIR / language).glob("*.ftl")):
        resource = FluentParser().parse(path.read_text(encoding="utf-8"))
        for entry in resource.body:
            if isinstance(entry, ast.Message):
                names = _Variables()
                names.visit(entry)
                found[entry.id.name] = frozenset(names.found)
    return found


class _Variables(visitor.Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()

    def visit_VariableReference(self, node: ast.VariableReference) -> None:
        self.found.add(node.id.name)


class MemberLanguage(BaseManager):
    """The update's locale is its member's language; choosing one stores it for them."""

    async def get_locale(self, member: Member | None = None, **_: Any) -> str:
        """Return the language of the update's member (the default without one)."""
        return str(member_language(member) if member else DEFAULT_LANGUAGE)

    async def set_locale(self, locale: str, member: Member, accounts: Accounts,
                         **_: Any) -> None:
        """Store the member's chosen language."""
        await accounts.set_language(member.user_id, Language(locale))


def setup_i18n(dispatcher: Dispatcher, core: FluentRuntimeCore) -> None:
    """Give every handler an `i18n` context in its member's language."""
    I18nMiddleware(core=core, manager=MemberLanguage(default_locale=str(DEFAULT_LANGUAGE)),
                   default_locale=str(DEFAULT_LANGUAGE)).setup(dispatcher)
