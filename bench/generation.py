"""Generations per second through the whole engine, and the submitter's pace under Kie's limit.

The engine's loops run in this process (sandbox/harness/generation.py: the real Elector,
callback route, submitter, applier, poller and delivery worker, on the pool an instance is
deployed with) on a throwaway database; the throughput run's sandboxes are processes of
their own, the pace run's live in-process.
Users confirm generations as handlers do (request_generation, each in its own fenced,
pipelined transaction); Kie answers in 0 s and calls back; results go to the Telegram
sandbox.

Run 1, throughput (rate limit off: the client's bucket and the Kie sandbox's limit):
    USERS users, JOBS generations (default 1,000 and 5,000; --quick 50 and 200), confirmed
    by CONFIRMERS concurrent "handlers". Figures from the database's own timestamps:
    confirm_to_submit_ms   job created_at -> Kie received its createTask (the sandbox's task)
    callback_to_sent_ms    Kie's callback stored (job_callbacks.received_at) -> delivered_at
                           (recorded right after Telegram answered the send), on a warm
                           leader: WARMUP_JOBS generations go through first, uncounted here
    cold_callback_to_sent_ms  the same for those first generations of a fresh stack (they
                           open the connections to Telegram, Kie and the pool)
    cpu_cores              cores used over the burst by this process (`engine`), the
                           sandboxes, the database's backends, and the rest of the machine
                           (`other`); `noise_warning` when the rest used more than
                           bench.common.NOISE_CORES: the figures were taken on a busy machine.
                           The burst starts after a quiet second (`machine_busy_cores_before`)
    jobs_per_s             jobs / (first confirm -> last delivery)
    db_transactions_per_job  the database's committed + rolled back transactions / jobs
                           (load-independent: what one generation costs the database)
    lost_results           jobs without a recorded delivery, or without a Telegram message
    double_charges         jobs committed twice + wallets off their top-ups minus successes
    invariants_ok          audit() is empty
Run 1b, steady: the same path at STEADY_RATE_PER_S confirmations per second (below what the
    burst drains), 400 jobs (--quick 100): callback_to_sent_ms without a backlog.
Run 2, pace (the 20-per-10-s bucket on, the sandbox enforcing Kie's limit):
    one user confirms QUEUED jobs (default 100; --quick 40); once the first window's worth
    was submitted, a second user confirms one job.
    kie_429                the sandbox's 429 answers (must be 0)
    drain_rate_per_s       jobs per second at Kie over whole windows of 20: the jobs of the
                           windows before the last whole one over the time from the first
                           window's start to the last one's, vs the limit's 2/s
    fairness_slots         the first user's jobs submitted between the second user's
                           confirm and its submission (target <= 1)

Run 3, chaos (bench/generation_chaos.py; --skip-chaos leaves it out): 2,000 generations
    (--quick 300) through 3 real instances while the leader is SIGKILLed and SIGTERMed every
    5 s: lost results, double charges, open holds, duplicates and their SIGKILL windows.

Prints one JSON object: first the headline (`headline()`: the figures the acceptance reads,
with `callback_to_sent_p99_met`: p99 < CALLBACK_TO_SENT_P99_TARGET_MS), then each
run's own figures under its name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
from psycopg.rows import dict_row

from bench import generation_chaos
from bench.common import (
    STATS_FLUSH_S,
    CpuMeter,
    bench_database,
    database_backend_pids,
    database_transactions,
    event_loop_factory,
    latency_ms,
    logs_dir,
    noise_warning,
    source_fingerprint,
    start_sandbox,
    start_server,
    wait_quiet,
)
from sandbox.harness.env import KIE_KEY
from sandbox.harness.generation import GenerationStack, StackOptions, sample_params
from sandbox.kie import KieSandboxClient, KieSandboxConfig
from sandbox.telegram import SandboxClient
from services.generation import Created, JobLimits
from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "generation.sql")
MODEL_ID = "seedream/4.5-text-to-image"  # a priced image model: every job holds and commits
BALANCE_KOP = 10_000_000
CONFIRMERS = 16
WARMUP_JOBS = CONFIRMERS  # one per delivery slot's connection, before the burst
KIE_LIMIT_PER_S = 20 / 10.0
BUCKET_CAPACITY = 20
DRAIN_TOLERANCE = 0.05
WAIT_TIMEOUT_S = 1_800.0
POLL_S = 0.2
# The steady run: a rate well below the burst's throughput, over users of its own.
STEADY_RATE_PER_S = 20.0
STEADY_FIRST_USER = 100_000
STEADY_USERS = 100
CALLBACK_TO_SENT_P99_TARGET_MS = 100.0


def kie_config(*, rate_limited: bool) -> KieSandboxConfig:
    """Return a Kie that answers at once (and enforces its limit when rate_limited)."""
    config = KieSandboxConfig()
    config.update({"task_duration_s": 0.0, "rate_limit_enabled": rate_limited})
    return config


async def confirm(stack: GenerationStack, user_id: int, key: str) -> int:
    """Confirm one generation as a handler does; return the job id."""
    model = stack.catalog[MODEL_ID]
    outcome = await stack.request(user_id, MODEL_ID, sample_params(model), key=key)
    assert isinstance(outcome, Created), outcome
    return outcome.job.id


async def rows(url: str, name: str) -> list[dict[str, Any]]:
    """Run one named bench query."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[name])
        return list(await cur.fetchall())


async def kie_submissions(kie: KieSandboxClient) -> dict[int, float]:
    """Return when Kie first received each job's createTask (Unix s), by job id."""
    first: dict[int, float] = {}
    for task in await kie.tasks():
        job_id = int(urlsplit(task["callback_url"]).path.split("/")[-2])
        first[job_id] = min(first.get(job_id, float("inf")), task["created_ms"] / 1000)
    return first


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll condition until it holds; fail after WAIT_TIMEOUT_S."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"timed out waiting for {what}")


async def throughput(url: str, *, users: int, jobs: int, telegram_url: str,
                     kie_url: str, sandbox_pids: Sequence[int] = ()) -> dict[str, Any]:
    """Run 1: confirm `jobs` generations of `users` users, rate limit off; the CPU of this
    process, the sandboxes' (sandbox_pids) and the database's backends is metered over the
    burst, the rest of the machine's is its noise."""
    options = StackOptions(rate_limited=False, telegram_url=telegram_url, kie_url=kie_url,
                           limits=JobLimits(max_active_jobs=jobs, free_daily_quota=jobs))
    async with GenerationStack(url, options) as stack, \
            SandboxClient(stack.telegram_url) as telegram, \
            KieSandboxClient(stack.kie_url) as kie:
        for user_id in range(1, users + 1):
            await stack.fund(user_id, BALANCE_KOP)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in range(jobs):
            queue.put_nowait(number)
        # Warm-up: a leader in service has its connections open (Telegram, Kie, the pool);
        # the burst is measured on such a leader. The first generations of a fresh stack
        # pay for opening them (reported apart, as `cold_callback_to_sent_ms`).
        warm_ids = list(await asyncio.gather(*(
            confirm(stack, 1 + number % users, f"warmup-{number}")
            for number in range(WARMUP_JOBS))))
        await until(lambda: stack.all_delivered(warm_ids), "warm-up deliveries")
        job_ids: list[int] = []

        async def handler() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                job_ids.append(await confirm(stack, 1 + number % users, f"bench-{number}"))

        quiet_busy = await asyncio.to_thread(wait_quiet)
        meter = CpuMeter({"engine": lambda: [os.getpid()], "sandboxes": lambda: sandbox_pids,
                          "postgres_backends": lambda: database_backend_pids(url)})
        await asyncio.to_thread(meter.start)  # after the warm-up: the pool's backends exist
        transactions = await asyncio.to_thread(database_transactions, url)
        started = time.perf_counter()
        await asyncio.gather(*(handler() for _ in range(CONFIRMERS)))
        await until(lambda: stack.all_delivered(job_ids), "deliveries")
        wall_s = time.perf_counter() - started
        cpu = meter.stop()
        await asyncio.sleep(STATS_FLUSH_S)  # the server's statistics lag up to a second
        transactions = await asyncio.to_thread(database_transactions, url) - transactions
        sent = (await telegram.stats())["outbox"]
        submitted = await kie_submissions(kie)
        violations = await stack.violations()
    timings = await rows(url, "job_timings")
    [charges] = await rows(url, "double_charges")
    submit = [submitted[r["id"]] - r["confirmed_s"] for r in timings if r["id"] in submitted]
    measured, warm = set(job_ids), set(warm_ids)
    to_sent = [r["delivered_s"] - r["callback_s"] for r in timings
               if r["id"] in measured and r["delivered_s"] and r["callback_s"]]
    cold = [r["delivered_s"] - r["callback_s"] for r in timings
            if r["id"] in warm and r["delivered_s"] and r["callback_s"]]
    delivered = sum(1 for r in timings if r["delivered"])
    all_jobs = jobs + len(warm_ids)  # every job counts for lost and duplicated results
    return {
        "users": users, "jobs": jobs, "wall_s": round(wall_s, 2),
        "jobs_per_s": round(jobs / wall_s, 1),
        "confirm_to_submit_ms": _p50_p99(submit),
        "callback_to_sent_ms": _p50_p99(to_sent),
        "callbacks_measured": len(to_sent),
        "cold_callback_to_sent_ms": _p50_p99(cold),
        "db_transactions_per_job": round(transactions / jobs, 1),
        "telegram_results": sent,
        "lost_results": all_jobs - min(delivered, sent),
        "duplicate_results": max(0, sent - all_jobs),
        "double_charges": int(charges["n"]),
        "invariants_ok": not violations,
        "cpu_cores": cpu, "noise_warning": noise_warning(cpu),
        "machine_busy_cores_before": round(quiet_busy, 2),
    }


async def steady(url: str, *, rate_per_s: float, jobs: int, telegram_url: str,
                 kie_url: str) -> dict[str, Any]:
    """Run 1b: confirm jobs at a steady rate below capacity; the path's own latency."""
    options = StackOptions(rate_limited=False, telegram_url=telegram_url, kie_url=kie_url,
                           limits=JobLimits(max_active_jobs=jobs, free_daily_quota=jobs))
    async with GenerationStack(url, options) as stack:
        users = range(STEADY_FIRST_USER, STEADY_FIRST_USER + STEADY_USERS)
        for user_id in users:
            await stack.fund(user_id, BALANCE_KOP)
        job_ids = []
        started = time.perf_counter()
        for number in range(jobs):
            await asyncio.sleep(max(0.0, started + number / rate_per_s - time.perf_counter()))
            job_ids.append(await confirm(stack, users[number % len(users)], f"steady-{number}"))
        await until(lambda: stack.all_delivered(job_ids), "deliveries")
        violations = await stack.violations()
    timings = await rows(url, "job_timings")
    to_sent = [r["delivered_s"] - r["callback_s"] for r in timings
               if r["delivered_s"] and r["callback_s"]]
    return {"rate_per_s": rate_per_s, "jobs": jobs,
            "callback_to_sent_ms": _p50_p99(to_sent),
            "lost_results": jobs - sum(1 for r in timings if r["delivered"]),
            "invariants_ok": not violations}


async def pace(url: str, *, queued: int) -> dict[str, Any]:
    """Run 2: one user's long queue under Kie's limit, then another user's first job."""
    options = StackOptions(kie=kie_config(rate_limited=True), rate_limited=True,
                           limits=JobLimits(max_active_jobs=queued + 1,
                                            free_daily_quota=queued + 1))
    async with GenerationStack(url, options) as stack, \
            KieSandboxClient(stack.kie_url) as kie:
        heavy, light = 1, 2
        await stack.fund(heavy, BALANCE_KOP)
        await stack.fund(light, BALANCE_KOP)
        job_ids = [await confirm(stack, heavy, f"queue-{n}") for n in range(queued)]
        # The first window's tokens are spent: the bucket is empty when the newcomer comes.
        async def window_spent() -> bool:
            return len(await kie.tasks()) >= BUCKET_CAPACITY

        await until(window_spent, "the first window's submissions")
        newcomer = await confirm(stack, light, "newcomer")
        await until(lambda: stack.all_delivered([*job_ids, newcomer]), "deliveries")
        stats = await kie.stats()
        at_kie = await kie_submissions(kie)
        violations = await stack.violations()
    confirmed = {r["id"]: r["confirmed_s"] for r in await rows(url, "job_timings")}
    times = sorted(at_kie.values())
    # The bucket grants a window's 20 at once: the pace is whole windows' jobs over the time
    # from the first window's start to the start of the window after them.
    whole = len(times) // BUCKET_CAPACITY * BUCKET_CAPACITY - BUCKET_CAPACITY
    drain = whole / (times[whole] - times[0])
    mine = at_kie[newcomer]
    ahead = sum(1 for job_id in job_ids if confirmed[newcomer] < at_kie[job_id] < mine)
    return {
        "queued": queued, "kie_429": stats["answers_429"],
        "drain_rate_per_s": round(drain, 3), "limit_per_s": KIE_LIMIT_PER_S,
        "drain_within_5pct": abs(drain - KIE_LIMIT_PER_S) <= DRAIN_TOLERANCE * KIE_LIMIT_PER_S,
        "fairness_slots": ahead,
        "newcomer_wait_s": round(mine - confirmed[newcomer], 2),
        "invariants_ok": not violations,
    }


def headline(runs: dict[str, Any]) -> dict[str, Any]:
    """Return the acceptance's figures: the burst's rates and latencies, the limited run's
    429s, and what every run lost, charged twice, left open, broke or (chaos) delivered twice
    outside a SIGKILL window."""
    burst, chaos = runs["throughput"], runs.get("chaos", {})
    checked = [burst, runs["steady"], runs["rate_limited"], chaos]
    return {
        "lost_results": sum(run.get("lost_results", 0) for run in checked),
        "double_charges": burst["double_charges"] + chaos.get("double_charges", 0),
        "holds_open": chaos.get("holds_open", 0),
        "invariants_ok": all(run.get("invariants_ok", True) for run in checked),
        "kie_429": runs["rate_limited"]["kie_429"],
        "jobs_per_s": burst["jobs_per_s"],
        "confirm_to_submit_ms": burst["confirm_to_submit_ms"],
        "callback_to_sent_ms": burst["callback_to_sent_ms"],
        "noise_warning": burst["noise_warning"],
        "callback_to_sent_p99_met": (burst["callback_to_sent_ms"]["p99"]
                                     < CALLBACK_TO_SENT_P99_TARGET_MS),
        "duplicates_outside_sigkill_windows": chaos.get("duplicates_outside_sigkill_windows", 0),
    }


def _p50_p99(values_s: list[float]) -> dict[str, float]:
    """Return p50 and p99 of seconds, in milliseconds."""
    figures = latency_ms(values_s)
    return {"p50": figures["p50_ms"], "p99": figures["p99_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--skip-chaos", action="store_true",
                        help="leave out the chaos run (bench/generation_chaos.py)")
    args = parser.parse_args()
    users, jobs, queued = (50, 200, 40) if args.quick else (1_000, 5_000, 100)
    steady_jobs = 100 if args.quick else 400
    with contextlib.ExitStack() as stack:
        first = bench_database(stack)
        second = bench_database(stack)
        third = bench_database(stack)
        logs = logs_dir(stack)
        # The sandboxes of the throughput run are processes of their own: the engine has this
        # process (and its event loop) to itself, as an instance would.
        telegram = start_sandbox(stack, logs, auto_create_chats=True)
        kie = start_server(stack, "sandbox.kie", [
            "--port", "0", "--key", KIE_KEY, "--task-duration", "0", "--no-rate-limit",
            "--log-level", "WARNING"], logs / "kie-sandbox.log")
        loop_factory = event_loop_factory()
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runs = {
                "throughput": runner.run(throughput(
                    first.url, users=users, jobs=jobs, telegram_url=telegram.base_url,
                    kie_url=kie.base_url, sandbox_pids=[
                        server.process.pid for server in (telegram, kie) if server.process])),
                "steady": runner.run(steady(
                    third.url, rate_per_s=STEADY_RATE_PER_S, jobs=steady_jobs,
                    telegram_url=telegram.base_url, kie_url=kie.base_url)),
                "rate_limited": runner.run(pace(second.url, queued=queued)),
            }
            if not args.skip_chaos:  # 3 real instances, the leader faulted every 5 s
                runs["chaos"] = runner.run(generation_chaos.chaos_run(
                    bench_database(stack).url, generations=generation_chaos.QUICK_GENERATIONS
                    if args.quick else generation_chaos.GENERATIONS,
                    fault_every_s=generation_chaos.FAULT_EVERY_S, logs_dir=logs))
    result = {"benchmark": "generation", "quick": args.quick, **headline(runs), **runs,
              "postgres": first.postgres, "source": source_fingerprint()}
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
