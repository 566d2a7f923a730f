"""The payments' queries (sql/payments.sql) on one connection, one method per query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "payments.sql")


class PaymentStatus(StrEnum):
    """Where a payment stands, mirrored by the CHECK on payments.status."""

    PENDING = "pending"      # receipt received, waiting for an operator
    APPROVED = "approved"    # credited (operator approved, or Telegram charged the stars)
    REJECTED = "rejected"    # an operator refused it (reason in decision_note)
    CANCELLED = "cancelled"  # the user withdrew it before a decision
    EXPIRED = "expired"      # no decision within PAYMENT_PENDING_HOURS
    REFUNDED = "refunded"    # Stars returned to the user


class PaymentMethod(StrEnum):
    """How the money came, mirrored by the CHECK on payments.method."""

    CARD_TRANSFER = "card_transfer"  # bank transfer with a receipt, decided by an operator
    SBP = "sbp"                      # the seed's SBP transfer (no new rows)
    STARS = "stars"                  # Telegram Stars, credited on successful_payment


class ReceiptKind(StrEnum):
    """What the user sent as a receipt, mirrored by the CHECK on payments.receipt_kind."""

    PHOTO = "photo"        # a photo (a screenshot of the transfer)
    DOCUMENT = "document"  # a PDF the bank issued


class NoticeKind(StrEnum):
    """Messages about a payment, mirrored by the CHECK on payment_notices.kind."""

    OPERATOR_RECEIPT = "operator_receipt"    # the receipt with the decision buttons
    OPERATOR_DECISION = "operator_decision"  # that message edited to show who decided
    USER_DECISION = "user_decision"          # the user told the outcome


class NoticeStatus(StrEnum):
    """Delivery of one notice, mirrored by the CHECK on payment_notices.status."""

    PENDING = "pending"  # to send (or being sent under a lease)
    SENT = "sent"        # Telegram confirmed
    FAILED = "failed"    # refused for good (the chat blocked the bot, the message is gone)


class RefundStatus(StrEnum):
    """A Stars refund, mirrored by the CHECK on star_refunds.status."""

    PENDING = "pending"  # to send
    DONE = "done"        # Telegram refunded (or had already)


class AuditAction(StrEnum):
    """Operator actions, mirrored by the CHECK on operator_audit.action."""

    PAYMENT_APPROVE = "payment_approve"  # credited the amount asked
    PAYMENT_AMEND = "payment_amend"      # credited another amount
    PAYMENT_REJECT = "payment_reject"    # refused, with a reason
    PAYMENT_REFUND = "payment_refund"    # Stars refund requested


@dataclass(frozen=True, slots=True)
class Payment:
    """One payments row."""

    id: int
    user_id: int
    amount_kop: int
    method: PaymentMethod
    status: PaymentStatus
    receipt_file_id: str | None
    idempotency_key: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: int | None
    reference: str | None
    receipt_kind: ReceiptKind | None
    receipt_file_unique_id: str | None
    credited_kop: int | None
    decided_by_name: str | None
    decision_note: str | None
    expires_at: datetime | None
    stars: int | None
    telegram_payment_charge_id: str | None
    invoice_payload: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Payment:
        """Build from a row with every column."""
        kind = row["receipt_kind"]
        return cls(**(row | {"method": PaymentMethod(row["method"]),
                             "status": PaymentStatus(row["status"]),
                             "receipt_kind": ReceiptKind(kind) if kind else None}))

    def snapshot(self) -> dict[str, Any]:
        """Return the fields an audit row keeps (JSON-ready)."""
        return {f.name: (v.isoformat() if isinstance(v, datetime) else v)
                for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class Notice:
    """One leased notice to send."""

    id: int
    payment_id: int
    kind: NoticeKind
    chat_id: int
    language: str
    message_id: int | None
    attempts: int
    status: NoticeStatus = NoticeStatus.PENDING
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DueRefund:
    """A refund still to confirm."""

    payment_id: int
    user_id: int
    telegram_payment_charge_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One operator decision as recorded."""

    operator_id: int
    action: AuditAction
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class PaymentStore:
    """The payments' queries on one connection (the caller owns the transaction)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def _one(self, query: str, params: dict[str, Any]) -> Payment | None:
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[query], params)
        row = await cur.fetchone()
        return Payment.of(row) if row else None

    async def _many(self, query: str, params: dict[str, Any]) -> list[Payment]:
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[query], params)
        return [Payment.of(row) for row in await cur.fetchall()]

    async def insert_transfer(self, *, user_id: int, amount_kop: int, reference: str,
                              receipt_file_id: str, receipt_kind: ReceiptKind,
                              receipt_file_unique_id: str, idempotency_key: str,
                              pending_s: float) -> Payment | None:
        """Insert a pending transfer; None when its key, reference or receipt was used."""
        return await self._one("insert_transfer", {
            "user_id": user_id, "amount_kop": amount_kop, "reference": reference,
            "receipt_file_id": receipt_file_id, "receipt_kind": str(receipt_kind),
            "receipt_file_unique_id": receipt_file_unique_id,
            "idempotency_key": idempotency_key, "pending_s": pending_s})

    async def payment(self, payment_id: int) -> Payment | None:
        """Return one payment, or None."""
        return await self._one("payment", {"payment_id": payment_id})

    async def payment_by_key(self, idempotency_key: str) -> Payment | None:
        """Return the payment recorded under this key, or None."""
        return await self._one("payment_by_key", {"idempotency_key": idempotency_key})

    async def payment_by_reference(self, reference: str) -> Payment | None:
        """Return the payment of this transfer reference, or None."""
        return await self._one("payment_by_reference", {"reference": reference})

    async def live_payment_by_receipt(self, receipt_file_unique_id: str) -> Payment | None:
        """Return the pending, approved or rejected payment this receipt backs, or None."""
        return await self._one("live_payment_by_receipt",
                               {"receipt_file_unique_id": receipt_file_unique_id})

    async def user_pending(self, user_id: int) -> list[Payment]:
        """Return the user's pending payments, oldest first."""
        return await self._many("user_pending", {"user_id": user_id})

    async def pending(self, *, limit: int) -> list[Payment]:
        """Return pending payments, oldest first."""
        return await self._many("pending", {"limit": limit})

    async def decide(self, payment_id: int, *, status: PaymentStatus, decided_by: int,
                     decided_by_name: str | None, note: str | None,
                     credited_kop: int | None) -> Payment | None:
        """Decide a pending payment; None when it was no longer pending."""
        return await self._one("decide", {
            "payment_id": payment_id, "status": str(status), "decided_by": decided_by,
            "decided_by_name": decided_by_name, "note": note, "credited_kop": credited_kop})

    async def cancel(self, payment_id: int, *, user_id: int) -> Payment | None:
        """Cancel the user's pending payment; None when not theirs or not pending."""
        return await self._one("cancel", {"payment_id": payment_id, "user_id": user_id})

    async def expire_overdue(self, *, limit: int) -> list[Payment]:
        """Expire pending payments past their time; return them."""
        return await self._many("expire_overdue", {"limit": limit})

    async def insert_star_payment(self, *, user_id: int, amount_kop: int, stars: int,
                                  charge_id: str, invoice_payload: str,
                                  idempotency_key: str) -> Payment | None:
        """Record a Stars charge as approved; None when this charge was recorded before."""
        return await self._one("insert_star_payment", {
            "user_id": user_id, "amount_kop": amount_kop, "stars": stars,
            "charge_id": charge_id, "invoice_payload": invoice_payload,
            "idempotency_key": idempotency_key})

    async def mark_refunded(self, payment_id: int) -> Payment | None:
        """Mark an approved Stars payment refunded; None when it is not one."""
        return await self._one("mark_refunded", {"payment_id": payment_id})

    async def insert_audit(self, *, operator_id: int, action: AuditAction, subject: str,
                           before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """Record one operator decision."""
        await self._conn.execute(QUERIES["insert_audit"], {
            "operator_id": operator_id, "action": str(action), "subject": subject,
            "before": Jsonb(before) if before is not None else None,
            "after": Jsonb(after) if after is not None else None})

    async def audit_of(self, subject: str) -> list[AuditRow]:
        """Return the audit rows of one subject, oldest first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["audit_of"], {"subject": subject})
        return [AuditRow(**(row | {"action": AuditAction(row["action"])}))
                for row in await cur.fetchall()]

    async def insert_notices(self, payment_id: int, kind: NoticeKind,
                             recipients: Sequence[tuple[int, str]]) -> None:
        """Queue one notice per (chat id, language)."""
        await self._conn.execute(QUERIES["insert_notices"], {
            "payment_id": payment_id, "kind": str(kind),
            "chat_ids": [chat for chat, _ in recipients],
            "languages": [language for _, language in recipients]})

    async def insert_decision_edits(self, payment_id: int) -> int:
        """Queue the edit of every sent operator receipt of a decided payment; return how many."""
        cur = await self._conn.execute(QUERIES["insert_decision_edits"],
                                       {"payment_id": payment_id})
        return cur.rowcount

    async def lock_payment_shared(self, payment_id: int) -> None:
        """Hold the payment against a concurrent decision until the transaction ends."""
        await self._conn.execute(QUERIES["lock_payment_shared"], {"payment_id": payment_id})

    async def lease_notices(self, *, term: int, payment_id: int | None, limit: int,
                            lease_s: float) -> list[Notice]:
        """Lease due notices (of one payment, or any) to term; return them."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["lease_notices"], {
            "term": term, "payment_id": payment_id, "limit": limit, "lease_s": lease_s})
        return [Notice(**(row | {"kind": NoticeKind(row["kind"])}))
                for row in await cur.fetchall()]

    async def mark_notice_sent(self, notice_id: int, *, message_id: int | None) -> None:
        """Record that Telegram confirmed the notice."""
        await self._conn.execute(QUERIES["mark_notice_sent"],
                                 {"notice_id": notice_id, "message_id": message_id})

    async def mark_notice_retry(self, notice_id: int, *, delay_s: float, error: str) -> None:
        """Put the notice back for a later attempt."""
        await self._conn.execute(QUERIES["mark_notice_retry"],
                                 {"notice_id": notice_id, "delay_s": delay_s, "error": error})

    async def mark_notice_failed(self, notice_id: int, *, error: str) -> None:
        """Give the notice up for good."""
        await self._conn.execute(QUERIES["mark_notice_failed"],
                                 {"notice_id": notice_id, "error": error})

    async def notices_of(self, payment_id: int) -> list[Notice]:
        """Return the payment's notices, oldest first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["notices_of"], {"payment_id": payment_id})
        return [Notice(**(row | {"kind": NoticeKind(row["kind"]),
                                 "status": NoticeStatus(row["status"])}))
                for row in await cur.fetchall()]

    async def insert_refund(self, *, payment_id: int, user_id: int, charge_id: str,
                            requested_by: int) -> None:
        """Queue a Stars refund (once per payment)."""
        await self._conn.execute(QUERIES["insert_refund"], {
            "payment_id": payment_id, "user_id": user_id, "charge_id": charge_id,
            "requested_by": requested_by})

    async def due_refunds(self, *, limit: int) -> list[DueRefund]:
        """Return refunds still to confirm, oldest first."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["due_refunds"], {"limit": limit})
        return [DueRefund(**row) for row in await cur.fetchall()]

    async def mark_refund_done(self, payment_id: int) -> None:
        """Record that Telegram refunded the charge."""
        await self._conn.execute(QUERIES["mark_refund_done"], {"payment_id": payment_id})

    async def mark_refund_retry(self, payment_id: int, *, error: str) -> None:
        """Count a failed refund attempt."""
        await self._conn.execute(QUERIES["mark_refund_retry"],
                                 {"payment_id": payment_id, "error": error})

    async def refund_of(self, payment_id: int) -> tuple[RefundStatus, int] | None:
        """Return the refund's status and attempts, or None."""
        cur = await self._conn.execute(QUERIES["refund_of"], {"payment_id": payment_id})
        row = await cur.fetchone()
        return (RefundStatus(row[1]), int(row[2])) if row else None
