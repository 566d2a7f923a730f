"""The operators' console: what the /admin screens read and do (handlers get it as `admin`).

Every change is ONE fenced unit of work (`leadership.fenced(pool)`) holding the change and its
`operator_audit` row, so an action and its audit commit together or not at all. Effects are
keyed by the operator's confirm press (`key`): a double press or a retried update finds the
first one's effect and changes nothing (a crash before the commit leaves nothing; after it,
the retry is a no-op).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.admin.store import (
    AdminAction,
    AdminStore,
    JobLine,
    PaymentLine,
    UserCard,
)
from services.billing.ledger import EntryKind, LedgerLine, LedgerStore, Wallet, apply_entry
from services.broadcast import set_progress_message, start_broadcast
from services.catalog import Model, price_kopecks
from services.generation.settlement import refund_key
from services.payments.store import Payment, PaymentStore
from services.storefront import Override, OverrideStore, Storefront
from services.telegram.texts import rubles
from supervisor.election import FencedError, Leadership
from supervisor.stores import ElectionStore, InstanceStore

logger = logging.getLogger(__name__)

# A user card shows this many of each list.
CARD_ROWS = 5
# Pending payments the queue screen lists.
QUEUE_ROWS = 10
# Leader events the cluster screen shows.
CLUSTER_EVENTS = 5
# An adjustment larger than this (either sign) is refused as a typo, in kopecks.
MAX_ADJUST_KOP = 100_000_000


class AdminError(Exception):
    """An operator's request was refused; `key` names the rule's text (locales admin.ftl)."""

    def __init__(self, key: str, **values: object) -> None:
        """Refuse for the rule `key`, its text formatted with values (in the operator's
        language, by the handler)."""
        super().__init__(key, *(f"{name}={value}" for name, value in values.items()))
        self.key = key
        self.values = {name: str(value) for name, value in values.items()}


class NotRefundable(AdminError):
    """The job was never charged, or is still running (its hold is released if it fails)."""


@dataclass(frozen=True, slots=True)
class UserReport:
    """Everything the console shows about one user."""

    card: UserCard
    jobs: list[JobLine]
    ledger: list[LedgerLine]
    payments: list[PaymentLine]


@dataclass(frozen=True, slots=True)
class Applied:
    """Outcome of a keyed action: applied now (False: that press was applied before)."""

    applied: bool
    wallet: Wallet | None


@dataclass(frozen=True, slots=True)
class Stats:
    """The numbers of the stats screen."""

    users: dict[str, int]
    topups_kop: int
    revenue_kop: int
    kie_cost_kop: int
    jobs_by_status: dict[str, int]
    jobs_by_model: dict[str, int]
    failure_rate: float
    median_result_s: float | None


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A catalog model beside its override."""

    index: int
    model: Model
    catalog_min_kop: int
    catalog_max_kop: int
    override: Override | None


@dataclass(frozen=True, slots=True)
class Cluster:
    """Leader, term, instances and the last leader events."""

    lease: dict[str, Any] | None
    instances: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)


class Admin:
    """The console's reads and keyed, audited, fenced writes."""

    def __init__(self, pool: AsyncConnectionPool, storefront: Storefront, *,
                 operators: Sequence[int], markup: Decimal, lease_name: str,
                 leadership: Callable[[], Leadership | None]) -> None:
        self._pool = pool
        self._storefront = storefront
        self._operators = frozenset(operators)
        self._markup = markup
        self._lease_name = lease_name
        self._leadership = leadership

    def is_operator(self, user_id: int) -> bool:
        """Tell whether user_id is an operator (ADMIN_ID)."""
        return user_id in self._operators

    def _fenced(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        return leadership.fenced(self._pool)

    async def pending_payments(self) -> list[Payment]:
        """Return the oldest pending payments."""
        async with self._pool.connection() as conn:
            return await PaymentStore(conn).pending(limit=QUEUE_ROWS)

    async def find_user(self, query: str) -> UserReport | None:
        """Return the report of a user by numeric id or @username, or None."""
        query = query.strip()
        async with self._pool.connection() as conn:
            store = AdminStore(conn)
            if query.lstrip("-").isdigit():
                card = await store.user_by_id(int(query))
            else:
                card = await store.user_by_username(query.removeprefix("@"))
            if card is None:
                return None
            return UserReport(
                card=card, jobs=await store.recent_jobs(card.user_id, limit=CARD_ROWS),
                ledger=await LedgerStore(conn).recent_entries(card.user_id, limit=CARD_ROWS),
                payments=await store.recent_payments(card.user_id, limit=CARD_ROWS))

    async def adjust(self, user_id: int, amount_kop: int, *, reason: str, operator_id: int,
                     key: str) -> Applied:
        """Move amount_kop (+/-) on the user's balance once per confirm press `key`.

        Raises AdminError for a zero or huge amount or an empty reason, and
        billing.InsufficientFunds when a debit would take the balance below zero.
        """
        if amount_kop == 0 or abs(amount_kop) > MAX_ADJUST_KOP:
            raise AdminError("admin-err-amount", max=rubles(MAX_ADJUST_KOP))
        if not reason.strip():
            raise AdminError("admin-err-reason")
        async with self._fenced() as conn:
            ledger = LedgerStore(conn)
            before = await ledger.lock_wallet(user_id)
            if before is None:
                raise AdminError("admin-err-no-wallet", user=user_id)
            applied = await apply_entry(conn, user_id=user_id, kind=EntryKind.ADJUSTMENT,
                                        balance_delta_kop=amount_kop, hold_delta_kop=0,
                                        idempotency_key=f"admin:adjust:{key}",
                                        note=reason.strip()[:500])
            after = await ledger.wallet(user_id)
            if applied:
                await AdminStore(conn).insert_audit(
                    operator_id=operator_id, action=AdminAction.BALANCE_ADJUST,
                    subject=f"user:{user_id}", before=_wallet(before),
                    after=_wallet(after) | {"amount_kop": amount_kop,
                                            "reason": reason.strip()[:500]})
        logger.info("admin_adjusted", extra={"user_id": user_id, "amount_kop": amount_kop,
                                             "operator_id": operator_id, "applied": applied})
        return Applied(applied, after)

    async def refund_job(self, job_id: int, *, operator_id: int) -> Applied:
        """Credit a charged (succeeded) job's price back, once per job.

        A failed or expired job's hold was already released and a running one's will be
        if it fails, so only a committed charge is refunded: an `adjustment` of +price
        keyed by the job (`refund_key`, the key the delivery worker's automatic refund of
        an undeliverable result uses too: a job is refunded once, by whichever comes first).
        Raises NotRefundable otherwise.
        """
        async with self._fenced() as conn:
            job = await AdminStore(conn).job_for_refund(job_id)
            if job is None:
                raise NotRefundable("admin-err-no-job", job=job_id)
            if not job.committed or job.price_kop == 0:
                raise NotRefundable("admin-err-not-charged", job=job_id, status=job.status)
            ledger = LedgerStore(conn)
            before = await ledger.lock_wallet(job.user_id)
            applied = await apply_entry(conn, user_id=job.user_id, kind=EntryKind.ADJUSTMENT,
                                        balance_delta_kop=job.price_kop, hold_delta_kop=0,
                                        idempotency_key=refund_key(job_id),
                                        job_id=job_id, note=f"refund of job {job_id}")
            after = await ledger.wallet(job.user_id)
            if applied:
                await AdminStore(conn).insert_audit(
                    operator_id=operator_id, action=AdminAction.JOB_REFUND,
                    subject=f"job:{job_id}", before=_wallet(before),
                    after=_wallet(after) | {"refunded_kop": job.price_kop})
        return Applied(applied, after)

    async def stats(self) -> Stats:
        """Return users, money and jobs figures."""
        async with self._pool.connection() as conn:
            store = AdminStore(conn)
            users, money = await store.user_stats(), await store.money_stats()
            kie_cost = await store.kie_cost(markup=self._markup)
            rows = await store.job_stats()
            median = await store.median_result_s()
        by_status: dict[str, int] = {}
        by_model: dict[str, int] = {}
        for row in rows:
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
            by_model[row["model_id"]] = by_model.get(row["model_id"], 0) + row["n"]
        finished = sum(by_status.get(s, 0) for s in ("succeeded", "failed", "expired"))
        failed = by_status.get("failed", 0) + by_status.get("expired", 0)
        revenue = money["revenue_kop"]
        return Stats(users=users, topups_kop=money["topups_kop"], revenue_kop=revenue,
                     kie_cost_kop=kie_cost, jobs_by_status=by_status, jobs_by_model=by_model,
                     failure_rate=failed / finished if finished else 0.0,
                     median_result_s=median)

    async def models(self) -> list[ModelRow]:
        """Return every catalog model with its catalog prices and its override."""
        async with self._pool.connection() as conn:
            overrides = {o.model_id: o for o in await OverrideStore(conn).overrides()}
        rows = []
        for index, model in enumerate(self._storefront.catalog.models):
            prices = [0 if sku.free else price_kopecks(model, dict(sku.params), self._markup)
                      for sku in model.skus]
            rows.append(ModelRow(index, model, min(prices), max(prices),
                                 overrides.get(model.id)))
        return rows

    async def set_model(self, index: int, *, enabled: bool, price_kop: int | None,
                        operator_id: int) -> ModelRow:
        """Store a model's override (on/off, price) with its audit row; return the new row."""
        models = self._storefront.catalog.models
        if not 0 <= index < len(models):
            raise AdminError("admin-err-no-model", index=index)
        if price_kop is not None and price_kop < 0:
            raise AdminError("admin-err-negative-price")
        model = models[index]
        async with self._fenced() as conn:
            store = OverrideStore(conn)
            before = await store.override(model.id)
            await store.set_override(model.id, enabled=enabled, price_kop=price_kop,
                                     operator_id=operator_id)
            was_enabled = before.enabled if before else True
            action = AdminAction.MODEL_TOGGLE if was_enabled != enabled \
                else AdminAction.MODEL_PRICE
            await AdminStore(conn).insert_audit(
                operator_id=operator_id, action=action, subject=f"model:{model.id}",
                before=_override(before), after={"enabled": enabled, "price_kop": price_kop})
        self._storefront.forget()  # this process's screens show the change at once
        return next(r for r in await self.models() if r.index == index)

    async def start_broadcast(self, text: str, *, operator_id: int, language: str,
                              chat_id: int, key: str) -> tuple[int, int, bool]:
        """Write a broadcast and its recipients once per confirm press.

        Return (broadcast id, recipients, created now). One fenced unit: the broadcast row,
        one row per user, the audit row and the sender's NOTIFY commit together.
        """
        async with self._fenced() as conn:
            started = await start_broadcast(conn, key=f"admin:broadcast:{key}", text=text,
                                            operator_id=operator_id, language=language,
                                            chat_id=chat_id)
            if started.created:
                await AdminStore(conn).insert_audit(
                    operator_id=operator_id, action=AdminAction.BROADCAST_START,
                    subject=f"broadcast:{started.id}", before=None,
                    after={"recipients": started.recipients, "text": text[:200]})
        return started.id, started.recipients, started.created

    async def set_progress_message(self, broadcast_id: int, message_id: int) -> None:
        """Remember the message the sender edits with the broadcast's progress."""
        async with self._fenced() as conn:
            await set_progress_message(conn, broadcast_id, message_id)

    async def cluster(self) -> Cluster:
        """Return the leader, term, instances and the last leader events."""
        async with self._pool.connection() as conn:
            election = ElectionStore(conn)
            return Cluster(lease=await election.lease_overview(name=self._lease_name),
                           instances=await InstanceStore(conn).all_instances(),
                           events=await election.recent_events(name=self._lease_name,
                                                               limit=CLUSTER_EVENTS))


def _wallet(wallet: Wallet | None) -> dict[str, Any]:
    return {} if wallet is None else {"balance_kop": wallet.balance_kop,
                                      "hold_kop": wallet.hold_kop}


def _override(override: Override | None) -> dict[str, Any] | None:
    return None if override is None else {"enabled": override.enabled,
                                          "price_kop": override.price_kop}
