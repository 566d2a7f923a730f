"""Command line: `python -m supervisor run | migrate [--status] [--json] | check | status [--json]`.

Every command validates the environment first, before any database or network I/O, and
exits with EXIT_CONFIG (78, EX_CONFIG) and the full list of problems on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from config import ConfigError, Settings, load_settings
from supervisor import db, migrations
from supervisor.election import QUERIES as ELECTION_QUERIES
from supervisor.election import lease_name
from supervisor.instance import ComposeFn, Instance
from supervisor.logs import setup_logging
from supervisor.registry import QUERIES as INSTANCE_QUERIES
from supervisor.services import Check

EXIT_CONFIG = 78
EXIT_FAILED = 1
RECENT_EVENTS = 20


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, validate the environment, run the command; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from sandbox.harness.demo import run_demo  # the demo brings its own environment

        return run_demo(args)
    if args.command == "local":
        from sandbox.harness.local import run_local  # it generates its own environment

        return run_local(args)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(level=settings.log_level, instance_id=settings.instance_id,
                  secrets=settings.secret_values())
    command = {"run": _run, "migrate": _migrate, "check": _check, "status": _status}
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(command[args.command](settings, args))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory where installed, else None (asyncio's own loop)."""
    # uvloop serves HTTP and drives the Bot API client with markedly less CPU per request.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supervisor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run this instance (HTTP, election, services)")
    migrate = sub.add_parser("migrate", help="apply pending migrations")
    migrate.add_argument("--status", action="store_true", help="only show the status")
    migrate.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("check", help="smoke-test env, DB, migrations, catalog, billing")
    status = sub.add_parser("status", help="leader, term, lease, instances, recent events")
    status.add_argument("--json", action="store_true", help="print JSON")
    demo = sub.add_parser("demo", help="3 instances, sandbox Telegram, simulated users")
    demo.add_argument("--duration", type=float, default=0.0,
                      help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--fault-every", type=float, default=20.0,
                      help="seconds between leader faults")
    demo.add_argument("--mode", choices=("polling", "webhook"), default="polling",
                      help="how the instances get updates")
    local = sub.add_parser("local", help="chat with one bot instance in this terminal"
                                         " (PostgreSQL and the Telegram sandbox included)")
    local.add_argument("--language", choices=("en", "ru"), default="en",
                       help="your Telegram language (the bot answers in it)")
    return parser


def composition_root() -> ComposeFn:
    """Return the product's composition root (the one place that knows every service)."""
    from services.composition import compose

    return compose


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    return await Instance(settings, composition_root()).run()


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.status:
            async with await db.connect(settings, purpose="migrate") as conn:
                status = await migrations.read_status(conn)
        else:
            status = await migrations.apply_pending(
                settings.database_url.get(), connect_timeout_s=settings.db_connect_timeout_s)
    except migrations.MigrationError as exc:
        print(f"migrations refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (psycopg.Error, OSError) as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(orjson.dumps(status.as_dict()).decode())
    else:
        print(f"applied: {len(status.applied)}  pending: {len(status.pending)}")
        for name in status.pending:
            print(f"  pending  {name}")
        for problem in status.problems:
            print(f"  PROBLEM  {problem}")
    return 0 if status.ok else EXIT_FAILED


async def _check(settings: Settings, args: argparse.Namespace) -> int:
    from services.composition import checks

    results: list[tuple[str, bool, str]] = [("env", True, "all keys valid")]
    pool = db.create_pool(settings)
    try:
        await pool.open(wait=False)
        for check in [*_database_checks(settings), *checks(settings, pool)]:
            try:
                async with asyncio.timeout(settings.db_connect_timeout_s + 5):
                    results.append((check.name, True, await check.probe()))
            except Exception as exc:
                results.append((check.name, False, str(exc) or type(exc).__name__))
    finally:
        await pool.close(timeout=2.0)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else EXIT_FAILED


def _database_checks(settings: Settings) -> list[Check]:
    async def database() -> str:
        async with await db.connect(settings, purpose="check") as conn:
            cur = await conn.execute(migrations.QUERIES["server_version"])
            row = await cur.fetchone()
        return f"reachable, PostgreSQL {row[0] if row else '?'}"

    async def schema() -> str:
        async with await db.connect(settings, purpose="check") as conn:
            status = await migrations.read_status(conn)
        if not status.ok:
            raise RuntimeError("; ".join(
                status.problems + [f"pending {name}" for name in status.pending]))
        return f"{len(status.applied)} applied, checksums match"

    return [Check("database", database), Check("migrations", schema)]


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    name = lease_name(settings.telegram_bot_token.get())
    try:
        async with await db.connect(settings, purpose="status") as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(ELECTION_QUERIES["lease_overview"], {"name": name})
            lease = await cur.fetchone()
            await cur.execute(INSTANCE_QUERIES["all_instances"])
            instances = await cur.fetchall()
            await cur.execute(ELECTION_QUERIES["recent_events"],
                              {"name": name, "limit": RECENT_EVENTS})
            events = await cur.fetchall()
    except (psycopg.Error, OSError) as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    report: dict[str, Any] = {"lease": lease, "instances": instances, "events": events}
    if args.json:
        print(orjson.dumps(report, default=str).decode())
        return 0
    if lease:
        print(f"leader: {lease['holder']}  term: {lease['term']}  "
              f"lease expires in: {_fmt_s(lease['expires_in_s'])}")
    else:
        print("leader: none yet")
    print("instances:")
    for row in instances:
        print(f"  {row['instance_id']:<32} {row['role']:<10} term={row['term']}  "
              f"last_seen={row['last_seen_at']:%H:%M:%S}  v{row['version']}")
    print(f"last {RECENT_EVENTS} leader events:")
    for row in events:
        print(f"  {row['at']:%Y-%m-%d %H:%M:%S.%f}  term={row['term']:<5} "
              f"{row['event']:<9} {row['instance_id']}  {row['reason'] or ''}")
    return 0


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"
