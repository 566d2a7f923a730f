"""Broadcast to sandbox users across leader faults: rate, 429s, lost and duplicated messages.

    python bench/broadcast.py [--quick] [--in-process]   (10,000 recipients; --quick 1,000)

One broadcast is written for RECIPIENTS users (the rows the console's confirm writes,
`start_broadcast`, written from this process); the leader's `BroadcastSender` (the generic
Worker, BROADCAST_RATE per second) sends it through the Telegram sandbox with its real
per-bot limit (~30/s, 429 past it). Mid-way, FAULTS times, the leader is faulted.

Real processes (the default, `measure_processes`): 3 instances (`python -m supervisor run`)
and the Telegram sandbox as processes (sandbox/harness/chaos.py); the faults are real
signals to the leader, SIGKILL, SIGTERM, SIGKILL (the member is restarted), and every
duplicate is checked to lie in a SIGKILL window (`duplicates_outside_sigkill_windows`).
In-process (`--in-process`, `measure`, what tests/integration and bench/payments.py call):
the sender's term is deposed (a newer term begins, the sender is cancelled with its sends
in flight, as in a crash) and a new term's sender starts. Figures, from the sandbox's log:
    rate_ratio  sends per second (first to last send) / BROADCAST_RATE
    http_429    429s the sandbox answered
    lost        recipients that never got the message (nor were marked blocked)
    duplicates  messages beyond one per recipient (only sends in flight at a fault can be)
`measure()` is what payments' bench/payments.py calls for its `broadcast` part.
Prints one JSON object: {"broadcast": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from sandbox.harness.chaos import ChaosCluster, Send, attribute, outbox_sends
from sandbox.harness.chaos import count as chaos_count
from sandbox.harness.chaos import rows as chaos_rows
from sandbox.harness.env import BOT_TOKEN, make_env
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from sandbox.telegram.inject import ensure_chat
from services.broadcast import start_broadcast
from services.broadcast.sender import CONCURRENCY, BroadcastSender
from services.telegram.bot import create_bot
from supervisor.election import Leadership

RECIPIENTS = 10_000
QUICK_RECIPIENTS = 1_000
FAULTS = 3
# The real-process run's faults, in order, at 1/4, 2/4 and 3/4 of the sends.
PROCESS_FAULTS = (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL)
DEFAULT_RATE_PER_S = 25.0
FIRST_USER_ID = 5_000_000
OPERATOR_ID = 4_999_999
LEASE = "bench-broadcast"
WAIT_STEP_S = 0.05
# No stage of a 10,000-recipient run at 25/s takes this long (the whole run is ~400 s).
WAIT_TIMEOUT_S = 900.0
TEXT = "Hello from the operators: new models are in the catalog."
SET_TERM_SQL = b"""
INSERT INTO leader_lease (name, term) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET term = EXCLUDED.term
"""
USERS_SQL = b"""
INSERT INTO users (user_id, first_name)
SELECT g, 'User' FROM generate_series(%s::bigint, %s::bigint) AS g ON CONFLICT DO NOTHING
"""
OPEN_SQL = b"SELECT count(*) FROM broadcast_recipients WHERE status IN ('pending', 'sending')"
STATUS_SQL = b"SELECT status, count(*) FROM broadcast_recipients GROUP BY status"
SPAN_SQL = b"""
SELECT count(*), extract(epoch FROM max(settled_at) - min(settled_at))::float8
  FROM broadcast_recipients WHERE status = 'sent'
"""


async def _lead(pool: AsyncConnectionPool, term: int) -> Leadership:
    async with pool.connection() as conn:
        await conn.execute(SET_TERM_SQL, (LEASE, term))
    return Leadership(term=term, instance_id="bench", lease_name=LEASE, trusted=lambda: True)


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(WAIT_STEP_S)
    raise TimeoutError("the broadcast stalled")


async def _until_settled(pool: AsyncConnectionPool) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        if not await _count(pool, OPEN_SQL):
            return
        await asyncio.sleep(WAIT_STEP_S)
    raise TimeoutError("the broadcast never finished")


async def _count(pool: AsyncConnectionPool, sql: bytes) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()
    return int(row[0]) if row else 0


async def measure(database_url: str, *, recipients: int, rate_per_s: float = DEFAULT_RATE_PER_S,
                  faults: int = FAULTS, blocked: int = 0) -> dict[str, Any]:
    """Broadcast to `recipients` sandbox users across `faults` leader faults; return figures.

    The database must be migrated and hold no other users. The first `blocked` users have
    blocked the bot (they must end `blocked`, not lost).
    """
    config = SandboxConfig(auto_create_chats=True)  # Telegram's own limits stay on
    async with (TelegramSandbox([BOT_TOKEN], config=config) as sandbox,
                AsyncConnectionPool(database_url, min_size=2, max_size=10, open=False) as pool):
        leading = True
        bot = create_bot(load_settings(make_env(database_url,
                                                TELEGRAM_API_BASE=sandbox.base_url)),
                         leading=lambda: leading)
        state = sandbox.bot()
        users = range(FIRST_USER_ID, FIRST_USER_ID + recipients)
        for user_id in users[:blocked]:
            ensure_chat(state, user_id).blocked = True
        async with pool.connection() as conn:
            await conn.execute(USERS_SQL, (users[0], users[-1]))
        term = 1
        leadership = await _lead(pool, term)
        async with leadership.fenced(pool) as conn:
            await start_broadcast(conn, key="bench", text=TEXT, operator_id=OPERATOR_ID,
                                  language="en", chat_id=OPERATOR_ID)
        sender = BroadcastSender(pool, bot, rate_per_s=rate_per_s)
        task = asyncio.create_task(sender.run(leadership))
        try:
            for k in range(1, faults + 1):
                threshold = recipients * k // (faults + 1)
                await _until(functools.partial(_sent_at_least, state, threshold))
                # The fault: a newer term begins (our fenced writes fail from now on) and the
                # sender dies with its sends in flight, like a crashed leader.
                term += 1
                leadership = await _lead(pool, term)
                task.cancel()
                await asyncio.wait([task])
                task = asyncio.create_task(sender.run(leadership))
            await _until_settled(pool)
        finally:
            leadership.draining.set()
            await asyncio.wait([task])
            leading = False
            await bot.session.close()
        async with pool.connection() as conn:
            statuses: dict[str, int] = dict(await (await conn.execute(STATUS_SQL)).fetchall())
            span = await (await conn.execute(SPAN_SQL)).fetchone()
        return _figures(state, users, rate_per_s=rate_per_s, statuses=statuses,
                        faults=faults, span=span)


def _sent_at_least(state: Any, count: int) -> bool:
    return _sends(state) >= count


def _sends(state: Any) -> int:
    return sum(1 for e in state.outbox.items if e["method"] == "sendMessage")


def _figures(state: Any, users: range, *, rate_per_s: float, statuses: dict[str, int],
             faults: int, span: tuple[int, float] | None) -> dict[str, Any]:
    sends = [Send(int(e["chat_id"]), float(e["sent_at"]), str(e["method"]))
             for e in state.outbox.items if e.get("chat_id") in users]
    return _figures_of(sends, users, rate_per_s=rate_per_s, statuses=statuses, faults=faults,
                       span=span, http_429=int(state.counters()["status_429"]))


def _figures_of(all_sends: Sequence[Send], users: range, *, rate_per_s: float,
                statuses: dict[str, int], faults: int, span: tuple[int, float] | None,
                http_429: int) -> dict[str, Any]:
    sends = [s for s in all_sends if s.method == "sendMessage" and s.chat_id in users]
    per_chat = collections.Counter(s.chat_id for s in sends)
    # The sandbox dates in whole seconds; the settle times are exact (each lags its send
    # by about one turn, the same for all, so the span is the sending span).
    settled, span_s = span if span else (0, 0.0)
    rate = (settled - 1) / span_s if span_s else 0.0
    blocked = statuses.get("blocked", 0)
    return {
        "recipients": len(users),
        "rate_ratio": round(rate / rate_per_s, 3),
        "rate_per_s": round(rate, 2),
        "http_429": http_429,
        "lost": len(users) - len(per_chat) - blocked,
        "duplicates": sum(n - 1 for n in per_chat.values()),
        "faults": faults,
        "blocked": blocked,
        "statuses": statuses,
    }


async def measure_processes(database_url: str, *, recipients: int,
                            rate_per_s: float = DEFAULT_RATE_PER_S,
                            logs_dir: Path | None = None) -> dict[str, Any]:
    """Broadcast to `recipients` users through 3 instance processes across SIGKILL, SIGTERM,
    SIGKILL of the leader; return figures (those of `measure` plus the attribution).

    The database must be migrated and hold no other users.
    """
    logs = logs_dir or Path(tempfile.mkdtemp(prefix="kiebot-broadcast-"))
    users = range(FIRST_USER_ID, FIRST_USER_ID + recipients)
    # The sandbox keeps Telegram's real limits (30/s per bot, 1/s per chat).
    async with ChaosCluster(database_url, logs, kie=False,
                            env={"BROADCAST_RATE": f"{rate_per_s:g}",
                                 "LOG_LEVEL": "WARNING"}) as chaos, \
            SandboxClient(chaos.telegram_url) as control, \
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(USERS_SQL, (users[0], users[-1]))
        async with conn.transaction():
            started = await start_broadcast(conn, key="bench-processes", text=TEXT,
                                            operator_id=OPERATOR_ID, language="en",
                                            chat_id=OPERATOR_ID)
        for k, sig in enumerate(PROCESS_FAULTS, start=1):
            threshold = recipients * k // (len(PROCESS_FAULTS) + 1)
            await _until_async(functools.partial(_sandbox_sends_at_least, control, threshold))
            await chaos.fault_leader(sig)
        await _until_async(functools.partial(_recipients_settled, database_url, started.id))
        sends = await outbox_sends(control, users)
        stats = await control.stats()
        terms = await chaos.terms()
        faults = chaos.fault_counts()
    settled = await chaos_rows(database_url, "recipients", {"broadcast_id": started.id})
    statuses = dict(collections.Counter(str(r["status"]) for r in settled))
    sent = sorted(r["settled_s"] for r in settled if r["status"] == "sent")
    span = (len(sent), sent[-1] - sent[0]) if len(sent) > 1 else None
    figures = _figures_of(sends, users, rate_per_s=rate_per_s, statuses=statuses,
                          faults=len(PROCESS_FAULTS), span=span,
                          http_429=int(stats["status_429"]))
    per_chat: dict[int, list[float]] = collections.defaultdict(list)
    for send in sends:
        if send.method == "sendMessage":
            per_chat[send.chat_id].append(send.sent_at)
    found = attribute(per_chat, {int(r["user_id"]): r["settled_s"] for r in settled}, terms)
    attribution = found.figures()
    attribution.pop("duplicate_deliveries")
    return {**figures, "signals": faults, "mode": "processes", **attribution,
            "sender_concurrency": CONCURRENCY}


async def _until_async(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(WAIT_STEP_S)
    raise TimeoutError("the broadcast stalled")


async def _sandbox_sends_at_least(control: SandboxClient, count: int) -> bool:
    return int((await control.stats())["calls"].get("sendMessage", 0)) >= count


async def _recipients_settled(database_url: str, broadcast_id: int) -> bool:
    return not await chaos_count(database_url, "open_recipients",
                                 {"broadcast_id": broadcast_id})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 recipients (a smoke run)")
    parser.add_argument("--in-process", action="store_true",
                        help="the sender in this process, faults as term changes")
    args = parser.parse_args()
    from bench.common import bench_database, logs_dir  # the bench's throwaway database

    with contextlib.ExitStack() as stack:
        database = bench_database(stack)
        started = time.monotonic()
        recipients = QUICK_RECIPIENTS if args.quick else RECIPIENTS
        if args.in_process:
            figures = asyncio.run(measure(database.url, recipients=recipients))
        else:
            figures = asyncio.run(measure_processes(database.url, recipients=recipients,
                                                    logs_dir=logs_dir(stack)))
        figures["wall_s"] = round(time.monotonic() - started, 1)
        figures["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    sys.stdout.write(orjson.dumps({"broadcast": figures, "quick": args.quick}).decode() + "\n")


if __name__ == "__main__":
    main()
