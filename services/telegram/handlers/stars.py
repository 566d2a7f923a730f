"""Top-up with Telegram Stars (XTR), and /paysupport.

Telegram's rules: digital goods sold inside Telegram are paid in Stars, and a bot that takes
payments answers /paysupport. A package button sends an XTR invoice (one price item, no
provider token, our payload); Telegram then asks us to confirm the checkout
(pre_checkout_query), which must be answered within 10 s or the payment fails: the check
reads nothing from the database, and the inbox claims these updates ahead of its backlog.
`successful_payment` credits the balance once per telegram_payment_charge_id, however often
Telegram delivers it.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.payments.service import Payments
from services.payments.stars import CURRENCY, check_checkout, parse_payload
from services.storefront import Storefront
from services.telegram import texts
from services.telegram.handlers.menu import outdated
from services.telegram.handlers.support import Support
from services.telegram.texts import rubles
from services.telegram.ui import TopUpCb, add_menu_button, button, menu_only, show

router = Router(name=__name__)


class StarsCb(CallbackData, prefix="xtr"):
    """Open the Stars packages."""


class StarPackCb(CallbackData, prefix="xtrp"):
    """Send the invoice of the package of this many stars."""

    stars: int


@router.callback_query(StarsCb.filter())
async def packages(query: CallbackQuery, i18n: I18nContext, payments: Payments) -> None:
    """Show the Stars packages (or that Stars are off)."""
    rate = payments.terms.stars_rub_rate
    kb = InlineKeyboardBuilder()
    if rate is None:
        kb.row(button(i18n.get("menu-topup"), TopUpCb()))
        await show(query, i18n.get("stars-off"), add_menu_button(kb, i18n).as_markup())
        return
    for package in payments.terms.star_packages():
        kb.button(text=i18n.get("stars-package", stars=str(package.stars),
                                amount=rubles(package.credit_kop)),
                  callback_data=StarPackCb(stars=package.stars))
    kb.adjust(2)
    kb.row(button(i18n.get("ui-back"), TopUpCb()))
    await show(query, i18n.get("stars-title", rate=str(rate)),
               add_menu_button(kb, i18n).as_markup())


@router.callback_query(StarPackCb.filter())
async def invoice(query: CallbackQuery, callback_data: StarPackCb, i18n: I18nContext,
                  member: Member, storefront: Storefront, accounts: Accounts,
                  payments: Payments, callback_answer: CallbackAnswer,
                  state: FSMContext) -> None:
    """Send the XTR invoice of one package."""
    package = next((p for p in payments.terms.star_packages()
                    if p.stars == callback_data.stars), None)
    if package is None or query.message is None or query.bot is None:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    amount = rubles(package.credit_kop)
    await query.bot.send_invoice(
        query.message.chat.id, title=i18n.get("stars-invoice-title", amount=amount),
        description=i18n.get("stars-invoice-description", stars=str(package.stars),
                             amount=amount),
        payload=package.payload(), currency=CURRENCY,
        prices=[LabeledPrice(label=i18n.get("stars-invoice-label", amount=amount),
                             amount=package.stars)])


@router.pre_checkout_query()
async def pre_checkout(query: PreCheckoutQuery, i18n: I18nContext, payments: Payments) -> None:
    """Accept a checkout of one of our packages at today's rate; refuse anything else."""
    rate = payments.terms.stars_rub_rate
    refusal = check_checkout(payload=query.invoice_payload, currency=query.currency,
                             total_amount=query.total_amount,
                             rub_per_star=rate) if rate is not None else None
    if rate is None:
        await query.answer(ok=False, error_message=i18n.get("stars-off"))
    elif refusal is not None:
        await query.answer(ok=False, error_message=i18n.get(
            "stars-refused-" + str(refusal).replace("_", "-")))
    else:
        await query.answer(ok=True)


@router.message(F.successful_payment)
async def paid(message: Message, i18n: I18nContext, member: Member,
               payments: Payments) -> None:
    """Credit the stars once per charge id and say so."""
    charge = message.successful_payment
    assert charge is not None
    package = parse_payload(charge.invoice_payload)
    if package is None or charge.currency != CURRENCY:
        # Checked at pre-checkout; a charge we cannot read is the operators' case.
        await message.answer(i18n.get("paysupport-no-contact"), reply_markup=menu_only(i18n))
        return
    result = await payments.credit_stars(
        user_id=member.user_id, stars=charge.total_amount, amount_kop=package.credit_kop,
        charge_id=charge.telegram_payment_charge_id, invoice_payload=charge.invoice_payload)
    amount = rubles(result.payment.credited_kop or 0)
    key = "stars-credited" if result.applied else "stars-credited-again"
    await message.answer(i18n.get(key, stars=str(charge.total_amount), amount=amount),
                         reply_markup=menu_only(i18n))


@router.message(Command("paysupport"))
async def paysupport(message: Message, command: CommandObject, i18n: I18nContext,
                     member: Member, payments: Payments, support: Support) -> None:
    """Say how to get help with a payment; with words after it, pass them to the operators."""
    if command.args and message.bot is not None:
        languages = await payments.operator_languages()
        for operator in payments.terms.operators:  # each in the operator's own language
            await message.bot.send_message(operator, texts.get(
                languages[operator], "paysupport-to-operator", user=str(member.user_id),
                text=command.args))
        await message.answer(i18n.get("paysupport-forwarded"), reply_markup=menu_only(i18n))
        return
    if support.username:
        text = i18n.get("paysupport", contact="@" + support.username)
    else:
        text = i18n.get("paysupport-no-contact")
    await message.answer(text, reply_markup=menu_only(i18n))
