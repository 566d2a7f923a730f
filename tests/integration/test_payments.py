"""Money in, on the database: one top-up per payment whatever operators, crashes and Telegram
do; receipts used once; Stars credited once per charge; refunds debited once; the audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from aiogram import Bot
from aiogram.types import BufferedInputFile
from psycopg_pool import AsyncConnectionPool

from sandbox.common.media import encode_png
from sandbox.telegram import SandboxClient
from services.billing.ledger import InsufficientFunds, Wallet, read_wallet
from services.payments import decisions, notices
from services.payments.decisions import Decision, Receipt, ReceiptOutcome
from services.payments.store import (
    AuditAction,
    NoticeKind,
    NoticeStatus,
    PaymentStatus,
    PaymentStore,
    ReceiptKind,
)
from services.users import ensure_user
from supervisor.election import Leadership
from tests.helpers import eventually, lead

USER = 880001
OPERATORS = (1001, 1002)
ASKED_KOP = 50_000
DAY_S = 86_400.0
LOCK_WAITERS_SQL = b"""
SELECT count(*) FROM pg_stat_activity
 WHERE wait_event_type = 'Lock' AND query LIKE '%%UPDATE payments%%'
"""
TOPUPS_SQL = b"""
SELECT count(*), coalesce(sum(balance_delta_kop), 0) FROM ledger WHERE kind = 'topup'
"""


@pytest.fixture
async def leader(pool: AsyncConnectionPool) -> AsyncIterator[Leadership]:
    async with pool.connection() as conn:
        for user_id in (USER, *OPERATORS):
            await ensure_user(conn, user_id=user_id, username=None, first_name="U",
                              language_code="ru")
    yield await lead(pool)


def receipt(n: int = 1) -> Receipt:
    return Receipt(file_id=f"AgAC-file-{n}", file_unique_id=f"AQAD-{n}", kind=ReceiptKind.PHOTO)


async def submit(pool: AsyncConnectionPool, leader: Leadership, *, n: int = 1,
                 reference: str | None = None, key: str | None = None,
                 file: Receipt | None = None,
                 pending_s: float = DAY_S) -> decisions.ReceiptResult:
    async with leader.fenced(pool) as conn:
        return await decisions.record_receipt(
            conn, user_id=USER, amount_kop=ASKED_KOP, reference=reference or f"KB-REF{n}",
            receipt=file or receipt(n), idempotency_key=key or f"receipt:{USER}:{n}",
            pending_s=pending_s, operators=OPERATORS)


async def decide(pool: AsyncConnectionPool, leader: Leadership, payment_id: int,
                 operator: int = OPERATORS[0], decision: Decision = Decision.APPROVE,
                 **kwargs: object) -> decisions.DecisionResult:
    async with leader.fenced(pool) as conn:
        return await decisions.decide(conn, payment_id, decision=decision,
                                      operator_id=operator, operator_name=f"op{operator}",
                                      **kwargs)  # type: ignore[arg-type]


async def topups(pool: AsyncConnectionPool) -> tuple[int, int]:
    async with pool.connection() as conn:
        cur = await conn.execute(TOPUPS_SQL)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def wallet(pool: AsyncConnectionPool) -> Wallet | None:
    async with pool.connection() as conn:
        return await read_wallet(conn, USER)


async def test_a_receipt_becomes_a_pending_payment_queued_to_every_operator(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    result = await submit(pool, leader)
    assert result.outcome is ReceiptOutcome.RECORDED and result.payment is not None
    assert result.payment.status is PaymentStatus.PENDING
    assert result.payment.expires_at is not None
    async with pool.connection() as conn:
        notices = await PaymentStore(conn).notices_of(result.payment.id)
    assert [(n.kind, n.chat_id, n.language) for n in notices] == [
        (NoticeKind.OPERATOR_RECEIPT, op, "ru") for op in OPERATORS]


async def test_the_same_receipt_message_replayed_finds_its_payment(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    first = await submit(pool, leader)
    again = await submit(pool, leader)
    assert again.outcome is ReceiptOutcome.REPLAYED
    assert first.payment is not None and again.payment is not None
    assert again.payment.id == first.payment.id


async def test_a_receipt_already_used_for_another_payment_is_refused(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    first = await submit(pool, leader, n=1)
    reused = await submit(pool, leader, n=2, file=receipt(1))
    assert reused.outcome is ReceiptOutcome.RECEIPT_USED and reused.payment is None
    assert first.payment is not None
    await decide(pool, leader, first.payment.id)
    after_approval = await submit(pool, leader, n=3, file=receipt(1))
    assert after_approval.outcome is ReceiptOutcome.RECEIPT_USED
    assert await topups(pool) == (1, ASKED_KOP)


async def test_a_cancelled_payment_frees_its_receipt_and_cannot_be_approved(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    first = await submit(pool, leader, n=1)
    assert first.payment is not None
    async with leader.fenced(pool) as conn:
        assert await decisions.cancel(conn, first.payment.id, user_id=OPERATORS[0]) is None
        cancelled = await decisions.cancel(conn, first.payment.id, user_id=USER)
    assert cancelled is not None and cancelled.status is PaymentStatus.CANCELLED
    late = await decide(pool, leader, first.payment.id)
    assert not late.applied and late.payment.status is PaymentStatus.CANCELLED
    assert (await submit(pool, leader, n=2, file=receipt(1))).outcome is ReceiptOutcome.RECORDED
    assert await topups(pool) == (0, 0)


async def test_a_second_receipt_for_one_reference_is_not_a_second_payment(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    await submit(pool, leader, n=1, reference="KB-SAME")
    second = await submit(pool, leader, n=2, reference="KB-SAME")
    assert second.outcome is ReceiptOutcome.REFERENCE_USED


async def test_two_operators_approving_at_once_credit_the_payment_once(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    submitted = await submit(pool, leader)
    assert submitted.payment is not None
    payment_id = submitted.payment.id
    first_decided, second_waiting = asyncio.Event(), asyncio.Event()

    async def first() -> decisions.DecisionResult:
        async with leader.fenced(pool) as conn:
            result = await decisions.decide(conn, payment_id, decision=Decision.APPROVE,
                                            operator_id=OPERATORS[0], operator_name="Ann")
            first_decided.set()
            await second_waiting.wait()  # commit only once the other press is blocked on us
            return result

    async def waiting() -> bool:
        async with pool.connection() as conn:
            cur = await conn.execute(LOCK_WAITERS_SQL)
            row = await cur.fetchone()
        return bool(row and row[0] >= 1)

    task_a = asyncio.create_task(first())
    await first_decided.wait()
    task_b = asyncio.create_task(decide(pool, leader, payment_id, OPERATORS[1],
                                        Decision.AMEND, amount_kop=99_900))
    await eventually(waiting, what="the second operator's UPDATE waiting on the first")
    second_waiting.set()
    a, b = await asyncio.gather(task_a, task_b)
    assert a.applied and not b.applied
    assert b.payment.status is PaymentStatus.APPROVED and b.payment.decided_by == OPERATORS[0]
    assert await topups(pool) == (1, ASKED_KOP)
    assert await wallet(pool) == Wallet(balance_kop=ASKED_KOP, hold_kop=0)
    async with pool.connection() as conn:
        audit = await PaymentStore(conn).audit_of(decisions.subject(payment_id))
    assert [(row.operator_id, row.action) for row in audit] == [
        (OPERATORS[0], AuditAction.PAYMENT_APPROVE)]
    assert audit[0].before is not None and audit[0].before["status"] == "pending"
    assert audit[0].after is not None and audit[0].after["status"] == "approved"


async def test_many_concurrent_presses_credit_once(pool: AsyncConnectionPool,
                                                   leader: Leadership) -> None:
    submitted = await submit(pool, leader)
    assert submitted.payment is not None
    results = await asyncio.gather(*(
        decide(pool, leader, submitted.payment.id, OPERATORS[i % 2]) for i in range(8)))
    assert sum(r.applied for r in results) == 1
    assert await topups(pool) == (1, ASKED_KOP)


async def test_a_crash_before_the_decision_commits_leaves_it_pending_and_the_retry_credits_once(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    submitted = await submit(pool, leader)
    assert submitted.payment is not None
    payment_id = submitted.payment.id
    with pytest.raises(RuntimeError):
        async with leader.fenced(pool) as conn:
            await decisions.decide(conn, payment_id, decision=Decision.APPROVE,
                                   operator_id=OPERATORS[0], operator_name="Ann")
            raise RuntimeError("the leader dies before the commit")
    async with pool.connection() as conn:
        store = PaymentStore(conn)
        payment = await store.payment(payment_id)
        assert payment is not None and payment.status is PaymentStatus.PENDING
        assert await store.audit_of(decisions.subject(payment_id)) == []
        kinds = [n.kind for n in await store.notices_of(payment_id)]
    assert NoticeKind.USER_DECISION not in kinds
    assert await topups(pool) == (0, 0)
    retried = await decide(pool, leader, payment_id)
    again = await decide(pool, leader, payment_id)
    assert retried.applied and not again.applied
    assert await topups(pool) == (1, ASKED_KOP)


async def test_an_amended_approval_credits_the_typed_amount_and_a_reject_needs_a_reason(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    one, two = await submit(pool, leader, n=1), await submit(pool, leader, n=2)
    assert one.payment is not None and two.payment is not None
    amended = await decide(pool, leader, one.payment.id, decision=Decision.AMEND,
                           amount_kop=30_000)
    assert amended.payment.credited_kop == 30_000
    with pytest.raises(ValueError, match="reason"):
        await decide(pool, leader, two.payment.id, decision=Decision.REJECT, reason="  ")
    rejected = await decide(pool, leader, two.payment.id, decision=Decision.REJECT,
                            reason="no such transfer")
    assert rejected.payment.status is PaymentStatus.REJECTED
    assert rejected.payment.decision_note == "no such transfer"
    assert await topups(pool) == (1, 30_000)


async def test_a_decision_queues_the_edit_of_every_sent_receipt_and_tells_the_user(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    submitted = await submit(pool, leader)
    assert submitted.payment is not None
    payment_id = submitted.payment.id
    async with leader.fenced(pool) as conn:
        store = PaymentStore(conn)
        leased = await store.lease_notices(term=leader.term, payment_id=payment_id, limit=10,
                                           lease_s=30)
        for message_id, notice in enumerate(leased, start=70):
            await store.mark_notice_sent(notice.id, message_id=message_id)
    await decide(pool, leader, payment_id)
    async with pool.connection() as conn:
        notices = await PaymentStore(conn).notices_of(payment_id)
    edits = [(n.chat_id, n.message_id) for n in notices if n.kind is NoticeKind.OPERATOR_DECISION]
    assert sorted(edits) == [(OPERATORS[0], 70), (OPERATORS[1], 71)]
    assert [n.chat_id for n in notices if n.kind is NoticeKind.USER_DECISION] == [USER]


async def test_a_notice_leased_by_a_term_that_died_is_sent_by_the_next_term_at_once(
        pool: AsyncConnectionPool, leader: Leadership, bot: Bot, control: SandboxClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A lease no test outlives: only the term can free these notices.
    monkeypatch.setattr(notices, "LEASE_S", 3_600.0)
    upload = await bot.send_photo(USER, BufferedInputFile(encode_png(8, 8, (9, 9, 9)), "r.png"))
    assert upload.photo is not None
    photo = upload.photo[-1]
    file = Receipt(photo.file_id, photo.file_unique_id, ReceiptKind.PHOTO)
    submitted = await submit(pool, leader, file=file)
    assert submitted.payment is not None
    payment_id = submitted.payment.id
    async with leader.fenced(pool) as conn:  # term 1's sender leases them, then dies
        leased = await PaymentStore(conn).lease_notices(
            term=leader.term, payment_id=payment_id, limit=10, lease_s=notices.LEASE_S)
    assert len(leased) == len(OPERATORS)
    # Within term 1 the lease holds (a restarted sweep must not send them twice) ...
    assert await notices.NoticeSender(pool, bot, leadership=lambda: leader).send_due() == 0
    # ... and term 2's first sweep sends them, the lease an hour from running out.
    successor = await lead(pool, term=leader.term + 1)
    sender = notices.NoticeSender(pool, bot, leadership=lambda: successor)
    assert await sender.send_due() == len(OPERATORS)
    async with pool.connection() as conn:
        sent = await PaymentStore(conn).notices_of(payment_id)
    assert [(n.chat_id, n.status) for n in sent] == [(op, NoticeStatus.SENT) for op in OPERATORS]
    for operator in OPERATORS:
        assert [e["method"] for e in await control.chat_messages(operator)] == ["sendPhoto"]


async def test_a_notice_in_its_retry_backoff_waits_whatever_the_term(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    submitted = await submit(pool, leader)
    assert submitted.payment is not None
    async with leader.fenced(pool) as conn:
        store = PaymentStore(conn)
        leased = await store.lease_notices(term=leader.term, payment_id=submitted.payment.id,
                                           limit=10, lease_s=30)
        for notice in leased:  # Telegram answered 5xx: back off, whoever leads next
            await store.mark_notice_retry(notice.id, delay_s=3_600, error="HTTP 502")
    successor = await lead(pool, term=leader.term + 1)
    async with successor.fenced(pool) as conn:
        assert await PaymentStore(conn).lease_notices(
            term=successor.term, payment_id=None, limit=10, lease_s=30) == []


async def test_overdue_payments_expire_and_their_users_are_told(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    overdue = await submit(pool, leader, n=1, pending_s=0)
    await submit(pool, leader, n=2)
    async with leader.fenced(pool) as conn:
        expired = await decisions.expire_overdue(conn, limit=10)
    assert overdue.payment is not None
    assert [p.id for p in expired] == [overdue.payment.id]
    assert expired[0].status is PaymentStatus.EXPIRED
    late = await decide(pool, leader, overdue.payment.id)
    assert not late.applied
    async with pool.connection() as conn:
        kinds = [n.kind for n in await PaymentStore(conn).notices_of(overdue.payment.id)]
    assert NoticeKind.USER_DECISION in kinds


async def star(pool: AsyncConnectionPool, leader: Leadership,
               charge: str = "stxCHARGE1") -> decisions.DecisionResult:
    async with leader.fenced(pool) as conn:
        return await decisions.record_star_payment(
            conn, user_id=USER, stars=100, amount_kop=12_000, charge_id=charge,
            invoice_payload="kb1:100:12000")


async def test_a_successful_payment_delivered_twice_credits_once(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    first, second = await star(pool, leader), await star(pool, leader)
    assert first.applied and not second.applied
    assert second.payment.id == first.payment.id
    concurrent = await asyncio.gather(*(star(pool, leader, "stxCHARGE2") for _ in range(4)),
                                      return_exceptions=True)
    applied = [r for r in concurrent if isinstance(r, decisions.DecisionResult) and r.applied]
    assert len(applied) == 1
    assert await topups(pool) == (2, 24_000)


async def test_a_stars_refund_debits_once_and_queues_the_refund(
        pool: AsyncConnectionPool, leader: Leadership) -> None:
    paid = await star(pool, leader)
    async with leader.fenced(pool) as conn:
        refunded = await decisions.request_refund(conn, paid.payment.id, OPERATORS[0])
    assert refunded.status is PaymentStatus.REFUNDED
    with pytest.raises(decisions.NotRefundable):
        async with leader.fenced(pool) as conn:
            await decisions.request_refund(conn, paid.payment.id, OPERATORS[0])
    assert await wallet(pool) == Wallet(balance_kop=0, hold_kop=0)
    async with pool.connection() as conn:
        store = PaymentStore(conn)
        due = await store.due_refunds(limit=10)
        audit = await store.audit_of(decisions.subject(paid.payment.id))
    assert [(r.payment_id, r.telegram_payment_charge_id) for r in due] == [
        (paid.payment.id, "stxCHARGE1")]
    assert [row.action for row in audit] == [AuditAction.PAYMENT_REFUND]


async def test_a_refund_of_spent_money_changes_nothing(pool: AsyncConnectionPool,
                                                       leader: Leadership) -> None:
    paid = await star(pool, leader)
    async with leader.fenced(pool) as conn:
        await conn.execute(b"""INSERT INTO ledger (user_id, kind, balance_delta_kop,
            hold_delta_kop, idempotency_key, job_id) VALUES (%s, 'hold', -12000, 12000, 'h', 1)""",
                           (USER,))
    with pytest.raises(InsufficientFunds):
        async with leader.fenced(pool) as conn:
            await decisions.request_refund(conn, paid.payment.id, OPERATORS[0])
    async with pool.connection() as conn:
        store = PaymentStore(conn)
        payment = await store.payment(paid.payment.id)
        assert payment is not None and payment.status is PaymentStatus.APPROVED
        assert await store.due_refunds(limit=10) == []


async def test_payment_statuses_mirror_the_check(pool: AsyncConnectionPool,
                                                 leader: Leadership) -> None:
    await submit(pool, leader)
    async with pool.connection() as conn:
        cur = await conn.execute(b"""SELECT pg_get_constraintdef(oid) FROM pg_constraint
                                     WHERE conname = 'payments_status_check'""")
        row = await cur.fetchone()
    assert row is not None
    for status in PaymentStatus:
        assert f"'{status}'" in row[0]
    with pytest.raises(psycopg.errors.CheckViolation):
        async with leader.fenced(pool) as conn:
            await conn.execute(b"UPDATE payments SET status = 'lost'")
