"""Measure the dispatcher's claim: 16 ready updates, with and without a big backlog.

    python bench/claim.py [--quick] [--database-url URL] [--rounds 5] [--claims 200]

Cases (sizes; `--quick` uses a tenth of each):
    no_backlog        16 ready updates, one per chat, nothing else stored;
    single_chat_200k  one chat has 200,000 queued updates behind its running head, and 16
                      other chats have one ready update each, stored after that backlog;
    spread_1m         1,000,000 open updates over 100,000 chats (10 each), all chats ready.
Each claim is `InboxStore.claim(limit=16)`, the dispatcher's own query, timed alone in a
transaction that is rolled back, so every claim sees the same rows. Rows are bulk-loaded
with generate_series into a fresh database (migrated with `supervisor.migrations`) on the
server of `--database-url` (default TEST_DATABASE_URL), dropped afterwards.

Prints one JSON object: per case p50_ms and p99_ms over all claims, and the noise: the
lowest and highest p50 of the rounds (`p50_ms_rounds`), and `select_1_floor`, the same
statistics for `SELECT 1` on the same connection (a busy machine's scheduling delays show
there too: a claim's p99 near the floor's is the machine, not the query), and the machine's
1-minute load average before and after (`load_avg_1m`; above its core count, the tail is
mostly the scheduler).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
import psycopg
from psycopg import conninfo, sql

from services.telegram.inbox import InboxStore
from supervisor import migrations

BOT_ID = 1
CLAIM_LIMIT = 16
DEFAULT_ROUNDS = 5
DEFAULT_CLAIMS_PER_ROUND = 200
# (case, full size) -> rows; --quick divides the sizes by QUICK_DIVISOR.
SINGLE_CHAT_BACKLOG = 200_000
SPREAD_UPDATES = 1_000_000
SPREAD_CHATS = 100_000
QUICK_DIVISOR = 10
BUSY_CHAT_ID = 7_000_000_000
OTHER_CHAT_BASE = 8_000_000_000
# A ~250-byte private-chat message, like the ingest benchmark's.
PAYLOAD_SQL = """jsonb_build_object('update_id', g, 'message', jsonb_build_object(
    'message_id', g, 'date', 1767225600, 'text', 'bench message ' || g,
    'chat', jsonb_build_object('id', {chat}, 'type', 'private'),
    'from', jsonb_build_object('id', {chat}, 'is_bot', false, 'first_name', 'Bench')))"""
LOAD_UPDATES_SQL = """
INSERT INTO telegram_updates (bot_id, update_id, chat_id, payload, status, attempts,
                              claimed_term, claimed_at)
SELECT {bot}, g, {chat}, {payload}, 'pending', 0, NULL, NULL
  FROM generate_series({first}, {last}) AS g
"""
LOAD_HEADS_SQL = """
INSERT INTO telegram_chat_heads (bot_id, chat_id, head_id, busy)
SELECT DISTINCT ON (chat_id) bot_id, chat_id, update_id, status = 'processing'
  FROM telegram_updates WHERE status IN ('pending', 'processing')
 ORDER BY chat_id, update_id
"""
RUN_HEAD_SQL = """
UPDATE telegram_updates SET status = 'processing', attempts = 1, claimed_term = 1,
       claimed_at = now()
 WHERE bot_id = {bot} AND update_id = 1
"""


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of values by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def load(conn: psycopg.AsyncConnection, *, chat: str, first: int, last: int) -> None:
    """Insert updates first..last of the chat expression `chat` (SQL over g)."""
    text = LOAD_UPDATES_SQL.format(bot=BOT_ID, chat=chat, first=first, last=last,
                                   payload=PAYLOAD_SQL.format(chat=chat))
    await conn.execute(sql.SQL(text))


async def prepare(conn: psycopg.AsyncConnection, case: str, divisor: int) -> None:
    """Empty the inbox and load one case's rows (heads included), then analyze."""
    await conn.execute(b"TRUNCATE telegram_updates, telegram_chat_heads")
    if case == "no_backlog":
        await load(conn, chat=f"{OTHER_CHAT_BASE} + g", first=1, last=CLAIM_LIMIT)
    elif case == "single_chat_200k":
        backlog = SINGLE_CHAT_BACKLOG // divisor
        await load(conn, chat=str(BUSY_CHAT_ID), first=1, last=backlog + 1)
        await conn.execute(sql.SQL(RUN_HEAD_SQL.format(bot=BOT_ID)))
        await load(conn, chat=f"{OTHER_CHAT_BASE} + g", first=backlog + 2,
                   last=backlog + 1 + CLAIM_LIMIT)
    else:
        chats = SPREAD_CHATS // divisor
        await load(conn, chat=f"{OTHER_CHAT_BASE} + g % {chats}", first=1,
                   last=SPREAD_UPDATES // divisor)
    await conn.execute(sql.SQL(LOAD_HEADS_SQL))
    await conn.execute(b"ANALYZE telegram_updates")
    await conn.execute(b"ANALYZE telegram_chat_heads")


async def claim_once(conn: psycopg.AsyncConnection, store: InboxStore) -> float:
    """Time one claim of CLAIM_LIMIT in a rolled-back transaction; return milliseconds."""
    async with conn.transaction(force_rollback=True):
        started = time.perf_counter()
        jobs = await store.claim(conn, term=1, limit=CLAIM_LIMIT)
        elapsed_ms = (time.perf_counter() - started) * 1000
    if len(jobs) != CLAIM_LIMIT:
        raise RuntimeError(f"claimed {len(jobs)} updates, expected {CLAIM_LIMIT}")
    return elapsed_ms


async def select_1(conn: psycopg.AsyncConnection, store: InboxStore) -> float:
    """Time one `SELECT 1` round trip; return milliseconds."""
    started = time.perf_counter()
    await conn.execute(b"SELECT 1")
    return (time.perf_counter() - started) * 1000


async def time_runs(url: str, rounds: int, runs: int,
                    measure: Callable[[psycopg.AsyncConnection, InboxStore], Awaitable[float]],
                    ) -> dict[str, float | list[float]]:
    """Time `rounds` x `runs` measurements; return p50/p99 overall and the rounds' p50 range."""
    store = InboxStore(BOT_ID, instance_id="bench")
    all_ms: list[float] = []
    round_p50: list[float] = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for _ in range(rounds):
            ms = [await measure(conn, store) for _ in range(runs)]
            all_ms += ms
            round_p50.append(round(percentile(ms, 0.5), 3))
    return {"p50_ms": round(percentile(all_ms, 0.5), 3),
            "p99_ms": round(percentile(all_ms, 0.99), 3),
            "runs": len(all_ms), "p50_ms_rounds": [min(round_p50), max(round_p50)]}


async def main(args: argparse.Namespace) -> dict[str, object]:
    admin_url = args.database_url
    name = f"kiebot_bench_claim_{secrets.token_hex(4)}"
    url = conninfo.make_conninfo(admin_url, dbname=name)
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        await migrations.apply_pending(url)
        divisor = QUICK_DIVISOR if args.quick else 1
        load_before = os.getloadavg()[0]
        result: dict[str, object] = {}
        for case in ("no_backlog", "single_chat_200k", "spread_1m"):
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await prepare(conn, case, divisor)
            result[case] = await time_runs(url, args.rounds, args.claims, claim_once)
        result["select_1_floor"] = await time_runs(url, args.rounds, args.claims, select_1)
        result["sizes_divided_by"] = divisor
        result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        result["cores"] = os.cpu_count()
        return result
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--claims", type=int, default=DEFAULT_CLAIMS_PER_ROUND,
                        help="claims per round")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url or TEST_DATABASE_URL is required")
    return args


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(main(parse_args()))).decode())
