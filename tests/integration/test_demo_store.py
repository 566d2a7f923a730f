"""The demo's database side: the inbox, generation and top-up totals it reports."""

from __future__ import annotations

import psycopg

from sandbox.harness.demo_store import DemoStore, GenerationTotals, TopUpTotals
from services.billing.ledger import EntryKind, apply_entry
from services.users import ensure_user

PAYMENTS_SQL = b"""
INSERT INTO payments (user_id, amount_kop, method, status, idempotency_key, credited_kop,
                      decided_at)
VALUES (%(user)s, 50000, 'card_transfer', 'approved', 'p1', 45000, now()),
       (%(user)s, 30000, 'card_transfer', 'rejected', 'p2', NULL, now()),
       (%(user)s, 10000, 'card_transfer', 'pending', 'p3', NULL, NULL)
RETURNING id
"""
USER = 800_001


async def test_a_fresh_database_has_no_generations_no_top_ups_and_no_double_charge(
        database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        store = DemoStore(conn)
        assert await store.generation_totals() == GenerationTotals()
        assert await store.topup_totals() == TopUpTotals()
        assert await store.double_charges() == 0
        assert await store.double_topups() == 0
        assert await store.counts_by_status() == {}
        assert await store.unhandled([1, 2]) == [(1, "missing"), (2, "missing")]


async def test_top_ups_are_counted_by_outcome(
        database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await ensure_user(conn, user_id=USER, username=None, first_name="S", language_code="en")
        cur = await conn.execute(PAYMENTS_SQL, {"user": USER})
        approved = (await cur.fetchall())[0][0]
        store = DemoStore(conn)
        assert await store.topup_totals() == TopUpTotals(
            requested=3, approved=1, amended=1, rejected=1, pending=1, credited_kop=45_000)
        async with conn.transaction():
            await apply_entry(conn, user_id=USER, kind=EntryKind.TOPUP, balance_delta_kop=45_000,
                              hold_delta_kop=0, idempotency_key="topup:1", payment_id=approved)
        assert await store.double_topups() == 0  # (the ledger refuses a second one anyway)
