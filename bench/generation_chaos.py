"""Generations through real instance processes while the leader is SIGKILLed and SIGTERMed.

    python bench/generation_chaos.py [--quick]   (2,000 generations; --quick 300)

`chaos_run` starts 3 instances (`python -m supervisor run`), the Telegram and Kie sandboxes
and a balancer as processes (sandbox/harness/chaos.py), on a migrated database. Jobs are
written the way the confirm handler writes them (`request_generation`, one transaction per
job under the press's idempotency key, one job per user so a chat holds one result) from
this process, not through the chat: the chat path would make the run minutes longer and
add nothing to what is faulted (the engine's loops). Kie takes TASK_MS per task and fails
FAIL_RATE of them; the account's createTask limit (KIE_CREATE_LIMIT, and the Kie sandbox's
own limit) is `kie_limit_per_10s` (a tenth of the jobs), so submissions span the faults.
Every `fault_every_s` the leader gets SIGKILL or SIGTERM (alternating; the member is
restarted) until every job's delivery is closed or `max_faults` were made; then the run
waits for that condition.

Figures (the Telegram sandbox's log and the database):
    lost_results          jobs whose chat got no result (succeeded: a photo/video/...,
                          failed or expired: a text) or whose delivery is still open
    double_charges        settlement entries beyond one per job, plus commits of jobs that
                          did not succeed
    holds_open            wallets still holding money plus priced jobs never settled
    invariants_ok         services.generation.audit is empty
    duplicate_deliveries  result messages beyond one per job; each is checked against the
                          SIGKILL windows (sandbox/harness/chaos.py): those outside are
                          `duplicates_outside_sigkill_windows` (must be 0)
    kie_429               createTask calls Kie refused (a new leader's bucket starts full
                          while Kie's window still counts the old leader's calls)
Prints one JSON object: {"chaos": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg

from config import load_settings
from sandbox.harness.chaos import ChaosCluster, attribute, count, outbox_sends, rows
from sandbox.harness.generation import sample_params
from sandbox.kie import KieSandboxClient
from sandbox.telegram import SandboxClient
from services.billing.ledger import EntryKind, apply_entry
from services.catalog import get_catalog
from services.generation import Created, JobLimits, audit, request_generation
from services.generation.delivery_worker import CONCURRENCY as DELIVERY_CONCURRENCY
from services.users import ensure_user
from supervisor.aio import wait_event

GENERATIONS: Final = 2_000
QUICK_GENERATIONS: Final = 300
FAULT_EVERY_S: Final = 5.0
MODEL_ID: Final = "seedream/4.5-text-to-image"  # a priced image model: holds, then commits
TASK_MS: Final = 3_000  # Kie's time per task: a few seconds, like a real image
FAIL_RATE: Final = 0.1
FAIL_MSG: Final = "internal error, please try again later"
KIE_MIN_LIMIT_PER_10S: Final = 20  # Kie's own limit
FIRST_USER_ID: Final = 6_000_000
BALANCE_KOP: Final = 100_000
CREATORS: Final = 8  # concurrent "handlers" writing the jobs
WAIT_POLL_S: Final = 0.5
# Once the faults stop, every delivery must close within this (a job takes seconds).
SETTLE_TIMEOUT_S: Final = 120.0
MEDIA_METHODS: Final = frozenset({"sendPhoto", "sendVideo", "sendAudio", "sendDocument",
                                  "sendAnimation", "sendVoice", "sendMediaGroup"})


async def _seed(database_url: str, *, users: range, markup: Decimal,
                limits: JobLimits) -> list[int]:
    """Register and fund the users, then confirm one generation each; return the job ids."""
    catalog = get_catalog()
    params = sample_params(catalog[MODEL_ID])
    queue = list(users)
    job_ids: list[int] = []

    async def creator() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            while queue:
                user_id = queue.pop()
                async with conn.transaction():
                    await ensure_user(conn, user_id=user_id, username=None, first_name="U",
                                      language_code="en")
                    await apply_entry(conn, user_id=user_id, kind=EntryKind.ADJUSTMENT,
                                      balance_delta_kop=BALANCE_KOP, hold_delta_kop=0,
                                      idempotency_key=f"chaos-seed:{user_id}",
                                      note="chaos run")
                async with conn.transaction():
                    outcome = await request_generation(
                        conn, catalog=catalog, markup=markup, limits=limits, user_id=user_id,
                        chat_id=user_id, model_id=MODEL_ID, params=params,
                        idempotency_key=f"gen:{user_id}:chaos")
                assert isinstance(outcome, Created), outcome
                job_ids.append(outcome.job.id)

    await asyncio.gather(*(creator() for _ in range(CREATORS)))
    return job_ids


async def _until_closed(database_url: str, user_ids: list[int], stop: asyncio.Event) -> None:
    """Set stop once every job's delivery is closed."""
    while await count(database_url, "open_jobs", {"user_ids": user_ids}):
        await wait_event(stop, WAIT_POLL_S)  # polls the database; nothing sets stop but us
    stop.set()


async def chaos_run(database_url: str, *, generations: int, fault_every_s: float,
                    max_faults: int | None = None, kie_limit_per_10s: int | None = None,
                    logs_dir: Path | None = None) -> dict[str, Any]:
    """Run `generations` jobs through 3 instances with the leader faulted; return figures.

    kie_limit_per_10s: the createTask limit (default: a tenth of the jobs, at least Kie's 20,
    so submitting takes about 100 s at any size and the faults land while work is in flight).
    """
    kie_limit_per_10s = kie_limit_per_10s or max(KIE_MIN_LIMIT_PER_10S, generations // 10)
    logs = logs_dir or Path(tempfile.mkdtemp(prefix="kiebot-chaos-"))
    users = range(FIRST_USER_ID, FIRST_USER_ID + generations)
    user_ids = list(users)
    env = {"KIE_CREATE_LIMIT": str(kie_limit_per_10s), "LOG_LEVEL": "WARNING"}
    async with ChaosCluster(database_url, logs, env=env,
                            telegram_args=["--per-chat-rate", "0", "--global-rate", "0"]
                            ) as chaos, \
            KieSandboxClient(chaos.kie_url) as kie, SandboxClient(chaos.telegram_url) as tg:
        kie_model = get_catalog()[MODEL_ID].kie_model
        await kie.configure(rate_limit_tasks=kie_limit_per_10s)
        await kie.add_faults([
            {"kind": "task", "model": kie_model, "duration_ms": TASK_MS},
            {"kind": "task", "model": "*", "fail_rate": FAIL_RATE, "fail_code": "500",
             "fail_msg": FAIL_MSG}])
        settings = load_settings(chaos.env)
        started = time.monotonic()
        await _seed(database_url, users=users, markup=settings.price_markup,
                    limits=JobLimits.from_settings(settings))
        stop = asyncio.Event()
        closed = asyncio.create_task(_until_closed(database_url, user_ids, stop))
        await chaos.run_faults(stop, every_s=fault_every_s, max_faults=max_faults)
        # The faults stopped: now every delivery must close.
        done, _ = await asyncio.wait([closed], timeout=SETTLE_TIMEOUT_S)
        if not done:
            closed.cancel()
            raise TimeoutError(f"deliveries still open {SETTLE_TIMEOUT_S} s after the faults;"
                               f" logs in {logs}")
        wall_s = time.monotonic() - started
        sends = await outbox_sends(tg, user_ids)
        kie_stats = await kie.stats()
        terms = await chaos.terms()
        faults = chaos.fault_counts()
        failovers = [f.failover_ms for f in chaos.faults]
    jobs = await rows(database_url, "jobs", {"user_ids": user_ids})
    holds = await count(database_url, "open_holds", {"user_ids": user_ids})
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        violations = [f"{v.rule}: user {v.user_id} job {v.job_id}: {v.detail}"
                      for v in await audit(conn)]
    return _figures(jobs, sends, terms=terms, holds=holds, violations=violations,
                    faults=faults, failovers=failovers, kie_stats=kie_stats, wall_s=wall_s)


def _figures(jobs: list[dict[str, Any]], sends: list[Any], *, terms: Any, holds: int,
             violations: list[str], faults: dict[str, int], failovers: list[float | None],
             kie_stats: dict[str, Any], wall_s: float) -> dict[str, Any]:
    by_chat: dict[int, list[Any]] = defaultdict(list)
    for send in sends:
        by_chat[send.chat_id].append(send)
    lost = 0
    double = 0
    unsettled = 0
    sends_by_job: dict[int, list[float]] = {}
    recorded: dict[int, float | None] = {}
    for job in jobs:
        mine = by_chat.get(int(job["chat_id"]), [])
        wanted = MEDIA_METHODS if job["status"] == "succeeded" else {"sendMessage"}
        results = [s for s in mine if s.method in wanted]
        if not results or job["delivered_s"] is None or job["undeliverable_reason"]:
            lost += 1
        sends_by_job[int(job["id"])] = [s.sent_at for s in results]
        recorded[int(job["id"])] = job["delivered_s"]
        settlements = int(job["commits"]) + int(job["releases"])
        double += max(0, settlements - 1)
        if job["status"] != "succeeded" and int(job["commits"]):
            double += 1
        if job["price_kop"] and not settlements:
            unsettled += 1
    found = attribute(sends_by_job, recorded, terms)
    statuses: dict[str, int] = defaultdict(int)
    for job in jobs:
        statuses[str(job["status"])] += 1
    figures = found.figures()
    return {
        "generations": len(jobs), "statuses": dict(statuses), "faults": faults,
        "failover_ms": failovers, "terms": len(terms),
        "lost_results": lost, "double_charges": double, "holds_open": holds + unsettled,
        "invariants_ok": not violations, "violations": violations[:5],
        "duplicate_deliveries": figures.pop("duplicate_deliveries"),
        "duplicates_outside_sigkill_windows": figures.pop("duplicates_outside_sigkill_windows"),
        **figures,
        "delivery_concurrency": DELIVERY_CONCURRENCY,
        "kie_429": int(kie_stats.get("answers_429", 0)),
        "wall_s": round(wall_s, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_GENERATIONS} generations (a smoke run)")
    args = parser.parse_args()
    from bench.common import bench_database, logs_dir

    with contextlib.ExitStack() as stack:
        database = bench_database(stack)
        logs = logs_dir(stack)
        figures = asyncio.run(chaos_run(
            database.url, generations=QUICK_GENERATIONS if args.quick else GENERATIONS,
            fault_every_s=FAULT_EVERY_S, logs_dir=logs))
    sys.stdout.write(orjson.dumps({"chaos": figures, "quick": args.quick}).decode() + "\n")


if __name__ == "__main__":
    main()
