"""Measure money in: pre-checkout answers behind a backlog, and top-ups that must not double.

    python bench/payments.py [--quick] [--database-url URL] [--backlog 50000] [--samples 30]

pre_checkout_ms
    The product as it runs (the composition root's leader services, won through the real
    Elector, polling the Telegram sandbox) with `--backlog` text messages queued in the inbox
    ahead (over 5,000 chats, stored before any payment, so older than it). Then, one after
    another, `--samples` users pay a Stars invoice (`POST /_sandbox/pay`): the figure is the
    sandbox's own time from the pre_checkout_query to answerPreCheckoutQuery (Telegram's
    deadline is 10 s; the target p99 is under 1,000 ms). `backlog_left` is what was still
    queued when the last sample was answered (the lane, not an emptied inbox, made it fast).
double_topups
    Payments credited more than once, over: every paid sample's successful_payment delivered
    twice by the sandbox; `--races` transfers each approved by two operators at once; and
    `--races` Stars charges each recorded four times at once. Must be 0.
broadcast
    Left for the operators' console (`admin`): null until it measures its broadcasts.

Prints one JSON object. The database is created on the server of `--database-url` (default
TEST_DATABASE_URL), migrated, and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
from aiogram.types import LabeledPrice
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.common import percentile
from config import load_settings
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from sandbox.telegram.invoices import PRE_CHECKOUT_DEADLINE_S
from services.composition import compose
from services.payments import decisions
from services.payments.decisions import Decision, Receipt
from services.payments.stars import CURRENCY, packages
from services.payments.store import ReceiptKind
from services.telegram.bot import create_bot
from services.telegram.inbox import bot_id_of
from services.users import ensure_user
from supervisor import migrations
from supervisor.election import Elector, Leadership
from supervisor.runtime_state import RuntimeState
from supervisor.sqlstore import QueryStore
from supervisor.stores import TransitionReason

QUERIES = QueryStore(Path(__file__).with_name("sql") / "payments.sql")
BOT_TOKEN = "123456789:BENCH-token_abcdefghijklmnopqrstuvwxyz"
KIE_KEY = "kie-bench-key-0123456789"
OPERATORS = (1001, 1002)
RUB_PER_STAR = Decimal("1.2")
BACKLOG = 50_000
BACKLOG_CHATS = 5_000
LOAD_BATCH = 10_000
SAMPLES = 30
RACES = 50
QUICK_DIVISOR = 10
# Real updates get ids above the loaded backlog, so the backlog is older than each payment.
FIRST_UPDATE_ID = 100_000_000
PAYER_BASE = 5_000_000
POOL_MAX_SIZE = 20
POLL_S = 0.005
LEADER_TIMEOUT_S = 30.0
CREDIT_TIMEOUT_S = 120.0


def environment(database_url: str, telegram_url: str) -> dict[str, str]:
    """Return one instance's environment, pointed at the sandbox (Kie is never reached)."""
    return {"ADMIN_ID": ",".join(map(str, OPERATORS)), "BOT_MODE": "polling",
            "DATABASE_URL": database_url, "DB_MAXCONN": str(POOL_MAX_SIZE),
            "KIE_API_KEY": KIE_KEY, "PAYMENT_BANK": "Bench Bank",
            "PAYMENT_CARD_HOLDER": "Ivan Petrov", "PAYMENT_PHONE": "+79990001122",
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "WEBHOOK_BASE_URL": "https://bot.example.com",
            "TELEGRAM_API_BASE": telegram_url, "KIE_BASE_URL": "http://127.0.0.1:9",
            "KIE_UPLOAD_BASE_URL": "http://127.0.0.1:9", "PORT": "0",
            "INSTANCE_ID": "bench-payments", "STARS_RUB_RATE": str(RUB_PER_STAR),
            "LOG_LEVEL": "ERROR"}


async def one(pool: AsyncConnectionPool, name: str, **params: Any) -> int:
    """Run one named bench query returning a count."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[name], params)
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def load_backlog(pool: AsyncConnectionPool, size: int) -> None:
    """Queue `size` pending messages ahead of every payment."""
    async with pool.connection() as conn:
        for first in range(1, size + 1, LOAD_BATCH):
            await conn.execute(QUERIES["load_backlog"], {
                "bot_id": bot_id_of(BOT_TOKEN), "chats": BACKLOG_CHATS, "first": first,
                "last": min(size, first + LOAD_BATCH - 1)})
        await conn.execute(QUERIES["load_heads"])
        await conn.execute(b"ANALYZE telegram_updates")
        await conn.execute(b"ANALYZE telegram_chat_heads")


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Poll condition until it holds (True) or timeout_s passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(POLL_S)
    return False


async def answered(control: SandboxClient, checkout_id: str) -> dict[str, Any]:
    """Wait until the sandbox's checkout is answered (or past its deadline); return it."""
    deadline = time.monotonic() + PRE_CHECKOUT_DEADLINE_S + 5
    while time.monotonic() < deadline:
        for checkout in (await control.payments())["checkouts"]:
            if checkout["id"] == checkout_id and checkout["status"] != "pending":
                return dict(checkout)
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"checkout {checkout_id} never left pending")


async def pre_checkouts(control: SandboxClient, pool: AsyncConnectionPool,
                        samples: int) -> dict[str, Any]:
    """Pay one invoice per sample behind the backlog; return the answer times."""
    times_ms: list[float] = []
    statuses: dict[str, int] = {}
    for n in range(samples):
        paid = await control.pay(PAYER_BASE + n)
        checkout = await answered(control, paid["checkout_id"])
        statuses[checkout["status"]] = statuses.get(checkout["status"], 0) + 1
        if checkout["answered_after_ms"] is not None:
            times_ms.append(checkout["answered_after_ms"])
    backlog_left = await one(pool, "pending_updates")
    return {"p50": round(percentile(times_ms, 0.5), 1), "p99": round(percentile(times_ms, 0.99), 1),
            "max": round(max(times_ms, default=0.0), 1), "samples": samples,
            "statuses": statuses, "backlog_left": backlog_left}


async def approval_races(pool: AsyncConnectionPool, leadership: Leadership, races: int) -> None:
    """Have two operators approve each of `races` transfers at once."""
    async with pool.connection() as conn:
        for n in range(races):
            await ensure_user(conn, user_id=PAYER_BASE + 100_000 + n, username=None,
                              first_name="Race", language_code="ru")
    payment_ids = []
    for n in range(races):
        async with leadership.fenced(pool) as conn:
            result = await decisions.record_receipt(
                conn, user_id=PAYER_BASE + 100_000 + n, amount_kop=50_000,
                reference=f"KB-RACE{n:05d}",
                receipt=Receipt(f"file-{n}", f"unique-{n}", ReceiptKind.PHOTO),
                idempotency_key=f"race:{n}", pending_s=3600, operators=OPERATORS)
        assert result.payment is not None
        payment_ids.append(result.payment.id)

    async def press(payment_id: int, operator: int) -> None:
        async with leadership.fenced(pool) as conn:
            await decisions.decide(conn, payment_id, decision=Decision.APPROVE,
                                   operator_id=operator, operator_name=str(operator))

    await asyncio.gather(*(press(pid, op) for pid in payment_ids for op in OPERATORS))


async def charge_races(pool: AsyncConnectionPool, leadership: Leadership, races: int) -> None:
    """Record each of `races` Stars charges four times at once (Telegram delivering again)."""
    user = PAYER_BASE + 200_000
    async with pool.connection() as conn:
        await ensure_user(conn, user_id=user, username=None, first_name="Stars",
                          language_code="ru")

    async def deliver(n: int) -> None:
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            # Two inserts of one charge racing: the loser's UNIQUE violation is a rollback.
            async with leadership.fenced(pool) as conn:
                await decisions.record_star_payment(
                    conn, user_id=user, stars=100, amount_kop=12_000,
                    charge_id=f"race-charge-{n}", invoice_payload="kb1:100:12000")

    await asyncio.gather(*(deliver(n) for n in range(races) for _ in range(4)))


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the product on the sandbox, load the backlog, measure, stop."""
    divisor = QUICK_DIVISOR if args.quick else 1
    backlog, samples, races = args.backlog // divisor, max(3, args.samples // divisor), \
        max(5, args.races // divisor)
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with contextlib.AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            TelegramSandbox([BOT_TOKEN], config=config, first_update_id=FIRST_UPDATE_ID))
        control = await stack.enter_async_context(SandboxClient(sandbox.base_url))
        settings = load_settings(environment(url, sandbox.base_url))
        pool = AsyncConnectionPool(url, min_size=2, max_size=POOL_MAX_SIZE, open=False)
        await pool.open()
        stack.push_async_callback(pool.close)
        state = RuntimeState(instance_id="bench", bot_mode="polling", version="bench")
        composition = await compose(settings, pool, state)
        for close in composition.on_close:
            stack.push_async_callback(close)
        stop = asyncio.Event()
        elector = Elector(settings, state, pool)
        leadership = await asyncio.wait_for(elector.campaign(stop), LEADER_TIMEOUT_S)
        assert leadership is not None
        stack.push_async_callback(elector.release, leadership,
                                  reason=TransitionReason.STOPPING, resign=True)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(elector.hold(leadership, stop), name="bench-hold")]
        tasks += [asyncio.create_task(service.run(leadership), name=f"bench-{service.name}")
                  for service in composition.leader_only]

        async def stop_services() -> None:
            leadership.draining.set()
            stop.set()
            await asyncio.wait(tasks, timeout=10)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        stack.push_async_callback(stop_services)
        invoicer = create_bot(settings, leading=lambda: True)
        stack.push_async_callback(invoicer.session.close)
        package = packages(RUB_PER_STAR)[1]
        for n in range(samples):
            await invoicer.send_invoice(
                PAYER_BASE + n, title="Balance", description=f"{package.stars} stars",
                payload=package.payload(), currency=CURRENCY,
                prices=[LabeledPrice(label="Balance", amount=package.stars)])
        await load_backlog(pool, backlog)
        load_before = os.getloadavg()[0]
        result: dict[str, Any] = {
            "pre_checkout_ms": await pre_checkouts(control, pool, samples)}
        result["pre_checkout_ms"]["backlog"] = backlog
        # Discard what is left of the backlog, so the deliveries below are not queued behind it.
        async with leadership.fenced(pool) as conn:
            await conn.execute(QUERIES["drop_backlog"])
        for charge in (await control.payments())["charges"]:
            await control.redeliver_payment(charge["charge_id"])
        await approval_races(pool, leadership, races)
        await charge_races(pool, leadership, races)
        expected = len((await control.payments())["charges"]) + 2 * races

        async def all_credited() -> bool:
            return await one(pool, "topups") >= expected

        await until(all_credited, CREDIT_TIMEOUT_S)
        result["double_topups"] = await one(pool, "double_topups")
        result["topups"] = {"recorded": await one(pool, "topups"), "expected": expected}
        result["broadcast"] = None  # the operators' console (admin) fills this in
        result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        result["cores"] = os.cpu_count()
        return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Create a throwaway database, run, drop it."""
    admin_url = args.database_url
    name = f"kiebot_bench_payments_{secrets.token_hex(4)}"
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        await migrations.apply_pending(url)
        return await run(url, args)
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--races", type=int, default=RACES)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url or TEST_DATABASE_URL is required")
    return args


if __name__ == "__main__":
    # Notices to the bench's fake operators fail by design; only errors are worth a line.
    logging.basicConfig(level=logging.ERROR)
    print(orjson.dumps(asyncio.run(main(parse_args()))).decode())
