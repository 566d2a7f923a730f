"""Send the queued messages about payments (leader only): an outbox retried until done.

Overview
    A decision (or a receipt, a cancel, an expiry) commits its `payment_notices` rows with
    the payment's new state. `NoticeSender.send_due` leases due rows to its term (FOR UPDATE
    SKIP LOCKED; `leased_term`, and `leased_until` = now + LEASE_S), sends each through the
    Bot API, and records the outcome in its own fenced transaction. Handlers call it for
    their payment right after their commit (the operators' messages change at once); the
    leader's sweep job calls it for everything left over.

Kinds
    operator_receipt   the receipt (photo or document) with Approve / Another amount /
                       Reject; sent without buttons, showing the outcome, if the payment was
                       decided before it went out
    operator_decision  that message's caption edited to show who decided and how
    user_decision      the user told the outcome

Failure handling
    Network errors, 5xx and 429 (after the Bot's own retries) put the notice back with a
    backoff (RETRY_BASE_S doubling up to RETRY_MAX_S), for ever: Telegram comes back. A
    refusal that no retry can change (the user blocked the bot, the message is gone) fails
    the notice for good, keeping the error. An edit to identical content counts as sent.

Leases
    A lease belongs to a term: a notice leased by an older term is free to a newer one at
    once (the leader that leased it is dead or deposed, and its fenced record can no longer
    commit), so a failover sends the dead leader's notices at the new leader's first sweep.
    The time lease is only the backstop inside one term (the sweep job restarted while its
    sender was mid-send) and carries the retry backoff, which belongs to no term.

Crash analysis
    Before the send: the next leader's first sweep sends it (within one term: once the time
    lease runs out). Between the send and
    its record: the next sweep sends it again (an edit is harmless; a receipt or a user
    message may show twice: at-least-once, like every Bot API call of the dispatcher).
    Recording a sent receipt locks the payment row FOR SHARE first: a decision committed
    before it sees its message id and queues the edit, and one committing after it finds the
    message id; either way each operator's message is edited to the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from psycopg_pool import AsyncConnectionPool

from services.payments.store import (
    Notice,
    NoticeKind,
    Payment,
    PaymentStatus,
    PaymentStore,
    ReceiptKind,
)
from services.telegram import texts
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

# A sender that died mid-send frees its notices after this long within its term (a newer
# term takes them over at once).
LEASE_S = 30.0
RETRY_BASE_S = 2.0
RETRY_MAX_S = 300.0
# Notices one sweep sends at most (the rest wait for the next sweep).
SWEEP_LIMIT = 100
NOT_MODIFIED = "message is not modified"
DATE_FORMAT = "%d.%m.%Y %H:%M UTC"


class ApproveCb(CallbackData, prefix="pok"):
    """An operator approves the amount the user asked."""

    payment: int


class AmendCb(CallbackData, prefix="pam"):
    """An operator approves another amount (asked for next)."""

    payment: int


class RejectCb(CallbackData, prefix="pno"):
    """An operator rejects (the reason is asked for next)."""

    payment: int


def review_keyboard(payment: Payment, language: str) -> InlineKeyboardMarkup:
    """Return the operator's decision buttons of a pending payment."""
    def label(key: str) -> str:
        return texts.get(language, key)

    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=label("review-approve"),
                              callback_data=ApproveCb(payment=payment.id).pack())],
        [InlineKeyboardButton(text=label("review-amend"),
                              callback_data=AmendCb(payment=payment.id).pack()),
         InlineKeyboardButton(text=label("review-reject"),
                              callback_data=RejectCb(payment=payment.id).pack())]])


def review_caption(payment: Payment, language: str) -> str:
    """Return the operator's caption of a payment: the request, and the outcome once decided."""
    lines = [texts.get(language, "review-caption", id=str(payment.id),
                       amount=texts.rubles(payment.amount_kop), user=str(payment.user_id),
                       reference=payment.reference or "-",
                       date=payment.created_at.strftime(DATE_FORMAT))]
    operator = payment.decided_by_name or str(payment.decided_by or "")
    if payment.status is PaymentStatus.APPROVED:
        lines.append(texts.get(language, "review-approved", operator=operator,
                               amount=texts.rubles(payment.credited_kop or 0)))
    elif payment.status is PaymentStatus.REJECTED:
        lines.append(texts.get(language, "review-rejected", operator=operator,
                               reason=payment.decision_note or ""))
    elif payment.status is PaymentStatus.CANCELLED:
        lines.append(texts.get(language, "review-cancelled"))
    elif payment.status is PaymentStatus.EXPIRED:
        lines.append(texts.get(language, "review-expired"))
    return "\n".join(lines)


def user_text(payment: Payment, language: str) -> str:
    """Return what the user is told about their payment's outcome."""
    if payment.status is PaymentStatus.APPROVED:
        return texts.get(language, "topup-user-approved", id=str(payment.id),
                         amount=texts.rubles(payment.credited_kop or 0))
    if payment.status is PaymentStatus.REJECTED:
        return texts.get(language, "topup-user-rejected", id=str(payment.id),
                         reason=payment.decision_note or "")
    return texts.get(language, "topup-user-expired", id=str(payment.id))


class NoticeSender:
    """Send due payment notices through the Bot API, recording each outcome fenced."""

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, *,
                 leadership: Callable[[], Leadership | None]) -> None:
        self._pool = pool
        self._bot = bot
        self._leadership = leadership

    async def send_due(self, leadership: Leadership | None = None, *,
                       payment_id: int | None = None, limit: int = SWEEP_LIMIT) -> int:
        """Send the due notices (of one payment, or any); return how many were sent."""
        leader = leadership or self._leadership()
        if leader is None:
            return 0
        async with leader.fenced(self._pool) as conn:
            notices = await PaymentStore(conn).lease_notices(
                term=leader.term, payment_id=payment_id, limit=limit, lease_s=LEASE_S)
        sent = 0
        for notice in notices:
            sent += await self._send(leader, notice)
        return sent

    async def _send(self, leader: Leadership, notice: Notice) -> int:
        async with self._pool.connection() as conn:
            payment = await PaymentStore(conn).payment(notice.payment_id)
        assert payment is not None, "a notice references its payment"
        try:
            message_id = await self._deliver(notice, payment)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in str(exc):
                message_id = None
            else:
                return await self._give_up(leader, notice, exc)
        except TelegramForbiddenError as exc:
            return await self._give_up(leader, notice, exc)
        except TelegramAPIError as exc:
            delay = min(RETRY_BASE_S * 2 ** (notice.attempts - 1), RETRY_MAX_S)
            logger.warning("payment_notice_retry", extra={
                "notice_id": notice.id, "kind": str(notice.kind), "attempt": notice.attempts,
                "next_delay_s": delay, "error": str(exc)[:200]})
            async with leader.fenced(self._pool) as conn:
                await PaymentStore(conn).mark_notice_retry(notice.id, delay_s=delay,
                                                           error=str(exc)[:500])
            return 0
        edits = 0
        async with leader.fenced(self._pool) as conn:
            store = PaymentStore(conn)
            if notice.kind is NoticeKind.OPERATOR_RECEIPT:
                await store.lock_payment_shared(notice.payment_id)
            await store.mark_notice_sent(notice.id, message_id=message_id)
            if notice.kind is NoticeKind.OPERATOR_RECEIPT:
                edits = await store.insert_decision_edits(notice.payment_id)
        if edits:  # decided while its receipt was on the way: show the decision now
            await self.send_due(leader, payment_id=notice.payment_id)
        return 1

    async def _deliver(self, notice: Notice, payment: Payment) -> int | None:
        """Make the Bot API call of one notice; return the message id it made, if any."""
        language = notice.language
        if notice.kind is NoticeKind.USER_DECISION:
            await self._bot.send_message(notice.chat_id, user_text(payment, language))
            return None
        caption = review_caption(payment, language)
        if notice.kind is NoticeKind.OPERATOR_DECISION:
            assert notice.message_id is not None
            await self._bot.edit_message_caption(chat_id=notice.chat_id,
                                                 message_id=notice.message_id,
                                                 caption=caption, reply_markup=None)
            return None
        markup = review_keyboard(payment, language) if (
            payment.status is PaymentStatus.PENDING) else None
        assert payment.receipt_file_id is not None
        message: Message
        if payment.receipt_kind is ReceiptKind.DOCUMENT:
            message = await self._bot.send_document(notice.chat_id, payment.receipt_file_id,
                                                    caption=caption, reply_markup=markup)
        else:
            message = await self._bot.send_photo(notice.chat_id, payment.receipt_file_id,
                                                 caption=caption, reply_markup=markup)
        return message.message_id

    async def _give_up(self, leader: Leadership, notice: Notice, exc: Exception) -> int:
        logger.warning("payment_notice_failed", extra={
            "notice_id": notice.id, "kind": str(notice.kind), "error": str(exc)[:200]})
        async with leader.fenced(self._pool) as conn:
            await PaymentStore(conn).mark_notice_failed(notice.id, error=str(exc)[:500])
        return 0
