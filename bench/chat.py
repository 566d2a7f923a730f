"""Measure the chat as users click it: menu -> catalog -> model card -> form -> Generate.

    python bench/chat.py [--quick] [--users 1000] [--rate 200] [--mode polling|webhook]

A throwaway database, the Telegram sandbox without rate limits, and one real instance
(`python -m supervisor run`: FSM in PostgreSQL, Fluent i18n, the member middleware, every
router). Each simulated user sends /start, opens the image category, the `z-image` card,
presses Generate, types a prompt, and presses Generate on the form's card (a free job is
made); users alternate English and Russian. Every user waits for the bot's answer to one
click before the next (as a person does), and the clicks of all users together go out at a
steady `--rate` updates/s: each tick sends the next ready users' clicks.

The Generate press of the card carries the card's id, which is the update id of the click
that last changed the form (the prompt), so the simulator knows it from the inject answer
without reading the bot's keyboard.

Figures: `answer_ms` p50/p99/max (the click's inject sent -> the bot's first action in that
chat seen in the sandbox outbox), `updates_per_s` (answered clicks / window), the instance's
`cpu_ms_per_update` (and PostgreSQL backends'), `unanswered` (clicks without their final
action: the message, or the callback's answer, within the timeout), `behind_ticks` (ticks
with no user ready: the rate was not the limit then). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import common
from sandbox.harness.cluster import InstanceCluster
from sandbox.harness.env import DEPLOYED_DB_MAXCONN
from sandbox.harness.postgres import free_port
from sandbox.telegram.control import SandboxClient, SandboxTimeout
from services.catalog import get_catalog
from services.telegram.forms.screens import Verb
from services.telegram.handlers.generate import FormPress
from services.telegram.ui import CategoryCb, GenerateCb, ModelCb
from services.telegram.webhook import WEBHOOK_PATH

DEFAULT_USERS = 1_000
QUICK_USERS = 100
WARMUP_USERS = 20
DEFAULT_RATE_PER_S = 200.0
TICK_S = 0.01
CHAT_ID_BASE = 6_000_000_000
MODEL_ID = "z-image"
PROMPT = "a lighthouse on a cliff at dawn"
OUTBOX_PAGE = 10_000
WAIT_CHUNK_S = 5.0
SANDBOX_CLIENT_TIMEOUT_S = 60.0
# Give up on answers this long after the last click was sent.
DRAIN_TIMEOUT_S = 60.0
SEND_MESSAGE = "sendMessage"
ANSWER_CALLBACK = "answerCallbackQuery"


@dataclass
class Click:
    """One click in flight: when it was sent and the bot action that ends its handling."""

    sent_at: float
    final_method: str
    first_at: float | None = None


@dataclass
class User:
    """One simulated user and where they are in the flow."""

    chat_id: int
    language: str
    step: int = 0
    card: int = 0
    click: Click | None = None


@dataclass
class Run:
    """What the simulator saw."""

    answers_s: list[float] = field(default_factory=list)
    by_step: dict[int, list[float]] = field(default_factory=dict)
    finished: int = 0
    sent: int = 0
    behind_ticks: int = 0
    unexpected: int = 0
    first_sent: float = 0.0
    last_answer: float = 0.0


def flow_length() -> int:
    """Return the clicks of one user's flow."""
    return len(STEPS)


def _who(user: User) -> dict[str, object]:
    return {"chat_id": user.chat_id, "user_id": user.chat_id, "first_name": "Bench",
            "username": f"bench_{user.chat_id}", "language_code": user.language}


def _message(user: User, text: str) -> tuple[dict[str, object], str]:
    return {"kind": "message", "text": text, **_who(user)}, SEND_MESSAGE


def _press(user: User, data: str) -> tuple[dict[str, object], str]:
    return {"kind": "callback", "data": data, **_who(user)}, ANSWER_CALLBACK


MODEL_INDEX = next(i for i, m in enumerate(get_catalog().models) if m.id == MODEL_ID)
STEPS: tuple[Callable[[User], tuple[dict[str, object], str]], ...] = (
    lambda u: _message(u, "/start"),
    lambda u: _press(u, CategoryCb(category="image").pack()),
    lambda u: _press(u, ModelCb(model=MODEL_INDEX).pack()),
    lambda u: _press(u, GenerateCb(model=MODEL_INDEX).pack()),
    lambda u: _message(u, PROMPT),
    lambda u: _press(u, FormPress(verb=Verb.GO, card=u.card).pack()),
)
PROMPT_STEP = 4
FLOW = ("/start", "category image", "z-image card", "Generate", "prompt", "Generate (card)")


async def send_clicks(client: SandboxClient, users: list[User], run: Run, *,
                      rate_per_s: float, ready: deque[User], done: asyncio.Event) -> None:
    """Send the next click of ready users at rate_per_s in all, one inject per tick."""
    total = len(users) * flow_length()
    started = time.perf_counter()
    run.first_sent = started
    tick = 0
    while run.sent < total:
        tick += 1
        due = started + tick * TICK_S
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        quota = int(tick * TICK_S * rate_per_s) - run.sent
        batch: list[User] = []
        while ready and len(batch) < quota:
            batch.append(ready.popleft())
        if not batch:
            run.behind_ticks += quota > 0
            continue
        items = []
        sent_at = time.perf_counter()
        for user in batch:
            item, final = STEPS[user.step](user)
            user.click = Click(sent_at, final)
            items.append(item)
        ids = await client.inject(items)
        for user, update_id in zip(batch, ids, strict=True):
            if user.step == PROMPT_STEP and update_id is not None:
                user.card = update_id  # the card id the prompt's update gives the form
        run.sent += len(batch)
    done.set()


async def follow_answers(client: SandboxClient, by_chat: dict[int, User], run: Run, *,
                         after_seq: int, ready: deque[User], sent_all: asyncio.Event,
                         total: int) -> int:
    """Stamp each click's first bot action; on its final one, make the user ready again."""
    seq = after_seq
    deadline: float | None = None
    while run.finished < total:
        if sent_all.is_set() and deadline is None:
            deadline = time.perf_counter() + DRAIN_TIMEOUT_S
        if deadline is not None and time.perf_counter() > deadline:
            break
        try:
            await client.wait(timeout_s=WAIT_CHUNK_S, outbox_at_least=seq + 1)
        except SandboxTimeout:
            continue
        items = await client.outbox(after_seq=seq, limit=OUTBOX_PAGE)
        seen = time.perf_counter()
        for item in items:
            seq = max(seq, int(item["seq"]))
            user = by_chat.get(int(item.get("chat_id") or 0))
            click = user.click if user is not None else None
            if user is None or click is None:
                run.unexpected += 1
                continue
            if click.first_at is None:
                click.first_at = seen
                run.answers_s.append(seen - click.sent_at)
                run.by_step.setdefault(user.step, []).append(seen - click.sent_at)
                run.last_answer = seen
            if item["method"] == click.final_method:
                user.click = None
                user.step += 1
                run.finished += 1
                if user.step < flow_length():
                    ready.append(user)
    return seq


async def drive(sandbox_url: str, users: list[User], *, rate_per_s: float,
                window: common.Window | None) -> tuple[Run, dict[str, float], float]:
    """Run every user's flow at the rate; return what was seen, CPU cores and window s."""
    run = Run()
    ready: deque[User] = deque(users)
    sent_all = asyncio.Event()
    async with SandboxClient(sandbox_url, timeout_s=SANDBOX_CLIENT_TIMEOUT_S) as client:
        after_seq = int((await client.stats())["outbox"])
        if window is not None:
            window.start()
        began = time.perf_counter()
        follower = asyncio.create_task(follow_answers(
            client, {u.chat_id: u for u in users}, run, after_seq=after_seq, ready=ready,
            sent_all=sent_all, total=len(users) * flow_length()), name="bench-follower")
        try:
            await send_clicks(client, users, run, rate_per_s=rate_per_s, ready=ready,
                              done=sent_all)
            await follower
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        wall_s = time.perf_counter() - began
        cpu = window.stop() if window is not None else {}
    return run, cpu, wall_s


def make_users(n: int, offset: int) -> list[User]:
    """Return n users with fresh chats, alternating English and Russian."""
    return [User(CHAT_ID_BASE + offset + i, "ru" if i % 2 else "en") for i in range(n)]


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Start everything, warm up, measure once, clean up; return the result document."""
    users = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    started = time.monotonic()
    with common.bench_stack() as stack:
        logs = common.logs_dir(stack, keep=args.keep_logs)
        db = common.bench_database(stack)
        sandbox = common.start_sandbox(stack, logs)
        webhook_base_url = "https://bot.example.com"  # unused in polling mode
        port = free_port() if args.mode == "webhook" else None
        if port is not None:
            webhook_base_url = f"http://127.0.0.1:{port}"
        env = common.instance_env(db.url, sandbox.base_url, mode=args.mode,
                                  webhook_base_url=webhook_base_url, db_maxconn=args.db_maxconn,
                                  log_level=args.log_level)
        cluster = common.start_instances(stack, env, logs, n=1,
                                         ports=[port] if port is not None else None)
        common.wait_leader(cluster)
        if args.mode == "webhook":
            common.wait_webhook_set(sandbox.base_url, webhook_base_url + WEBHOOK_PATH)
        else:
            common.wait_sandbox_calls(sandbox.base_url, "getUpdates")
        warm, _, _ = asyncio.run(drive(sandbox.base_url, make_users(WARMUP_USERS, 0),
                                       rate_per_s=args.rate, window=None))
        groups = {"instance": lambda: instance_pids(cluster),
                  "postgres_backends": lambda: common.database_backend_pids(db.url),
                  "sandbox": lambda: [sandbox.process.pid] if sandbox.process else [],
                  "generator": lambda: [os.getpid()]}
        profiler = (common.PySpy(stack, lambda: instance_pids(cluster), Path(args.profile))
                    if args.profile else None)
        quiet_busy = common.wait_quiet()
        transactions_before = common.database_transactions(db.url)
        run, cpu, wall_s = asyncio.run(drive(
            sandbox.base_url, make_users(users, WARMUP_USERS), rate_per_s=args.rate,
            window=common.Window(common.CpuMeter(groups), profiler)))
        if profiler is not None:
            profiler.finish()
        time.sleep(common.STATS_FLUSH_S)
        transactions = common.database_transactions(db.url) - transactions_before
        jobs = db.count("SELECT count(*) FROM generation_jobs WHERE user_id >= %s",
                        (CHAT_ID_BASE + WARMUP_USERS,))
    clicks = users * flow_length()
    answered = len(run.answers_s)
    seconds = run.last_answer - run.first_sent if answered else 0.0
    latency = common.latency_ms(run.answers_s)
    return {
        "answer_ms": {"p50": latency["p50_ms"], "p99": latency["p99_ms"],
                      "max": latency["max_ms"]},
        "updates_per_s": round(answered / seconds, 1) if seconds else 0.0,
        "cpu_ms_per_update": round(cpu.get("instance", 0.0) * wall_s / max(answered, 1) * 1000,
                                   2),
        "postgres_cpu_ms_per_update": round(
            cpu.get("postgres_backends", 0.0) * wall_s / max(answered, 1) * 1000, 2),
        "answer_ms_by_step": {
            FLOW[step]: {"p50": common.latency_ms(found)["p50_ms"],
                         "p99": common.latency_ms(found)["p99_ms"]}
            for step, found in sorted(run.by_step.items())},
        "db_transactions_per_update": round(transactions / max(answered, 1), 2),
        "unanswered": clicks - run.finished,
        "clicks": clicks, "users": users, "jobs_created": jobs,
        "behind_ticks": run.behind_ticks, "unexpected_actions": run.unexpected,
        "warmup_unanswered": WARMUP_USERS * flow_length() - warm.finished,
        "cpu_cores": cpu, "noise_warning": common.noise_warning(cpu),
        "machine_busy_cores_before": round(quiet_busy, 2),
        "config": {"mode": args.mode, "rate_per_s": args.rate, "tick_s": TICK_S,
                   "flow": list(FLOW),
                   "languages": ["en", "ru"], "db_maxconn": args.db_maxconn,
                   "log_level": args.log_level, "event_loop": common.event_loop_name(),
                   "cores": os.cpu_count(), "postgres": db.postgres,
                   "sources": common.source_fingerprint(),
                   "elapsed_s": round(time.monotonic() - started, 1)},
    }


def instance_pids(cluster: InstanceCluster) -> list[int]:
    """Return the pids of the running instance processes."""
    return [m.process.pid for m in cluster.members if m.process is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS} users")
    parser.add_argument("--users", type=int, help=f"default {DEFAULT_USERS}")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE_PER_S,
                        help="clicks per second of all users together")
    parser.add_argument("--mode", choices=("polling", "webhook"), default="polling")
    parser.add_argument("--db-maxconn", type=int, default=DEPLOYED_DB_MAXCONN,
                        help="instance pool size (default: as deployed)")
    parser.add_argument("--log-level", default="WARNING", help="instance LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' log files (path on stderr)")
    parser.add_argument("--profile", metavar="PATH",
                        help="py-spy the instance over the measured window into PATH"
                             " (.svg flamegraph, .json speedscope, else raw collapsed stacks)")
    args = parser.parse_args(argv)
    print(orjson.dumps(run_benchmark(args)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
