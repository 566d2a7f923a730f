"""Payments: the product service bot handlers (and the operators' console) use for money in.

Handlers get a `Payments`, never the pool or the settings. Each write is one fenced unit of
work under the current leadership (decisions.py has the crash analysis of each), then the
payment's queued notices are sent at once (`NoticeSender`); what a crash or an outage left
unsent is swept by the leader's `payment_notices` job. `payment_jobs` also expires pending
transfers and sends Stars refunds until Telegram confirms them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from psycopg_pool import AsyncConnectionPool

from services.maintenance import ScheduledJob
from services.payments import decisions
from services.payments.decisions import Decision, DecisionResult, Receipt, ReceiptResult
from services.payments.notices import NoticeSender
from services.payments.stars import StarPackage, packages
from services.payments.store import Payment, PaymentStore
from services.telegram.i18n import chat_languages
from services.users import Language
from supervisor.election import FencedError, Leadership

logger = logging.getLogger(__name__)

# Unsent notices are swept this often (a decision's own notices go out at once).
NOTICE_SWEEP_EVERY_S = 5.0
EXPIRE_EVERY_S = 60.0
EXPIRE_BATCH = 500
REFUND_EVERY_S = 10.0
REFUND_BATCH = 50
# Telegram's answer when the charge was refunded before: the refund is done.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
# A transfer reference: "KB-" and 8 characters without look-alikes (0/O, 1/I).
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERENCE_CHARS = 8
# Amounts offered as buttons, in roubles.
PRESETS_RUB = (100, 300, 500, 1000, 3000)


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """What the payment screens show and accept (from the settings)."""

    operators: tuple[int, ...]
    bank: str
    card_holder: str
    phone: str
    card: str | None
    min_rub: int
    max_rub: int
    pending_s: float
    stars_rub_rate: Decimal | None  # None: Stars are off

    def presets_rub(self) -> list[int]:
        """Return the preset amounts within the limits."""
        return [rub for rub in PRESETS_RUB if self.min_rub <= rub <= self.max_rub]

    def star_packages(self) -> list[StarPackage]:
        """Return the Stars packages (none when Stars are off)."""
        return packages(self.stars_rub_rate) if self.stars_rub_rate else []


def new_reference() -> str:
    """Return a fresh transfer reference for the user to put in the transfer comment."""
    return "KB-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_CHARS))


class Payments:
    """Take receipts, let operators decide, credit Stars, and deliver what follows."""

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, terms: PaymentTerms, *,
                 leadership: Callable[[], Leadership | None]) -> None:
        self._pool = pool
        self._bot = bot
        self.terms = terms
        self._leadership = leadership
        self.notices = NoticeSender(pool, bot, leadership=leadership)

    def is_operator(self, user_id: int) -> bool:
        """Tell whether this Telegram user may decide payments."""
        return user_id in self.terms.operators

    async def operator_languages(self) -> dict[int, Language]:
        """Return the language each operator is written to in (see `chat_languages`)."""
        async with self._pool.connection() as conn:
            return await chat_languages(conn, self.terms.operators)

    def _fenced(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        return leadership.fenced(self._pool)

    async def submit_receipt(self, *, user_id: int, amount_kop: int, reference: str,
                             receipt: Receipt, idempotency_key: str) -> ReceiptResult:
        """Record the user's receipt as a pending payment and send it to every operator."""
        async with self._fenced() as conn:
            result = await decisions.record_receipt(
                conn, user_id=user_id, amount_kop=amount_kop, reference=reference,
                receipt=receipt, idempotency_key=idempotency_key,
                pending_s=self.terms.pending_s, operators=self.terms.operators)
        if result.payment is not None:
            await self.notices.send_due(payment_id=result.payment.id)
        return result

    async def decide(self, payment_id: int, *, operator_id: int, operator_name: str | None,
                     decision: Decision, amount_kop: int | None = None,
                     reason: str | None = None) -> DecisionResult | None:
        """Decide a pending transfer as an operator; None for anyone else (nothing changes)."""
        if not self.is_operator(operator_id):
            logger.warning("payment_decision_refused", extra={
                "payment_id": payment_id, "user_id": operator_id})
            return None
        async with self._fenced() as conn:
            result = await decisions.decide(conn, payment_id, decision=decision,
                                            operator_id=operator_id,
                                            operator_name=operator_name,
                                            amount_kop=amount_kop, reason=reason)
        if result.applied:
            logger.info("payment_decided", extra={
                "payment_id": payment_id, "decision": str(decision),
                "operator_id": operator_id, "credited_kop": result.payment.credited_kop})
        await self.notices.send_due(payment_id=payment_id)
        return result

    async def cancel(self, payment_id: int, *, user_id: int) -> Payment | None:
        """Withdraw the user's pending payment; None when not theirs or decided already."""
        async with self._fenced() as conn:
            cancelled = await decisions.cancel(conn, payment_id, user_id=user_id)
        if cancelled is not None:
            await self.notices.send_due(payment_id=payment_id)
        return cancelled

    async def pending_of(self, user_id: int) -> list[Payment]:
        """Return the user's pending payments, oldest first."""
        async with self._pool.connection() as conn:
            return await PaymentStore(conn).user_pending(user_id)

    async def payment(self, payment_id: int) -> Payment | None:
        """Return one payment, or None."""
        async with self._pool.connection() as conn:
            return await PaymentStore(conn).payment(payment_id)

    async def credit_stars(self, *, user_id: int, stars: int, amount_kop: int, charge_id: str,
                           invoice_payload: str) -> DecisionResult:
        """Credit a successful Stars payment once per charge id."""
        async with self._fenced() as conn:
            result = await decisions.record_star_payment(
                conn, user_id=user_id, stars=stars, amount_kop=amount_kop,
                charge_id=charge_id, invoice_payload=invoice_payload)
        if result.applied:
            logger.info("stars_credited", extra={"payment_id": result.payment.id,
                                                 "stars": stars, "credited_kop": amount_kop})
        return result

    async def request_refund(self, payment_id: int, *, operator_id: int) -> Payment | None:
        """Refund a Stars payment as an operator (None for anyone else); sent by the job."""
        if not self.is_operator(operator_id):
            return None
        async with self._fenced() as conn:
            return await decisions.request_refund(conn, payment_id, operator_id)

    async def send_refunds(self, leadership: Leadership) -> int:
        """Call refundStarPayment for every refund not yet confirmed; return how many are done.

        Crash analysis: a crash after Telegram refunded and before the record leaves the row
        pending; the next run asks again and CHARGE_ALREADY_REFUNDED marks it done.
        """
        async with self._pool.connection() as conn:
            due = await PaymentStore(conn).due_refunds(limit=REFUND_BATCH)
        done = 0
        for refund in due:
            try:
                await self._bot.refund_star_payment(
                    user_id=refund.user_id,
                    telegram_payment_charge_id=refund.telegram_payment_charge_id)
            except TelegramBadRequest as exc:
                if ALREADY_REFUNDED not in str(exc):
                    await self._refund_failed(leadership, refund.payment_id, exc)
                    continue
            except TelegramAPIError as exc:
                await self._refund_failed(leadership, refund.payment_id, exc)
                continue
            async with leadership.fenced(self._pool) as conn:
                await PaymentStore(conn).mark_refund_done(refund.payment_id)
            logger.info("stars_refunded", extra={"payment_id": refund.payment_id})
            done += 1
        return done

    async def _refund_failed(self, leadership: Leadership, payment_id: int,
                             exc: Exception) -> None:
        logger.warning("stars_refund_retry", extra={"payment_id": payment_id,
                                                    "error": str(exc)[:200]})
        async with leadership.fenced(self._pool) as conn:
            await PaymentStore(conn).mark_refund_retry(payment_id, error=str(exc)[:500])

    async def expire(self, leadership: Leadership) -> int:
        """Expire pending transfers past PAYMENT_PENDING_HOURS; return how many."""
        async with leadership.fenced(self._pool) as conn:
            expired = await decisions.expire_overdue(conn, limit=EXPIRE_BATCH)
        if expired:
            logger.info("payments_expired", extra={"count": len(expired)})
            await self.notices.send_due(leadership)
        return len(expired)

    def jobs(self) -> Sequence[ScheduledJob]:
        """Return the payments area's scheduled jobs (leader only)."""

        async def sweep_notices(leadership: Leadership) -> int:
            return await self.notices.send_due(leadership)

        return [ScheduledJob("payment_notices", NOTICE_SWEEP_EVERY_S, sweep_notices),
                ScheduledJob("expire_payments", EXPIRE_EVERY_S, self.expire),
                ScheduledJob("star_refunds", REFUND_EVERY_S, self.send_refunds)]
