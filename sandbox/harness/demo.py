"""`python -m supervisor demo`: a throwaway PostgreSQL, the Telegram sandbox, 3 instances and
simulated users, with the leader faulted every `--fault-every` seconds.

How it runs
    `run_demo` (sync) starts PostgreSQL from the machine's binaries, then runs one asyncio loop
    (`Demo.run`) and, whatever happens, stops everything it started (an ExitStack) and deletes
    every temp file but the logs. In the loop: migrations, the sandbox process, the instances
    (and in webhook mode a round-robin balancer in front of them); then three tasks:
    - users: ~30 messages/s over 50 chats through the sandbox control API (demo_users);
    - view: the table, redrawn every second (a status line every 5 s when not on a terminal);
    - faults: every `--fault-every` seconds the leader gets SIGKILL or SIGTERM (alternating);
      the gap is the time until another member's /health says leader with a higher term
      (polled every 20 ms); then the faulted member is restarted.
    Ctrl-C or the end of `--duration` stops the users and shoppers, lets the operator decide
    the receipts still pending (at most 45 s), waits (at most 15 s) until every sent update
    is handled, and prints the totals. The exit code is 0 only if nothing was lost and the
    money is right (no double charge or top-up; the generation and payments audits clean).

The instance and server helpers (`sandbox.harness.cluster`) block, so the loop calls them through
`asyncio.to_thread`; the loop itself only does async I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg

from config import ConfigError, load_settings
from sandbox.harness.chaos import find_leader
from sandbox.harness.cluster import InstanceCluster, ServerProcess
from sandbox.harness.demo_operator import OPERATOR_ID, WATCHER_ID, Operator
from sandbox.harness.demo_shoppers import Shoppers
from sandbox.harness.demo_store import DemoStore, GenerationTotals
from sandbox.harness.demo_users import Replies, Users
from sandbox.harness.demo_view import (
    CLEAR,
    Failover,
    MemberRow,
    Snapshot,
    Totals,
    render,
    render_totals,
    status_line,
)
from sandbox.harness.env import BOT_TOKEN, make_env
from sandbox.harness.local_stack import apply_kie_profile, kie_process
from sandbox.harness.postgres import ThrowawayCluster, free_port, server_version
from sandbox.telegram import SandboxClient, SandboxError
from services.admin.store import AdminStore
from services.generation import audit
from supervisor import migrations
from supervisor.aio import wait_event

INSTANCES: Final = 3
REFRESH_S: Final = 1.0  # table redraw interval
STATUS_EVERY_S: Final = 5.0  # status line interval when stdout is not a terminal
HEALTH_POLL_S: Final = 0.02  # /health polling while a failover is measured
STARTUP_TIMEOUT_S: Final = 60.0  # until every instance answers and one leads
LEADER_WAIT_S: Final = 15.0  # a fault waits this long for a leader to fault
FAILOVER_TIMEOUT_S: Final = 30.0  # a new leader must show up within this
EXIT_WAIT_S: Final = 30.0  # a faulted member must exit within this (SHUTDOWN_GRACE is 20 s)
FAULTS_STOP_S: Final = 90.0  # a failover still being measured at the end gets this long
DRAIN_TIMEOUT_S: Final = 15.0  # at the end, wait this long for every sent update to be handled
# ... and this long for every generation to be delivered (a video task alone takes 8 s).
GENERATIONS_DRAIN_TIMEOUT_S: Final = 45.0
# ... and this long for the operator to decide the receipts still pending.
TOPUPS_DRAIN_TIMEOUT_S: Final = 45.0
DRAIN_POLL_S: Final = 0.2
THREADS: Final = 16  # worker threads for the blocking helpers
FAULT_SIGNALS: Final = (signal.SIGKILL, signal.SIGTERM)
# Ctrl-C, a closed terminal, a polite kill: stop the users, report, clean up.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_LOST: Final = 1
EXIT_UNAVAILABLE: Final = 69  # EX_UNAVAILABLE: no PostgreSQL binaries
EXIT_INTERRUPTED: Final = 130
SANDBOX_ARGS: Final = (
    "--port", "0", "--token", BOT_TOKEN, "--per-chat-rate", "0", "--global-rate", "0",
    "--webhook-timeout", "5", "--webhook-retry-initial", "0.05", "--webhook-retry-max", "0.5",
)
INSTALL_HINT: Final = (
    "The demo needs PostgreSQL's server binaries (initdb, pg_ctl): the dev extra brings them\n"
    "on Linux x86_64 and macOS (pip install -e '.[dev]'); elsewhere install them, e.g. on\n"
    "Debian/Ubuntu:  sudo apt-get install postgresql, then run the demo again.")

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class Options:
    """The demo's command-line options."""

    duration_s: float  # 0: until Ctrl-C
    fault_every_s: float  # 0: no faults
    mode: str  # polling or webhook


def instance_env(*, database_url: str, api_base: str, kie_base: str, webhook_base: str,
                 mode: str) -> dict[str, str]:
    """Return the full environment every demo instance shares (id and port are per member)."""
    return make_env(database_url, BOT_MODE=mode, DB_MAXCONN="10", TELEGRAM_API_BASE=api_base,
                    KIE_BASE_URL=kie_base, KIE_UPLOAD_BASE_URL=kie_base,
                    WEBHOOK_BASE_URL=webhook_base, LOG_LEVEL="INFO",
                    ADMIN_ID=f"{OPERATOR_ID},{WATCHER_ID}")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until --duration passes or Ctrl-C; return 0 if no update was lost."""
    options = Options(duration_s=max(0.0, float(args.duration)),
                      fault_every_s=max(0.0, float(args.fault_every)),
                      mode=str(args.mode))
    try:
        pg = ThrowawayCluster()
    except (RuntimeError, LookupError) as exc:
        print(f"demo: {exc}\n{INSTALL_HINT}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    logs_dir = Path(tempfile.mkdtemp(prefix="kiebot-demo-"))
    print(f"kiebot demo: mode {options.mode}, logs in {logs_dir}", flush=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_restore_signals, {sig: signal.getsignal(sig) for sig in STOP_SIGNALS})
        cleanup.callback(print, f"stopped; logs kept in {logs_dir}", flush=True)
        cleanup.callback(pg.destroy)
        cleanup.callback(_copy_quietly, pg.root / "server.log", logs_dir / "postgres.log")
        try:
            print(f"starting PostgreSQL ({server_version(pg.bindir)}, {pg.bindir}) ...",
                  flush=True)
            pg.init()
            pg.start()
            return asyncio.run(Demo(options, pg.url, logs_dir, cleanup).run())
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return EXIT_INTERRUPTED
        except subprocess.CalledProcessError as exc:
            stderr = exc.stderr.decode(errors="replace") if exc.stderr else ""
            print(f"demo: PostgreSQL failed: {exc}\n{stderr}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except Exception as exc:
            traceback.print_exc()
            print(f"demo failed: {exc}; logs in {logs_dir}", file=sys.stderr)
            return EXIT_LOST
        finally:
            _shield_cleanup()
            print("stopping instances, sandbox and PostgreSQL ...", flush=True)
    return EXIT_LOST  # unreachable: the with block always returns


def _shield_cleanup() -> None:
    """Let no Ctrl-C, closed terminal or SIGTERM cut the (bounded) cleanup short."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _restore_signals(handlers: dict[signal.Signals, Any]) -> None:
    """Put back the signal handlers the demo found."""
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _copy_quietly(source: Path, target: Path) -> None:
    """Copy a log file if it exists."""
    with contextlib.suppress(OSError):
        shutil.copyfile(source, target)


class Demo:
    """One demo run inside an asyncio loop."""

    def __init__(self, options: Options, database_url: str, logs_dir: Path,
                 cleanup: contextlib.ExitStack) -> None:
        """Remember where things go; `cleanup` gets a stop callback for each process."""
        self._options = options
        self._database_url = database_url
        self._logs_dir = logs_dir
        self._cleanup = cleanup
        self._stop = asyncio.Event()  # Ctrl-C or duration over: stop users and faults
        self._view_stop = asyncio.Event()
        self._failovers: list[Failover] = []
        self._phase = "starting"
        self._next_fault_at: float | None = None
        self._next_fault = FAULT_SIGNALS[0]
        self._began = time.monotonic()

    # ------------------------------------------------------------ main

    async def run(self) -> int:
        """Start everything, run users, view and faults, then report; return the exit code."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(THREADS, thread_name_prefix="demo"))
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._interrupt)
        print("applying migrations ...", flush=True)
        status = await migrations.apply_pending(self._database_url)
        if not status.ok:
            raise RuntimeError(f"migrations refused: {status.problems or status.pending}")
        sandbox_url = await self._start_sandbox()
        kie_url = await self._start_kie()
        cluster = await self._start_instances(sandbox_url, kie_url)
        if self._stop.is_set():
            return EXIT_INTERRUPTED
        async with SandboxClient(sandbox_url) as control, \
                await psycopg.AsyncConnection.connect(self._database_url,
                                                      autocommit=True) as conn:
            users = Users(control)
            replies = Replies(control, users.chat_ids)
            shoppers = Shoppers(control, users.stop)
            operator = Operator(control)
            store = DemoStore(conn)
            self._began = time.monotonic()
            self._phase = "running"
            users_task = asyncio.create_task(users.run(), name="demo-users")
            shoppers_task = asyncio.create_task(shoppers.run(), name="demo-shoppers")
            operator_task = asyncio.create_task(operator.run(), name="demo-operator")
            view_task = asyncio.create_task(
                self._view(cluster, users, shoppers, operator, replies, control),
                name="demo-view")
            faults_task = asyncio.create_task(self._faults(cluster), name="demo-faults")
            if self._options.duration_s:
                await wait_event(self._stop, self._options.duration_s)
            else:
                await self._stop.wait()
            self._stop.set()
            duration_s = time.monotonic() - self._began
            self._phase = "stopping users"
            users.stop.set()
            await users_task
            await shoppers_task
            self._phase = "finishing the failover in progress"
            await self._bounded(faults_task, FAULTS_STOP_S)
            self._phase = "waiting until the operator decided every top-up"
            await self._wait_topups(store)
            operator.stop.set()
            await operator_task
            self._phase = "waiting until every sent update is handled"
            unhandled = await self._wait_handled(store,
                                                 [*users.sent, *shoppers.sent, *operator.sent])
            self._phase = "waiting until every generation is delivered"
            generations = await self._wait_generations(store)
            self._view_stop.set()
            await view_task
            totals = await self._totals(store, conn, control, users, shoppers, operator,
                                        replies, unhandled, generations, duration_s)
        print(render_totals(totals), flush=True)
        return 0 if totals.nothing_lost else EXIT_LOST

    def _interrupt(self) -> None:
        """Stop on the first stop signal; a second one skips the report (cleanup still runs)."""
        if self._stop.is_set():
            raise KeyboardInterrupt  # asyncio lets it through; run_demo cleans up
        self._stop.set()
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print("\nstopping: users stop, then the totals ...", file=sys.stderr, flush=True)

    @staticmethod
    async def _bounded(task: asyncio.Task[None], timeout_s: float) -> None:
        """Wait for a task up to timeout_s, then cancel it."""
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    # ------------------------------------------------------------ startup

    async def _start_sandbox(self) -> str:
        """Start the Telegram sandbox process; return its base URL."""
        print("starting the Telegram sandbox ...", flush=True)
        server = ServerProcess("sandbox.telegram", SANDBOX_ARGS, self._logs_dir / "sandbox.log")
        self._cleanup.callback(server.stop)
        return await asyncio.to_thread(server.start)

    async def _start_kie(self) -> str:
        """Start the Kie sandbox process (realistic task times, some failures); return its URL."""
        print("starting the Kie sandbox ...", flush=True)
        server = kie_process(self._logs_dir)
        self._cleanup.callback(server.stop)
        url = await asyncio.to_thread(server.start)
        await apply_kie_profile(url)
        return url

    async def _start_instances(self, sandbox_url: str, kie_url: str) -> InstanceCluster:
        """Start the instances behind a balancer; wait for a leader.

        The balancer is the public base URL, as Render's is: Kie's callbacks reach whichever
        member answers, and in webhook mode so do Telegram's deliveries.
        """
        balancer_port = free_port()
        env = instance_env(database_url=self._database_url, api_base=sandbox_url,
                           kie_base=kie_url, webhook_base=f"http://127.0.0.1:{balancer_port}",
                           mode=self._options.mode)
        try:
            load_settings(env)
        except ConfigError as exc:
            raise RuntimeError(f"the demo's own environment is invalid: {exc}") from exc
        cluster = await asyncio.to_thread(
            InstanceCluster, INSTANCES, command=["-m", "supervisor", "run"], env=env,
            logs_dir=self._logs_dir)
        self._cleanup.callback(cluster.stop)
        backends = [arg for url in cluster.urls for arg in ("--backend", url)]
        balancer = ServerProcess("sandbox.harness.balancer",
                                 ["--port", str(balancer_port), *backends],
                                 self._logs_dir / "balancer.log")
        self._cleanup.callback(balancer.stop)
        await asyncio.to_thread(balancer.start)
        print(f"starting {INSTANCES} instances ...", flush=True)
        await asyncio.to_thread(cluster.start)
        await asyncio.to_thread(cluster.wait_all_answering, STARTUP_TIMEOUT_S)
        await asyncio.to_thread(cluster.wait_leader, STARTUP_TIMEOUT_S)
        return cluster

    # ------------------------------------------------------------ faults

    async def _faults(self, cluster: InstanceCluster) -> None:
        """Fault the leader at every multiple of fault_every_s (SIGKILL, SIGTERM, ...)."""
        every = self._options.fault_every_s
        if not every:
            return
        for number in itertools.count(1):
            self._next_fault = FAULT_SIGNALS[(number - 1) % len(FAULT_SIGNALS)]
            self._next_fault_at = max(self._began + every * number, time.monotonic())
            if await wait_event(self._stop, self._next_fault_at - time.monotonic()):
                return
            self._next_fault_at = None
            await self._fault_leader(cluster, self._next_fault)

    async def _fault_leader(self, cluster: InstanceCluster, sig: signal.Signals) -> None:
        """Signal the leader, measure the failover gap, restart the faulted member."""
        found = await self._find_leader(cluster, LEADER_WAIT_S)
        if found is None:
            return
        index, old_term = found
        old_id = cluster.members[index].instance_id
        self._phase = f"{sig.name} to {old_id}"
        at_s = time.monotonic() - self._began
        fault_wall = await asyncio.to_thread(cluster.signal, index, sig)
        new = await self._wait_new_leader(cluster, index, old_term)
        failover = Failover(len(self._failovers) + 1, sig.name, at_s, old_id, old_term)
        if new is not None:
            new_index, new_term, seen_wall = new
            failover = Failover(failover.number, sig.name, at_s, old_id, old_term,
                                cluster.members[new_index].instance_id, new_term,
                                (seen_wall - fault_wall) * 1000)
        self._failovers.append(failover)
        if not sys.stdout.isatty():
            print(f"failover {failover.describe()}", flush=True)
        self._phase = f"restarting {old_id}"
        await asyncio.to_thread(cluster.reap, index, EXIT_WAIT_S)
        await asyncio.to_thread(cluster.start, index)
        self._phase = "running" if not self._stop.is_set() else self._phase

    async def _healths(self, cluster: InstanceCluster,
                       indexes: Sequence[int]) -> list[dict[str, object] | None]:
        """Return the /health documents of some members, asked concurrently."""
        return list(await asyncio.gather(
            *(asyncio.to_thread(cluster.health, i) for i in indexes)))

    async def _find_leader(self, cluster: InstanceCluster,
                           timeout_s: float) -> tuple[int, int] | None:
        """Return (index, term) of the member that leads (highest term), or None."""
        return await find_leader(cluster, timeout_s)

    async def _wait_new_leader(self, cluster: InstanceCluster, old_index: int,
                               old_term: int) -> tuple[int, int, float] | None:
        """Poll the others' /health until one leads a newer term; return (index, term, wall)."""
        others = [i for i in range(len(cluster.members)) if i != old_index]
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        while time.monotonic() < deadline:
            docs = await self._healths(cluster, others)
            seen = time.time()
            for index, doc in zip(others, docs, strict=True):
                if doc and doc.get("role") == "leader" and _term(doc) > old_term:
                    return index, _term(doc), seen
            await asyncio.sleep(HEALTH_POLL_S)
        return None

    # ------------------------------------------------------------ view

    async def _view(self, cluster: InstanceCluster, users: Users, shoppers: Shoppers,
                    operator: Operator, replies: Replies, control: SandboxClient) -> None:
        """Redraw the table every REFRESH_S (or print a status line) until told to stop."""
        tty = sys.stdout.isatty()
        last_line = -math.inf
        async with await psycopg.AsyncConnection.connect(self._database_url,
                                                         autocommit=True) as conn:
            while True:
                snap = await self._snapshot(cluster, users, shoppers, operator, replies, control,
                                            conn)
                if tty:
                    sys.stdout.write(CLEAR + render(snap))
                    sys.stdout.flush()
                elif time.monotonic() - last_line >= STATUS_EVERY_S:
                    last_line = time.monotonic()
                    print(status_line(snap), flush=True)
                if await wait_event(self._view_stop, REFRESH_S):
                    return

    async def _snapshot(self, cluster: InstanceCluster, users: Users, shoppers: Shoppers,
                        operator: Operator, replies: Replies, control: SandboxClient,
                        conn: Connection) -> Snapshot:
        """Collect what the table shows; a failing source is shown, not raised."""
        next_fault = ""
        if self._next_fault_at is not None and not self._stop.is_set():
            next_fault = (f"next fault ({self._next_fault.name}) in"
                          f" {self._next_fault_at - time.monotonic():.0f} s")
        snap = Snapshot(mode=self._options.mode, phase=self._phase,
                        elapsed_s=time.monotonic() - self._began, logs_dir=str(self._logs_dir),
                        chats=users.chats + len(shoppers.chat_ids) + 1 + len(operator.watchers),
                        sent=len(users.sent) + len(shoppers.sent) + len(operator.sent),
                        inject_errors=users.inject_errors, failovers=list(self._failovers),
                        next_fault=next_fault)
        members = list(cluster.members)
        docs = await self._healths(cluster, range(len(members)))
        snap.members = [MemberRow(m.instance_id, m.process.pid if m.process else None,
                                  m.alive(), doc) for m, doc in zip(members, docs, strict=True)]
        problems = [f"inject: {users.last_error}"] if users.inject_errors else []
        try:
            snap.confirmed = int((await control.stats())["confirmed"])
            await replies.fetch()
            snap.replies = replies.total
        except (SandboxError, OSError, TimeoutError) as exc:
            problems.append(f"sandbox: {exc}")
        try:
            store = DemoStore(conn)
            snap.statuses = await store.counts_by_status()
            snap.generations = await store.generation_totals()
            snap.topups = await store.topup_totals()
        except psycopg.Error as exc:
            problems.append(f"database: {exc}")
        snap.problem = "; ".join(problems)
        return snap

    # ------------------------------------------------------------ end

    async def _wait_handled(self, store: DemoStore,
                            update_ids: list[int]) -> list[tuple[int, str]]:
        """Wait (at most DRAIN_TIMEOUT_S) until every id is handled; return those still not."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            unhandled = await store.unhandled(update_ids)
            if not unhandled or time.monotonic() > deadline:
                return unhandled
            await asyncio.sleep(DRAIN_POLL_S)

    async def _wait_topups(self, store: DemoStore) -> None:
        """Wait (at most TOPUPS_DRAIN_TIMEOUT_S) until no top-up waits for the operator."""
        deadline = time.monotonic() + TOPUPS_DRAIN_TIMEOUT_S
        while True:
            if not (await store.topup_totals()).pending or time.monotonic() > deadline:
                return
            await asyncio.sleep(DRAIN_POLL_S)

    async def _wait_generations(self, store: DemoStore) -> GenerationTotals:
        """Wait (at most GENERATIONS_DRAIN_TIMEOUT_S) until every job is delivered or its
        failure told; return the totals then."""
        deadline = time.monotonic() + GENERATIONS_DRAIN_TIMEOUT_S
        while True:
            totals = await store.generation_totals()
            if not totals.unfinished or time.monotonic() > deadline:
                return totals
            await asyncio.sleep(DRAIN_POLL_S)

    async def _totals(self, store: DemoStore, conn: Connection, control: SandboxClient,
                      users: Users, shoppers: Shoppers, operator: Operator, replies: Replies,
                      unhandled: list[tuple[int, str]], generations: GenerationTotals,
                      duration_s: float) -> Totals:
        """Read the final counts, match replies to messages, audit the money."""
        await replies.fetch()
        statuses = await store.counts_by_status()
        violations = [f"{v.rule}: user {v.user_id} job {v.job_id}: {v.detail}"
                      for v in await audit(conn)]
        violations += [f"{v.rule}: user {v.user_id} payment {v.payment_id}: {v.detail}"
                       for v in await AdminStore(conn).payment_violations()]
        confirmed: int | None = None
        with contextlib.suppress(SandboxError, OSError, TimeoutError):
            confirmed = int((await control.stats())["confirmed"])
        return Totals(
            mode=self._options.mode, duration_s=duration_s,
            chats=users.chats + len(shoppers.chat_ids) + 1 + len(operator.watchers),
            sent=len(users.sent) + len(shoppers.sent) + len(operator.sent),
            inject_errors=users.inject_errors + shoppers.errors + operator.errors,
            confirmed=confirmed,
            done=statuses.get("done", 0), failed=statuses.get("failed", 0), unhandled=unhandled,
            replies=replies.total, error_replies=replies.errors, other_replies=replies.other,
            unanswered=replies.unanswered(users.expected),
            duplicated=replies.duplicated(users.expected),
            duplicated_texts=replies.duplicated_texts(), failovers=list(self._failovers),
            logs_dir=str(self._logs_dir), generations=generations,
            double_charges=await store.double_charges(), violations=violations,
            shoppers=len(shoppers.chat_ids), confirms=shoppers.confirmed,
            results_seen=shoppers.results, topups=await store.topup_totals(),
            decisions_told=shoppers.approved_seen + shoppers.rejected_seen,
            double_topups=await store.double_topups())


def _term(doc: dict[str, object]) -> int:
    """Return the term a /health document states (0 when none)."""
    term = doc.get("term")
    return term if isinstance(term, int) else 0

