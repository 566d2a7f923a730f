"""The operators' console queries (sql/admin.sql): one typed store, one method per query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "admin.sql")


class AdminAction(StrEnum):
    """The console's operator_audit actions (the CHECK also has payments' own)."""

    BALANCE_ADJUST = "balance_adjust"    # a manual ledger adjustment, with a reason
    JOB_REFUND = "job_refund"            # a charged job credited back
    MODEL_TOGGLE = "model_toggle"        # a model enabled or disabled
    MODEL_PRICE = "model_price"          # a model's price override set or cleared
    BROADCAST_START = "broadcast_start"  # a broadcast confirmed (its recipients written)


@dataclass(frozen=True, slots=True)
class UserCard:
    """A user as the console shows them."""

    user_id: int
    username: str | None
    first_name: str | None
    created_at: datetime
    balance_kop: int
    hold_kop: int


@dataclass(frozen=True, slots=True)
class JobLine:
    """One generation in a user's card."""

    id: int
    model_id: str
    status: str
    price_kop: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One payment in a user's card."""

    id: int
    method: str
    status: str
    amount_kop: int
    credited_kop: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RefundableJob:
    """A job as a refund decision sees it (locked)."""

    id: int
    user_id: int
    status: str
    price_kop: int
    free: bool
    committed: bool


@dataclass(frozen=True, slots=True)
class PaymentViolation:
    """One broken money-in invariant."""

    rule: str
    user_id: int | None
    payment_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Alert:
    """A violation found and not yet told to the operators."""

    fingerprint: str
    rule: str
    detail: str


class AdminStore:
    """The console's queries on one connection."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[query], params or {})
        return await cur.fetchall()

    async def insert_audit(self, *, operator_id: int, action: AdminAction, subject: str,
                           before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """Record one operator action."""
        await self._conn.execute(QUERIES["insert_audit"], {
            "operator_id": operator_id, "action": str(action), "subject": subject,
            "before": Jsonb(before) if before is not None else None,
            "after": Jsonb(after) if after is not None else None})

    async def audit_of(self, subject: str) -> list[dict[str, Any]]:
        """Return the audit rows of one subject, oldest first."""
        return await self._rows("audit_of", {"subject": subject})

    async def user_by_id(self, user_id: int) -> UserCard | None:
        """Return a user with their wallet, or None."""
        rows = await self._rows("user_by_id", {"user_id": user_id})
        return UserCard(**rows[0]) if rows else None

    async def user_by_username(self, username: str) -> UserCard | None:
        """Return a user by @username, or None."""
        rows = await self._rows("user_by_username", {"username": username})
        return UserCard(**rows[0]) if rows else None

    async def recent_jobs(self, user_id: int, *, limit: int) -> list[JobLine]:
        """Return a user's latest generations."""
        return [JobLine(**r) for r in await self._rows("recent_jobs",
                                                       {"user_id": user_id, "limit": limit})]

    async def recent_payments(self, user_id: int, *, limit: int) -> list[PaymentLine]:
        """Return a user's latest payments."""
        return [PaymentLine(**r) for r in await self._rows(
            "recent_payments", {"user_id": user_id, "limit": limit})]

    async def job_for_refund(self, job_id: int) -> RefundableJob | None:
        """Return the job locked until the transaction ends, or None."""
        rows = await self._rows("job_for_refund", {"job_id": job_id})
        return RefundableJob(**rows[0]) if rows else None

    async def user_stats(self) -> dict[str, int]:
        """Return users: total, new_1d, active_1d, active_7d, active_30d."""
        return {k: int(v) for k, v in (await self._rows("user_stats"))[0].items()}

    async def money_stats(self) -> dict[str, int]:
        """Return topups_kop and revenue_kop."""
        return {k: int(v) for k, v in (await self._rows("money_stats"))[0].items()}

    async def kie_cost(self, *, markup: Decimal) -> int:
        """Return what Kie billed for succeeded jobs, in kopecks."""
        return int((await self._rows("kie_cost", {"markup": markup}))[0]["kie_cost_kop"])

    async def job_stats(self) -> list[dict[str, Any]]:
        """Return (model_id, status, n, median_s) rows."""
        return await self._rows("job_stats")

    async def median_result_s(self) -> float | None:
        """Return the median seconds from request to result of succeeded jobs."""
        cur = await self._conn.execute(QUERIES["median_result_s"])
        row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def payment_violations(self) -> list[PaymentViolation]:
        """Return every broken money-in invariant."""
        return [PaymentViolation(**r) for r in await self._rows("payment_violations")]

    async def remember_violation(self, *, fingerprint: str, rule: str, detail: str) -> None:
        """Record a violation once."""
        await self._conn.execute(QUERIES["remember_violation"], {
            "fingerprint": fingerprint, "rule": rule, "detail": detail})

    async def unalerted(self, *, limit: int) -> list[Alert]:
        """Return violations the operators were not told about yet."""
        return [Alert(**r) for r in await self._rows("unalerted", {"limit": limit})]

    async def mark_alerted(self, fingerprint: str) -> None:
        """Record that the operators were told."""
        await self._conn.execute(QUERIES["mark_alerted"], {"fingerprint": fingerprint})
