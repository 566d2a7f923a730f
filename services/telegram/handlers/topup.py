"""Top-up by bank transfer, and the operators' review of the receipts.

The user: Top up -> an amount (a preset or typed within TOPUP_MIN_RUB..TOPUP_MAX_RUB) -> the
bank details and a unique reference for the transfer comment -> the receipt (a photo or a
PDF) -> a pending payment, sent to every operator. Pending top-ups are listed on the top-up
screen, each with its Cancel button.

An operator (ADMIN_ID): Approve, Another amount (typed next) or Reject (the reason typed
next) under the receipt. `Payments.decide` moves the payment once whoever presses first; the
receipt messages of every operator are then edited to show who decided, and the user is
told. A press on a payment decided before changes nothing; a press by anyone else changes
nothing and shows nothing (the press is answered empty).
"""

from __future__ import annotations

import hashlib

from aiogram import F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.payments.decisions import Decision, Receipt, ReceiptOutcome
from services.payments.notices import AmendCb, ApproveCb, RejectCb
from services.payments.service import REFERENCE_ALPHABET, REFERENCE_CHARS, Payments
from services.payments.store import ReceiptKind
from services.storefront import Storefront
from services.telegram.handlers.menu import outdated
from services.telegram.handlers.stars import StarsCb
from services.telegram.texts import rubles
from services.telegram.ui import (
    TopUpCb,
    add_menu_button,
    button,
    leave_prompt,
    menu_only,
    show,
)

router = Router(name=__name__)

# Receipts the operators can open in Telegram: any picture, or a PDF sent as a document.
RECEIPT_MIME_TYPES = frozenset({"application/pdf"})
RECEIPT_MIME_PREFIX = "image/"
# The largest amount an operator may credit by typing (a typo guard), in roubles.
MAX_AMEND_RUB = 1_000_000
QUOTE_MAX_CHARS = 40
AMOUNT_KEY = "topup_amount_kop"
REFERENCE_KEY = "topup_reference"
PAYMENT_KEY = "review_payment"


class TopUp(StatesGroup):
    """The user's top-up prompts."""

    amount = State()   # typing an amount
    receipt = State()  # the transfer instructions shown; the receipt is awaited


class Review(StatesGroup):
    """The operator's prompts after Another amount / Reject."""

    amount = State()  # typing the amount to credit
    reason = State()  # typing the reason of a rejection


class AmountCb(CallbackData, prefix="tamt"):
    """Top up this many roubles (a preset)."""

    rub: int


class OtherAmountCb(CallbackData, prefix="toth"):
    """Ask for an amount to type."""


class CancelTopUpCb(CallbackData, prefix="tcan"):
    """Withdraw this pending top-up."""

    payment: int


def reference_for(user_id: int, press_id: str) -> str:
    """Return the transfer reference of one press (its re-run shows the same one)."""
    digest = hashlib.sha256(f"{user_id}:{press_id}".encode()).digest()
    chars = "".join(REFERENCE_ALPHABET[b % len(REFERENCE_ALPHABET)] for b in digest)
    return "KB-" + chars[:REFERENCE_CHARS]


def parse_rub(text: str) -> int | None:
    """Return a whole number of roubles typed by a person ("1 000", "500 ₽"), or None."""
    cleaned = text.replace(" ", "").replace("\u00a0", "").removesuffix("₽").removesuffix("р")
    return int(cleaned) if cleaned.isdigit() and len(cleaned) <= 9 else None


def quote(text: str) -> str:
    """Return the user's words cut to QUOTE_MAX_CHARS."""
    return text if len(text) <= QUOTE_MAX_CHARS else text[:QUOTE_MAX_CHARS - 1] + "…"


async def topup_screen(target: Message | CallbackQuery, i18n: I18nContext, member: Member,
                       accounts: Accounts, payments: Payments) -> None:
    """Show the amounts, Stars when on, and the user's pending top-ups with Cancel."""
    terms = payments.terms
    wallet = await member.wallet()
    parts = [i18n.get("topup-title", balance=rubles(wallet.balance_kop),
                      min=rubles(terms.min_rub * 100), max=rubles(terms.max_rub * 100))]
    kb = InlineKeyboardBuilder()
    for rub in terms.presets_rub():
        kb.button(text=i18n.get("topup-preset", amount=rubles(rub * 100)),
                  callback_data=AmountCb(rub=rub))
    kb.adjust(3)
    kb.row(button(i18n.get("topup-other"), OtherAmountCb()))
    if terms.stars_rub_rate is not None:
        parts.append(i18n.get("topup-title-stars"))
        kb.row(button(i18n.get("topup-stars"), StarsCb()))
    for payment in await payments.pending_of(member.user_id):
        parts.append(i18n.get("topup-pending-line", id=str(payment.id),
                              amount=rubles(payment.amount_kop)))
        kb.row(button(i18n.get("topup-cancel", id=str(payment.id)),
                      CancelTopUpCb(payment=payment.id)))
    await show(target, "\n\n".join(parts), add_menu_button(kb, i18n).as_markup())


async def show_instructions(target: Message | CallbackQuery, i18n: I18nContext,
                            payments: Payments, state: FSMContext, *, amount_kop: int,
                            reference: str) -> None:
    """Show the bank details and the reference, and wait for the receipt."""
    terms = payments.terms
    await state.set_state(TopUp.receipt)
    await state.update_data({AMOUNT_KEY: amount_kop, REFERENCE_KEY: reference})
    parts = [i18n.get("topup-instructions", amount=rubles(amount_kop), bank=terms.bank,
                      holder=terms.card_holder, phone=terms.phone)]
    if terms.card:
        parts.append(i18n.get("topup-card-line", card=terms.card))
    parts.append("")
    parts.append(i18n.get("topup-reference", reference=reference))
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("topup-back"), TopUpCb()))
    await show(target, "\n".join(parts), add_menu_button(kb, i18n).as_markup())


@router.callback_query(TopUpCb.filter())
async def top_up(query: CallbackQuery, i18n: I18nContext, member: Member, accounts: Accounts,
                 payments: Payments, state: FSMContext) -> None:
    """Open the top-up screen."""
    await leave_prompt(state)
    await topup_screen(query, i18n, member, accounts, payments)


@router.callback_query(AmountCb.filter())
async def preset(query: CallbackQuery, callback_data: AmountCb, i18n: I18nContext,
                 member: Member, storefront: Storefront, accounts: Accounts,
                 payments: Payments, callback_answer: CallbackAnswer,
                 state: FSMContext) -> None:
    """Show the transfer instructions for a preset amount."""
    if callback_data.rub not in payments.terms.presets_rub():
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    await show_instructions(query, i18n, payments, state, amount_kop=callback_data.rub * 100,
                            reference=reference_for(member.user_id, query.id))


@router.callback_query(OtherAmountCb.filter())
async def other_amount(query: CallbackQuery, i18n: I18nContext, payments: Payments,
                       state: FSMContext) -> None:
    """Ask for the amount to type."""
    terms = payments.terms
    await state.set_state(TopUp.amount)
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("topup-back"), TopUpCb()))
    await show(query, i18n.get("topup-ask-amount", min=rubles(terms.min_rub * 100),
                               max=rubles(terms.max_rub * 100)),
               add_menu_button(kb, i18n).as_markup())


@router.message(TopUp.amount, F.text)
async def typed_amount(message: Message, i18n: I18nContext, member: Member,
                       payments: Payments, state: FSMContext) -> None:
    """Take a typed amount within the limits, or say which rule it breaks."""
    terms = payments.terms
    rub = parse_rub(message.text or "")
    if rub is None or not terms.min_rub <= rub <= terms.max_rub:
        await message.answer(i18n.get("topup-bad-amount", text=quote(message.text or ""),
                                      min=rubles(terms.min_rub * 100),
                                      max=rubles(terms.max_rub * 100)),
                             reply_markup=menu_only(i18n))
        return
    await show_instructions(message, i18n, payments, state, amount_kop=rub * 100,
                            reference=reference_for(member.user_id, str(message.message_id)))


def receipt_of(message: Message) -> Receipt | None:
    """Return the receipt a message carries (a photo, a PDF or a picture file), or None."""
    if message.photo:
        largest = message.photo[-1]
        return Receipt(largest.file_id, largest.file_unique_id, ReceiptKind.PHOTO)
    document = message.document
    if document is not None and (document.mime_type in RECEIPT_MIME_TYPES or (
            document.mime_type or "").startswith(RECEIPT_MIME_PREFIX)):
        return Receipt(document.file_id, document.file_unique_id, ReceiptKind.DOCUMENT)
    return None


@router.message(TopUp.receipt)
async def receipt(message: Message, i18n: I18nContext, member: Member, payments: Payments,
                  state: FSMContext) -> None:
    """Record the receipt as a pending payment for the operators (once per message)."""
    found = receipt_of(message)
    data = await state.get_data()
    if found is None or AMOUNT_KEY not in data:
        await message.answer(i18n.get("topup-receipt-expected"), reply_markup=menu_only(i18n))
        return
    result = await payments.submit_receipt(
        user_id=member.user_id, amount_kop=int(data[AMOUNT_KEY]),
        reference=str(data[REFERENCE_KEY]), receipt=found,
        idempotency_key=f"receipt:{message.chat.id}:{message.message_id}")
    kb = InlineKeyboardBuilder()
    if result.outcome is ReceiptOutcome.RECEIPT_USED:
        await message.answer(i18n.get("topup-receipt-used"),
                             reply_markup=add_menu_button(kb, i18n).as_markup())
        return
    await state.set_state(None)
    assert result.payment is not None
    if result.outcome is ReceiptOutcome.REFERENCE_USED:
        text = i18n.get("topup-reference-used", reference=str(data[REFERENCE_KEY]))
    else:
        text = i18n.get("topup-received", id=str(result.payment.id),
                        amount=rubles(result.payment.amount_kop))
    kb.row(button(i18n.get("menu-topup"), TopUpCb()))
    await message.answer(text, reply_markup=add_menu_button(kb, i18n).as_markup())


@router.callback_query(CancelTopUpCb.filter())
async def cancel(query: CallbackQuery, callback_data: CancelTopUpCb, i18n: I18nContext,
                 member: Member, accounts: Accounts, payments: Payments,
                 callback_answer: CallbackAnswer) -> None:
    """Withdraw a pending top-up of the user's own."""
    cancelled = await payments.cancel(callback_data.payment, user_id=member.user_id)
    key = "topup-cancelled" if cancelled is not None else "topup-cancel-late"
    callback_answer.text = i18n.get(key, id=str(callback_data.payment))
    await topup_screen(query, i18n, member, accounts, payments)


# ---- the operators' side ----

def _not_operator(member: Member, payments: Payments) -> bool:
    # An old forwarded button or a former operator: nothing happens and nothing is shown (the
    # press is answered empty), as with the console's buttons; the payment is not revealed.
    return not payments.is_operator(member.user_id)


@router.callback_query(ApproveCb.filter())
async def approve(query: CallbackQuery, callback_data: ApproveCb, i18n: I18nContext,
                  member: Member, payments: Payments, callback_answer: CallbackAnswer) -> None:
    """Credit the amount asked (once, whoever presses first)."""
    if _not_operator(member, payments):
        return
    result = await payments.decide(callback_data.payment, operator_id=member.user_id,
                                   operator_name=member.first_name, decision=Decision.APPROVE)
    applied = result is not None and result.applied
    callback_answer.text = i18n.get("review-done" if applied else "review-already")


@router.callback_query(AmendCb.filter())
async def amend(query: CallbackQuery, callback_data: AmendCb, i18n: I18nContext,
                member: Member, storefront: Storefront, accounts: Accounts,
                payments: Payments, callback_answer: CallbackAnswer,
                state: FSMContext) -> None:
    """Ask the operator for the amount to credit."""
    await _ask(query, callback_data.payment, Review.amount, "review-ask-amount", i18n, member,
               storefront, accounts, payments, callback_answer, state)


@router.callback_query(RejectCb.filter())
async def reject(query: CallbackQuery, callback_data: RejectCb, i18n: I18nContext,
                 member: Member, storefront: Storefront, accounts: Accounts,
                 payments: Payments, callback_answer: CallbackAnswer,
                 state: FSMContext) -> None:
    """Ask the operator for the reason of the rejection."""
    await _ask(query, callback_data.payment, Review.reason, "review-ask-reason", i18n, member,
               storefront, accounts, payments, callback_answer, state)


async def _ask(query: CallbackQuery, payment_id: int, prompt: State, key: str,
               i18n: I18nContext, member: Member, storefront: Storefront, accounts: Accounts,
               payments: Payments, answer: CallbackAnswer, state: FSMContext) -> None:
    if _not_operator(member, payments):
        return
    payment = await payments.payment(payment_id)
    if payment is None:
        await outdated(query, i18n, member, storefront, accounts, answer, state)
        return
    await state.set_state(prompt)
    await state.update_data({PAYMENT_KEY: payment_id})
    if query.message is not None and query.bot is not None:
        await query.bot.send_message(query.message.chat.id, i18n.get(
            key, id=str(payment_id), amount=rubles(payment.amount_kop)),
            reply_markup=menu_only(i18n))


@router.message(Review.amount, F.text)
async def amended_amount(message: Message, i18n: I18nContext, member: Member,
                         payments: Payments, state: FSMContext) -> None:
    """Credit the typed amount instead of the one asked."""
    rub = parse_rub(message.text or "")
    if rub is None or not 1 <= rub <= MAX_AMEND_RUB:
        await message.answer(i18n.get("review-bad-amount", max=rubles(MAX_AMEND_RUB * 100)),
                             reply_markup=menu_only(i18n))
        return
    await _decide_typed(message, i18n, member, payments, state, Decision.AMEND,
                        amount_kop=rub * 100)


@router.message(Review.reason, F.text)
async def rejection_reason(message: Message, i18n: I18nContext, member: Member,
                           payments: Payments, state: FSMContext) -> None:
    """Reject with the typed reason."""
    await _decide_typed(message, i18n, member, payments, state, Decision.REJECT,
                        reason=message.text)


async def _decide_typed(message: Message, i18n: I18nContext, member: Member,
                        payments: Payments, state: FSMContext, decision: Decision, *,
                        amount_kop: int | None = None, reason: str | None = None) -> None:
    payment_id = (await state.get_data()).get(PAYMENT_KEY)
    await state.set_state(None)
    if payment_id is None:
        return
    result = await payments.decide(int(payment_id), operator_id=member.user_id,
                                   operator_name=member.first_name, decision=decision,
                                   amount_kop=amount_kop, reason=reason)
    applied = result is not None and result.applied
    await message.answer(i18n.get("review-done" if applied else "review-already"),
                         reply_markup=menu_only(i18n))
