"""Anything no other handler took: a hint towards /help, or an outdated button. Included last."""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.storefront import Storefront
from services.telegram.handlers.menu import outdated
from services.telegram.ui import menu_only

router = Router(name=__name__)

# Quoting the user's words shows what was not understood; long texts are cut.
QUOTE_MAX_CHARS = 60


@router.message()
async def hint(message: Message, i18n: I18nContext) -> None:
    """Point the user at /help, quoting what they sent."""
    said = message.text or message.caption or "…"
    if len(said) > QUOTE_MAX_CHARS:
        said = said[:QUOTE_MAX_CHARS - 1] + "…"
    await message.answer(i18n.get("fallback-hint", text=said), reply_markup=menu_only(i18n))


@router.callback_query()
async def unknown_button(query: CallbackQuery, i18n: I18nContext, member: Member,
                         storefront: Storefront, accounts: Accounts,
                         callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Say the button is outdated (no handler knows it any more) and show the menu."""
    await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
