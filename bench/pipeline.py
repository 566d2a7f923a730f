"""Measure the whole pipeline: updates injected into the Telegram sandbox until the bot's replies.

    python bench/pipeline.py [--quick] [--updates 10000] [--chats 1000] [--instances 1]
                             [--mode polling|webhook] [--inject-rate 0]

A throwaway database, the Telegram sandbox without rate limits, and N real instances
(`python -m supervisor run`); in webhook mode the sandbox pushes to
`sandbox.harness.balancer`, which spreads deliveries over the instances as Render's balancer
would. After a warm-up, N unknown commands with unique texts (`/pipeline <i>`) go into 1,000
private chats (in batches, as fast as the sandbox takes them unless --inject-rate paces them);
the fallback handler answers each with `I did not understand “<text>”...`, so every reply
names its update. A reader follows the
sandbox outbox (long-polling `/_sandbox/wait?outbox_at_least=...`, then reading the new
entries) and stamps each reply when it sees it.

Figures: updates/s from the first inject to the last reply seen; per-update latency (reply
seen - its inject batch acknowledged; in a burst this is mostly queueing); `lost` (updates
without a reply within the timeout), `duplicates` (extra replies to one update). Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import common
from sandbox.harness.cluster import InstanceCluster, ServerProcess
from sandbox.harness.env import DEPLOYED_DB_MAXCONN
from sandbox.harness.postgres import free_port
from sandbox.telegram.control import SandboxClient, SandboxTimeout
from services.telegram.webhook import WEBHOOK_PATH

DEFAULT_UPDATES = 10_000
QUICK_UPDATES = 2_000
WARMUP_UPDATES = 200
INJECT_BATCH = 100
CHAT_ID_BASE = 7_000_000_000
# Every reply quotes the command it did not understand; ours are "/pipeline <index>" (plain
# text at the menu would be a prompt for the generation form, not the fallback).
TEXT_PREFIX = "/pipeline"
WARMUP_PREFIX = "/warmup"
REPLY_QUOTE = re.compile("\u201c" + TEXT_PREFIX + r" (\d+)\u201d")
OUTBOX_PAGE = 10_000
# One long poll of the sandbox's wait endpoint (it allows up to 300 s).
WAIT_CHUNK_S = 10.0
SANDBOX_CLIENT_TIMEOUT_S = 60.0
MIN_TIMEOUT_S = 120.0
# Give up on replies after this many seconds per 1,000 updates (above MIN_TIMEOUT_S).
TIMEOUT_S_PER_1000 = 20.0
SETTLE_TIMEOUT_S = 30.0
OPEN_STATUSES = ("pending", "processing")


def message_item(index: int, chats: int, prefix: str) -> dict[str, object]:
    """Return the sandbox inject item for message `index` (private chat index % chats)."""
    chat = CHAT_ID_BASE + index % chats
    return {"kind": "message", "chat_id": chat, "user_id": chat, "first_name": "Bench",
            "username": f"bench_{chat}", "language_code": "en", "text": f"{prefix} {index}"}


@dataclass
class Measurement:
    """What the injector and the reader saw."""

    updates: int
    first_inject: float = 0.0
    inject_done: float = 0.0
    injected_at: list[float] = field(default_factory=list)
    update_ids: list[int] = field(default_factory=list)
    replies: dict[int, list[float]] = field(default_factory=dict)
    last_reply: float = 0.0
    outbox_seq: int = 0

    @property
    def replied(self) -> int:
        """Return how many distinct updates got a reply."""
        return sum(1 for index in self.replies if 0 <= index < self.updates)


async def inject_all(client: SandboxClient, run: Measurement, *, chats: int, batch: int,
                     rate_per_s: float) -> None:
    """Inject the measured messages in batches; stamp each update with its batch's ack."""
    run.injected_at = [0.0] * run.updates
    run.first_inject = time.perf_counter()
    for start in range(0, run.updates, batch):
        if rate_per_s > 0:
            due = run.first_inject + start / rate_per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        indexes = range(start, min(start + batch, run.updates))
        ids = await client.inject([message_item(i, chats, TEXT_PREFIX) for i in indexes])
        acked = time.perf_counter()
        for i in indexes:
            run.injected_at[i] = acked
        run.update_ids.extend(update_id for update_id in ids if update_id is not None)
    run.inject_done = time.perf_counter()


async def follow_outbox(client: SandboxClient, run: Measurement, *, after_seq: int,
                        deadline: float) -> None:
    """Read new outbox entries as they appear until every update has a reply (or deadline)."""
    seq = after_seq
    while run.replied < run.updates:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        try:
            await client.wait(timeout_s=min(remaining, WAIT_CHUNK_S), outbox_at_least=seq + 1)
        except SandboxTimeout:
            continue
        seq = await read_outbox(client, run, seq)
    run.outbox_seq = seq


async def read_outbox(client: SandboxClient, run: Measurement, after_seq: int) -> int:
    """Record every reply after after_seq (stamped now); return the last seq read."""
    seq = after_seq
    while True:
        items = await client.outbox(after_seq=seq, limit=OUTBOX_PAGE)
        seen = time.perf_counter()
        for item in items:
            seq = max(seq, int(item["seq"]))
            match = REPLY_QUOTE.search(str(item.get("text") or ""))
            if match:
                stamps = run.replies.setdefault(int(match.group(1)), [])
                stamps.append(seen)
                if len(stamps) == 1:
                    run.last_reply = max(run.last_reply, seen)
        if len(items) < OUTBOX_PAGE:
            return seq


async def warm_up(client: SandboxClient, chats: int) -> int:
    """Send WARMUP_UPDATES messages and wait for their replies; return the outbox seq."""
    before = int((await client.stats())["outbox"])
    count = min(WARMUP_UPDATES, chats)
    await client.inject([message_item(i, chats, WARMUP_PREFIX) for i in range(count)])
    counters = await client.wait(timeout_s=MIN_TIMEOUT_S, outbox_at_least=before + count)
    return int(counters["outbox"])


async def drive(sandbox_url: str, window: common.Window, *, updates: int, chats: int,
                batch: int, rate_per_s: float, timeout_s: float) -> tuple[Measurement, dict]:
    """Warm up, then inject and follow the replies; return the measurement and CPU use."""
    run = Measurement(updates)
    async with SandboxClient(sandbox_url, timeout_s=SANDBOX_CLIENT_TIMEOUT_S) as client:
        after_seq = await warm_up(client, chats)
        window.start()
        deadline = time.perf_counter() + timeout_s
        reader = asyncio.create_task(
            follow_outbox(client, run, after_seq=after_seq, deadline=deadline))
        try:
            await inject_all(client, run, chats=chats, batch=batch, rate_per_s=rate_per_s)
            await reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        cpu = window.stop()
    return run, cpu


async def late_replies(sandbox_url: str, run: Measurement) -> None:
    """Read outbox entries that arrived after the reader stopped (late duplicates)."""
    async with SandboxClient(sandbox_url, timeout_s=SANDBOX_CLIENT_TIMEOUT_S) as client:
        run.outbox_seq = await read_outbox(client, run, run.outbox_seq)


def update_statuses(db: common.BenchDatabase, update_ids: Sequence[int]) -> dict[str, int]:
    """Return how many of the measured updates are in each inbox status."""
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:
        rows = conn.execute(b"SELECT status, count(*) FROM telegram_updates"
                            b" WHERE update_id = ANY(%s) GROUP BY status",
                            (list(update_ids),)).fetchall()
    return {str(status): int(n) for status, n in rows}


def wait_settled(db: common.BenchDatabase, update_ids: Sequence[int]) -> dict[str, int]:
    """Wait until none of the measured updates is pending or processing; return statuses."""
    found: list[dict[str, int]] = []

    def settled() -> bool:
        found.append(update_statuses(db, update_ids))
        return not any(found[-1].get(status) for status in OPEN_STATUSES)

    common.wait_until(settled, SETTLE_TIMEOUT_S, interval_s=0.1)
    return found[-1]


def summarize(run: Measurement) -> dict[str, object]:
    """Return throughput, latency, lost and duplicates of the measured updates."""
    replied = [i for i in range(run.updates) if run.replies.get(i)]
    duplicates = sum(len(run.replies[i]) - 1 for i in replied)
    seconds = (run.last_reply - run.first_inject) if replied else 0.0
    latencies = [run.replies[i][0] - run.injected_at[i] for i in replied]
    return {"updates": run.updates, "seconds": round(seconds, 3),
            "updates_per_s": round(len(replied) / seconds) if seconds else 0,
            "lost": run.updates - len(replied), "duplicates": duplicates,
            "latency": common.latency_ms(latencies),
            "inject_s": round(run.inject_done - run.first_inject, 3)}


def start_balancer(stack: contextlib.ExitStack, logs: Path, port: int,
                   backends: Sequence[str]) -> ServerProcess:
    """Start the round-robin balancer in front of the instances."""
    args = ["--port", str(port)]
    for backend in backends:
        args += ["--backend", backend]
    return common.start_server(stack, "sandbox.harness.balancer", args, logs / "balancer.log")


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Start everything, measure once, clean up; return the result document."""
    updates = args.updates or (QUICK_UPDATES if args.quick else DEFAULT_UPDATES)
    timeout_s = args.timeout or max(MIN_TIMEOUT_S, updates / 1000 * TIMEOUT_S_PER_1000)
    started = time.monotonic()
    with common.bench_stack() as stack:
        logs = common.logs_dir(stack, keep=args.keep_logs)
        db = common.bench_database(stack)
        sandbox = common.start_sandbox(stack, logs)
        ports = [free_port() for _ in range(args.instances)]
        balancer: ServerProcess | None = None
        webhook_base_url = "https://bot.example.com"  # unused in polling mode
        if args.mode == "webhook":
            balancer_port = free_port()
            balancer = start_balancer(stack, logs, balancer_port,
                                      [f"http://127.0.0.1:{port}" for port in ports])
            webhook_base_url = balancer.base_url
        env = common.instance_env(db.url, sandbox.base_url, mode=args.mode,
                                  webhook_base_url=webhook_base_url,
                                  db_maxconn=args.db_maxconn, log_level=args.log_level,
                                  extra=dict(args.env))
        cluster = common.start_instances(stack, env, logs, n=args.instances, ports=ports)
        leader = common.wait_leader(cluster)
        if args.mode == "webhook":
            common.wait_webhook_set(sandbox.base_url, webhook_base_url + WEBHOOK_PATH)
        else:
            common.wait_sandbox_calls(sandbox.base_url, "getUpdates")
        groups: dict[str, Callable[[], Sequence[int]]] = {
            "instances": lambda: instance_pids(cluster),
            "postgres_backends": lambda: common.database_backend_pids(db.url),
            "sandbox": lambda: [sandbox.process.pid] if sandbox.process else [],
            "generator": lambda: [os.getpid()]}
        if balancer is not None:
            groups["balancer"] = lambda: [balancer.process.pid] if balancer.process else []
        profiler = (common.PySpy(stack, lambda: instance_pids(cluster)[leader:leader + 1],
                                 Path(args.profile)) if args.profile else None)
        common.wait_quiet()
        transactions_before = common.database_transactions(db.url)
        run, cpu = asyncio.run(drive(
            sandbox.base_url, common.Window(common.CpuMeter(groups), profiler),
            updates=updates, chats=args.chats, batch=args.batch, rate_per_s=args.inject_rate,
            timeout_s=timeout_s))
        if profiler is not None:
            profiler.finish()
        statuses = wait_settled(db, run.update_ids)
        time.sleep(common.STATS_FLUSH_S)
        transactions = common.database_transactions(db.url) - transactions_before
        asyncio.run(late_replies(sandbox.base_url, run))
    return {**summarize(run), "statuses": statuses, "cpu_cores": cpu,
            "db_transactions_per_update": round(transactions / run.updates, 2),
            "noise_warning": common.noise_warning(cpu),
            "config": {"mode": args.mode, "instances": args.instances, "chats": args.chats,
                       "event_loop": common.event_loop_name(),
                       "inject_batch": args.batch, "inject_rate_per_s": args.inject_rate,
                       "warmup_updates": min(WARMUP_UPDATES, args.chats),
                       "db_maxconn": args.db_maxconn, "log_level": args.log_level,
                       "extra_env": dict(args.env), "cores": os.cpu_count(),
                       "sandbox_rate_limits": "off", "postgres": db.postgres,
                       "sources": common.source_fingerprint(),
                       "elapsed_s": round(time.monotonic() - started, 1)}}


def instance_pids(cluster: InstanceCluster) -> list[int]:
    """Return the pids of the running instance processes."""
    return [m.process.pid for m in cluster.members if m.process is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_UPDATES} updates")
    parser.add_argument("--updates", type=int, help=f"default {DEFAULT_UPDATES}")
    parser.add_argument("--chats", type=int, default=common.DEFAULT_CHATS)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--mode", choices=("polling", "webhook"), default="polling")
    parser.add_argument("--inject-rate", type=float, default=0.0,
                        help="updates/s to inject at (0: as fast as the sandbox takes them)")
    parser.add_argument("--batch", type=int, default=INJECT_BATCH, help="updates per inject")
    parser.add_argument("--timeout", type=float, help="seconds to wait for every reply")
    parser.add_argument("--db-maxconn", type=int, default=DEPLOYED_DB_MAXCONN,
                        help="instance pool size (default: as deployed)")
    parser.add_argument("--log-level", default="INFO", help="instance LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' log files (path on stderr)")
    parser.add_argument("--env", type=common.env_pair, action="append", default=[],
                        metavar="KEY=VALUE", help="extra instance environment (repeatable)")
    parser.add_argument("--profile", metavar="PATH",
                        help="py-spy the leader over the measured window into PATH"
                             " (.svg flamegraph, .json speedscope, else raw collapsed stacks)")
    args = parser.parse_args(argv)
    print(orjson.dumps(run_benchmark(args)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
