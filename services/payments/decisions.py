"""Money in, on the caller's connection: receipts, operators' decisions, Stars charges, refunds.

Every function here runs inside the caller's transaction, which on the leader is ONE fenced
unit of work (`async with leadership.fenced(pool) as conn:`); the state change, its ledger
entry, its audit row and the notices it queues commit together or not at all. The guard is
in each UPDATE's WHERE (`status = 'pending'` for a decision, `status = 'approved'` for a
refund), so of two operators pressing Approve at once exactly one moves the payment and
credits it; the other's UPDATE finds no pending row after the first commits and changes
nothing. The ledger's own guards (one top-up per payment, one entry per idempotency key)
are the second line: even a caller that skipped the status guard could not credit twice.

Crash analysis (any step): the transaction rolls back whole, so the payment is still pending
(or the charge unrecorded) and no money moved; the retry (the update re-run, the operator
pressing again) does it once. Messages are never sent inside the transaction: they are
queued as `payment_notices` rows and sent after the commit by `notices.NoticeSender`, so a
crash between the decision and the messages leaves the notices pending, and the next sweep
sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import psycopg

from services.billing.ledger import EntryKind, apply_entry
from services.payments.store import (
    AuditAction,
    NoticeKind,
    Payment,
    PaymentMethod,
    PaymentStatus,
    PaymentStore,
    ReceiptKind,
)
from services.telegram.i18n import chat_languages

# Operators' notes are kept short (a Telegram caption holds 1,024 characters in all).
MAX_NOTE_CHARS = 500


class PaymentError(Exception):
    """A payment operation was refused."""


class PaymentNotFound(PaymentError):
    """No payment has this id."""


class NotRefundable(PaymentError):
    """The payment is not an approved Stars payment."""


class ReceiptOutcome(StrEnum):
    """What became of a receipt the user sent."""

    RECORDED = "recorded"              # a new pending payment
    REPLAYED = "replayed"              # this very receipt message was recorded before
    RECEIPT_USED = "receipt_used"      # this file backs another payment: refused
    REFERENCE_USED = "reference_used"  # this reference has its receipt already


class Decision(StrEnum):
    """An operator's decision on a pending transfer."""

    APPROVE = "approve"  # credit the amount asked
    AMEND = "amend"      # credit another amount
    REJECT = "reject"    # refuse, with a reason


AUDIT_ACTIONS = {Decision.APPROVE: AuditAction.PAYMENT_APPROVE,
                 Decision.AMEND: AuditAction.PAYMENT_AMEND,
                 Decision.REJECT: AuditAction.PAYMENT_REJECT}


@dataclass(frozen=True, slots=True)
class Receipt:
    """The file a user sent as proof of their transfer."""

    file_id: str
    file_unique_id: str
    kind: ReceiptKind


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """The outcome of a receipt and the payment it concerns."""

    outcome: ReceiptOutcome
    payment: Payment | None


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """Whether this call decided the payment (False: it was decided before), and the row."""

    applied: bool
    payment: Payment


def subject(payment_id: int) -> str:
    """Return the audit subject of a payment."""
    return f"payment:{payment_id}"


def topup_key(payment_id: int) -> str:
    """Return the ledger idempotency key of a payment's top-up."""
    return f"payment:{payment_id}:topup"


async def record_receipt(conn: psycopg.AsyncConnection, *, user_id: int, amount_kop: int,
                         reference: str, receipt: Receipt, idempotency_key: str,
                         pending_s: float, operators: Sequence[int]) -> ReceiptResult:
    """Record a receipt as a pending payment and queue it to every operator.

    `idempotency_key` names the receipt message, so the same update re-run finds its payment.
    """
    store = PaymentStore(conn)
    payment = await store.insert_transfer(
        user_id=user_id, amount_kop=amount_kop, reference=reference,
        receipt_file_id=receipt.file_id, receipt_kind=receipt.kind,
        receipt_file_unique_id=receipt.file_unique_id, idempotency_key=idempotency_key,
        pending_s=pending_s)
    if payment is None:
        replay = await store.payment_by_key(idempotency_key)
        if replay is not None:
            return ReceiptResult(ReceiptOutcome.REPLAYED, replay)
        used = await store.live_payment_by_receipt(receipt.file_unique_id)
        if used is not None:
            return ReceiptResult(ReceiptOutcome.RECEIPT_USED, None)
        return ReceiptResult(ReceiptOutcome.REFERENCE_USED,
                             await store.payment_by_reference(reference))
    await store.insert_notices(payment.id, NoticeKind.OPERATOR_RECEIPT,
                               await _recipients(conn, operators))
    return ReceiptResult(ReceiptOutcome.RECORDED, payment)


async def decide(conn: psycopg.AsyncConnection, payment_id: int, *, decision: Decision,
                 operator_id: int, operator_name: str | None, amount_kop: int | None = None,
                 reason: str | None = None) -> DecisionResult:
    """Decide a pending transfer once: approve (or amend: credit `amount_kop`) or reject.

    The caller has checked that `operator_id` is an operator. Raise PaymentNotFound for an
    unknown id, ValueError for an amend without a positive amount or a reject without a
    reason. A payment decided before is returned as it is, with applied=False.
    """
    if decision is Decision.AMEND and (amount_kop is None or amount_kop <= 0):
        raise ValueError("an amended approval needs a positive amount")
    if decision is Decision.REJECT and not (reason and reason.strip()):
        raise ValueError("a rejection needs a reason")
    store = PaymentStore(conn)
    before = await store.payment(payment_id)
    if before is None:
        raise PaymentNotFound(f"no payment {payment_id}")
    credited = None
    if decision is Decision.APPROVE:
        credited = before.amount_kop
    elif decision is Decision.AMEND:
        credited = amount_kop
    status = PaymentStatus.REJECTED if decision is Decision.REJECT else PaymentStatus.APPROVED
    note = reason.strip()[:MAX_NOTE_CHARS] if reason else None
    after = await store.decide(payment_id, status=status, decided_by=operator_id,
                               decided_by_name=operator_name, note=note, credited_kop=credited)
    if after is None:
        now = await store.payment(payment_id)  # what the winner (or the expiry) made of it
        return DecisionResult(applied=False, payment=now or before)
    if credited is not None:
        await apply_entry(conn, user_id=after.user_id, kind=EntryKind.TOPUP,
                          balance_delta_kop=credited, hold_delta_kop=0,
                          idempotency_key=topup_key(payment_id), payment_id=payment_id,
                          note=f"{decision} by {operator_id}")
    await store.insert_audit(operator_id=operator_id, action=AUDIT_ACTIONS[decision],
                             subject=subject(payment_id), before=before.snapshot(),
                             after=after.snapshot())
    await _queue_outcome(conn, after, tell_user=True)
    return DecisionResult(applied=True, payment=after)


async def cancel(conn: psycopg.AsyncConnection, payment_id: int, *,
                 user_id: int) -> Payment | None:
    """Withdraw the user's own pending payment; None when not theirs or no longer pending."""
    store = PaymentStore(conn)
    cancelled = await store.cancel(payment_id, user_id=user_id)
    if cancelled is not None:
        await _queue_outcome(conn, cancelled, tell_user=False)  # they know: they pressed it
    return cancelled


async def expire_overdue(conn: psycopg.AsyncConnection, *, limit: int) -> list[Payment]:
    """Expire pending payments past their time; tell their users and operators."""
    store = PaymentStore(conn)
    expired = await store.expire_overdue(limit=limit)
    for payment in expired:
        await _queue_outcome(conn, payment, tell_user=True)
    return expired


async def record_star_payment(conn: psycopg.AsyncConnection, *, user_id: int, stars: int,
                              amount_kop: int, charge_id: str,
                              invoice_payload: str) -> DecisionResult:
    """Credit a Stars charge once per telegram_payment_charge_id (applied=False: a replay)."""
    store = PaymentStore(conn)
    key = f"stars:{charge_id}"
    payment = await store.insert_star_payment(
        user_id=user_id, amount_kop=amount_kop, stars=stars, charge_id=charge_id,
        invoice_payload=invoice_payload, idempotency_key=key)
    if payment is None:
        recorded = await store.payment_by_key(key)
        assert recorded is not None, "the charge id and its key are unique together"
        return DecisionResult(applied=False, payment=recorded)
    await apply_entry(conn, user_id=user_id, kind=EntryKind.TOPUP,
                      balance_delta_kop=amount_kop, hold_delta_kop=0,
                      idempotency_key=topup_key(payment.id), payment_id=payment.id,
                      note=f"{stars} stars")
    return DecisionResult(applied=True, payment=payment)


async def request_refund(conn: psycopg.AsyncConnection, payment_id: int,
                         operator_id: int) -> Payment:
    """Refund a Stars payment: debit what it credited, queue refundStarPayment, audit it.

    Raise PaymentNotFound, NotRefundable (not an approved Stars payment, e.g. refunded
    already), or billing's InsufficientFunds when the user has spent the money (then
    nothing changes: the debit aborts the whole transaction).
    """
    store = PaymentStore(conn)
    before = await store.payment(payment_id)
    if before is None:
        raise PaymentNotFound(f"no payment {payment_id}")
    after = await store.mark_refunded(payment_id)
    if after is None or after.method is not PaymentMethod.STARS:
        raise NotRefundable(f"payment {payment_id} is {before.method} {before.status}")
    assert after.credited_kop is not None and after.telegram_payment_charge_id is not None
    await apply_entry(conn, user_id=after.user_id, kind=EntryKind.ADJUSTMENT,
                      balance_delta_kop=-after.credited_kop, hold_delta_kop=0,
                      idempotency_key=f"payment:{payment_id}:refund", payment_id=payment_id,
                      note=f"stars refund by {operator_id}")
    await store.insert_refund(payment_id=payment_id, user_id=after.user_id,
                              charge_id=after.telegram_payment_charge_id,
                              requested_by=operator_id)
    await store.insert_audit(operator_id=operator_id, action=AuditAction.PAYMENT_REFUND,
                             subject=subject(payment_id), before=before.snapshot(),
                             after=after.snapshot())
    return after


async def _queue_outcome(conn: psycopg.AsyncConnection, payment: Payment, *,
                         tell_user: bool) -> None:
    store = PaymentStore(conn)
    await store.insert_decision_edits(payment.id)
    if tell_user:
        await store.insert_notices(payment.id, NoticeKind.USER_DECISION,
                                   await _recipients(conn, [payment.user_id]))


async def _recipients(conn: psycopg.AsyncConnection,
                      chat_ids: Sequence[int]) -> list[tuple[int, str]]:
    languages = await chat_languages(conn, chat_ids)
    return [(chat_id, str(languages[chat_id])) for chat_id in chat_ids]
