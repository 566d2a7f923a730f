"""/balance and the Balance button: the wallet, what is held, the latest operations in words."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.billing.ledger import LedgerLine
from services.telegram.texts import rubles
from services.telegram.ui import (
    BalanceCb,
    HistoryCb,
    TopUpCb,
    add_menu_button,
    button,
    leave_prompt,
    show,
)

router = Router(name=__name__)

STATEMENT_LINES = 10
DATE_FORMAT = "%d.%m %H:%M"


def line_text(i18n: I18nContext, line: LedgerLine) -> str:
    """Return one ledger entry in plain words (a settled hold shows what it charged)."""
    amount = line.balance_delta_kop or line.hold_delta_kop
    sign = "+" if amount > 0 else "−"
    return i18n.get("balance-line", date=line.created_at.strftime(DATE_FORMAT),
                    kind=str(line.kind), job=str(line.job_id or ""),
                    amount=sign + rubles(abs(amount)))


async def balance_screen(i18n: I18nContext, member: Member,
                         accounts: Accounts) -> tuple[str, InlineKeyboardBuilder]:
    """Return the balance text and its keyboard."""
    wallet = await member.wallet()
    lines = await accounts.statement(member.user_id, limit=STATEMENT_LINES)
    parts = [i18n.get("balance-text", balance=rubles(wallet.balance_kop),
                      hold=rubles(wallet.hold_kop)), ""]
    if lines:
        parts.append(i18n.get("balance-latest"))
        parts.extend(line_text(i18n, line) for line in lines)
    else:
        parts.append(i18n.get("balance-none"))
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("menu-topup"), TopUpCb()),
           button(i18n.get("menu-history"), HistoryCb()))
    return "\n".join(parts), add_menu_button(kb, i18n)


@router.message(Command("balance"))
async def balance_command(message: Message, i18n: I18nContext, member: Member,
                          accounts: Accounts, state: FSMContext) -> None:
    """Show the wallet from the database."""
    await leave_prompt(state)
    text, kb = await balance_screen(i18n, member, accounts)
    await show(message, text, kb.as_markup())


@router.callback_query(BalanceCb.filter())
async def balance_button(query: CallbackQuery, i18n: I18nContext, member: Member,
                         accounts: Accounts) -> None:
    """Show the wallet in place of the pressed screen."""
    text, kb = await balance_screen(i18n, member, accounts)
    await show(query, text, kb.as_markup())
