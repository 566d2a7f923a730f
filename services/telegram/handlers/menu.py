"""The main menu (/start, /menu, the Menu button): every screen is one press away from here.

/start registers the user (the member middleware did it) and keeps the first deep-link
payload they came with (`/start <payload>`, for referrals later).
"""

from __future__ import annotations

import re

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.billing.ledger import Wallet
from services.storefront import Storefront
from services.telegram.texts import rubles
from services.telegram.ui import (
    BalanceCb,
    CategoryCb,
    FindCb,
    HelpCb,
    HistoryCb,
    LanguageCb,
    MenuCb,
    ModelCb,
    SupportCb,
    TopUpCb,
    button,
    leave_prompt,
    show,
)

router = Router(name=__name__)

FREE = "free"
# What a t.me/<bot>?start=<payload> link can carry; anything else was typed by hand: ignored.
DEEP_LINK_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def show_menu(target: Message | CallbackQuery, i18n: I18nContext, member: Member,
                    storefront: Storefront, accounts: Accounts, *, text: str | None = None,
                    state: FSMContext | None = None, wallet: Wallet | None = None) -> None:
    """Show the main menu (with `text` above it instead of the menu title)."""
    if state is not None:
        await leave_prompt(state)
    shelf = await storefront.shelf()
    balance = rubles((wallet or await member.wallet()).balance_kop)
    kb = InlineKeyboardBuilder()
    for category, count in shelf.categories():
        kb.button(text=i18n.get("menu-category", category=category, count=count),
                  callback_data=CategoryCb(category=category))
    kb.adjust(2)
    free = shelf.free()
    if free:
        kb.row(button(i18n.get("menu-free", count=len(free)), CategoryCb(category=FREE)))
    last_id = await accounts.last_model(member.user_id)
    last = shelf.by_id(last_id) if last_id else None
    if last is not None:
        kb.row(button(i18n.get("menu-last", model=last.title(i18n.locale)),
                      ModelCb(model=last.index)))
    kb.row(button(i18n.get("menu-search"), FindCb()))
    kb.row(button(i18n.get("menu-balance", balance=balance), BalanceCb()),
           button(i18n.get("menu-history"), HistoryCb()))
    kb.row(button(i18n.get("menu-topup"), TopUpCb()))
    kb.row(button(i18n.get("menu-help"), HelpCb()),
           button(i18n.get("menu-language"), LanguageCb()),
           button(i18n.get("menu-support"), SupportCb()))
    await show(target, text or i18n.get("menu-title", balance=balance), kb.as_markup())


async def outdated(query: CallbackQuery, i18n: I18nContext, member: Member,
                   storefront: Storefront, accounts: Accounts, answer: CallbackAnswer,
                   state: FSMContext) -> None:
    """Tell the user the button is outdated and show the menu."""
    answer.text = i18n.get("ui-outdated")
    await show_menu(query, i18n, member, storefront, accounts, text=i18n.get("ui-outdated"),
                    state=state)


@router.message(CommandStart())
async def start(message: Message, command: CommandObject, i18n: I18nContext, member: Member,
                storefront: Storefront, accounts: Accounts, state: FSMContext) -> None:
    """Greet the user with the menu; keep the deep-link payload of their first start."""
    if command.args and DEEP_LINK_RE.fullmatch(command.args):
        await accounts.remember_start_payload(member.user_id, command.args)
    key = "start-welcome" if member.created else "start-welcome-back"
    wallet = await member.wallet()
    text = i18n.get(key, name=member.first_name, balance=rubles(wallet.balance_kop))
    await show_menu(message, i18n, member, storefront, accounts, text=text, state=state,
                    wallet=wallet)


@router.message(Command("menu"))
async def menu_command(message: Message, i18n: I18nContext, member: Member,
                       storefront: Storefront, accounts: Accounts, state: FSMContext) -> None:
    """Show the menu."""
    await show_menu(message, i18n, member, storefront, accounts, state=state)


@router.callback_query(MenuCb.filter())
async def menu_button(query: CallbackQuery, i18n: I18nContext, member: Member,
                      storefront: Storefront, accounts: Accounts, state: FSMContext) -> None:
    """Show the menu in place of the pressed screen."""
    await show_menu(query, i18n, member, storefront, accounts, state=state)
