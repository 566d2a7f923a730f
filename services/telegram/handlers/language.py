"""Choosing the UI language: stored for the user, used for every later screen."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.storefront import Storefront
from services.telegram.handlers.menu import outdated, show_menu
from services.telegram.ui import LanguageCb, add_menu_button, button, show
from services.users import Language

router = Router(name=__name__)


@router.callback_query(LanguageCb.filter(F.language == ""))
async def choose(query: CallbackQuery, i18n: I18nContext) -> None:
    """Offer the languages, each named in itself."""
    kb = InlineKeyboardBuilder()
    kb.row(*(button(i18n.get("language-name", str(lang), language=str(lang)),
                    LanguageCb(language=str(lang))) for lang in Language))
    await show(query, i18n.get("language-choose"), add_menu_button(kb, i18n).as_markup())


@router.callback_query(LanguageCb.filter())
async def chosen(query: CallbackQuery, callback_data: LanguageCb, i18n: I18nContext,
                 member: Member, storefront: Storefront, accounts: Accounts,
                 callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Store the chosen language and show the menu in it."""
    if callback_data.language not in set(Language):
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    await i18n.set_locale(callback_data.language)
    callback_answer.text = i18n.get("language-set")
    await show_menu(query, i18n, member, storefront, accounts, text=i18n.get("language-set"))
