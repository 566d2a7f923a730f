"""Shared setup for the generation-job tests: users with money, requests, the audit."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.billing.ledger import EntryKind, Wallet, apply_entry, read_wallet
from services.catalog import get_catalog
from services.generation import (
    JobLimits,
    RequestOutcome,
    audit,
    request_generation,
)
from services.users import ensure_user
from tests.helpers import eventually

CATALOG = get_catalog()
MARKUP = Decimal("2.0")
LIMITS = JobLimits(max_active_jobs=2, free_daily_quota=2)
PRICED = "seedream/4.5-text-to-image"  # 5.11 RUB x 2.0 = 1022 kop, category image
PRICE_KOP = 1022
VIDEO = "sora-2-image-to-video"
FREE = "z-image"
USER = 700001
OTHER = 700002
PROMPT = {"prompt": "a red fox in the snow"}
DEADLINES_S = {"image": 600.0, "video": 3600.0, "audio": 600.0, "upscale": 600.0}


async def new_user(conn: psycopg.AsyncConnection, user_id: int = USER,
                   balance_kop: int = 5000) -> None:
    """Register a user and top their wallet up by balance_kop."""
    await ensure_user(conn, user_id=user_id, username=None, first_name="U", language_code="en")
    if balance_kop:
        await apply_entry(conn, user_id=user_id, kind=EntryKind.TOPUP,
                          balance_delta_kop=balance_kop, hold_delta_kop=0,
                          idempotency_key=f"seed:{user_id}", payment_id=user_id)


async def request(conn: psycopg.AsyncConnection, key: str, *, user_id: int = USER,
                  model_id: str = PRICED, params: Mapping[str, object] = PROMPT,
                  limits: JobLimits = LIMITS) -> RequestOutcome:
    """Ask for a generation as a handler would."""
    return await request_generation(conn, catalog=CATALOG, markup=MARKUP, limits=limits,
                                    user_id=user_id, chat_id=user_id, model_id=model_id,
                                    params=params, idempotency_key=key)


async def wallet(pool: AsyncConnectionPool, user_id: int = USER) -> Wallet | None:
    """Return the user's wallet as committed."""
    async with pool.connection() as conn:
        return await read_wallet(conn, user_id)


async def assert_invariants(pool: AsyncConnectionPool) -> None:
    """Fail with the violations when any invariant is broken."""
    async with pool.connection() as conn:
        assert await audit(conn) == []


async def wait_until_blocked(pool: AsyncConnectionPool, pid: int) -> None:
    """Wait until backend pid waits on a lock (a concurrent transaction queued behind ours)."""
    async def blocked() -> bool:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,))
            row = await cur.fetchone()
            return bool(row and row[0])

    await eventually(blocked, what=f"backend {pid} waiting on a lock")
