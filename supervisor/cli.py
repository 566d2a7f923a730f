"""Command line: `python -m supervisor run | migrate [--status] [--json] | check | status [--json]`.

Every command validates the environment first, before any database or network I/O, and
exits with EXIT_CONFIG (78, EX_CONFIG) and the full list of problems on stderr.

`check` is what a newcomer runs first, so it answers fast and says what to do next: it
imports nothing of aiogram, makes ONE connection attempt bounded by DB_CONNECT_TIMEOUT (no
pool, so no reconnect spam), prints one line per check, and skips the checks that need what
an earlier one found missing (a database, its migrations), naming the next step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from config import ConfigError, Settings, load_settings
from supervisor import db, migrations
from supervisor.election import lease_name
from supervisor.logs import setup_logging
from supervisor.stores import ElectionStore, InstanceStore

if TYPE_CHECKING:
    from supervisor.instance import ComposeFn

EXIT_CONFIG = 78
EXIT_FAILED = 1
RECENT_EVENTS = 20
MIGRATE_HINT = "run `python -m supervisor migrate`"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, validate the environment, run the command; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from sandbox.harness.demo import run_demo  # the demo brings its own environment

        return run_demo(args)
    if args.command == "local":
        from sandbox.harness.local import run_local  # it generates its own environment

        return run_local(args)
    if args.command == "play":
        from sandbox.harness.playground import run_playground  # its own environment, too

        return run_playground(args)
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
    play = sub.add_parser("play", help="chat with one bot instance in a browser page"
                                       " (PostgreSQL and both sandboxes included)")
    play.add_argument("--language", choices=("en", "ru"), default="en",
                      help="your Telegram language (the bot answers in it)")
    play.add_argument("--port", type=int, default=0,
                      help="the page's port on 127.0.0.1 (default: any free one)")
    play.add_argument("--no-browser", action="store_true",
                      help="only print the page's address")
    play.add_argument("--kie-fail-rate", type=_share, default=None,
                      help="share of Kie sandbox tasks that fail, 0-1 (default 0.05)")
    return parser


def _share(text: str) -> float:
    """Parse a share from 0 to 1 (argparse type)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def composition_root() -> ComposeFn:
    """Return the product's composition root (the one place that knows every service)."""
    from services.composition import compose

    return compose


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.instance import Instance  # the run path only: HTTP, election, services

    return await Instance(settings, composition_root()).run()


def database_problem(exc: BaseException, settings: Settings) -> str:
    """Return one line saying why the database cannot be used and what to fix."""
    refused = db.refusal(exc)
    if refused is not None:
        return str(refused)
    if isinstance(exc, TimeoutError):
        return (f"no answer within DB_CONNECT_TIMEOUT ({settings.db_connect_timeout_s:g} s): "
                "check DATABASE_URL's host and port, and that PostgreSQL runs there")
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    detail = detail.removeprefix("connection failed: ")
    return f"unreachable ({detail}): check DATABASE_URL and that PostgreSQL runs there"


async def _connect_once(settings: Settings, purpose: str) -> psycopg.AsyncConnection:
    """Open one connection, one attempt, bounded by DB_CONNECT_TIMEOUT."""
    async with asyncio.timeout(settings.db_connect_timeout_s):
        return await db.connect(settings, purpose=purpose)


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.status:
            async with await _connect_once(settings, "migrate") as conn:
                status = await migrations.read_status(conn)
        else:
            status = await migrations.apply_pending(
                settings.database_url.get(), connect_timeout_s=settings.db_connect_timeout_s)
    except migrations.MigrationError as exc:
        print(f"migrations refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (psycopg.Error, OSError, TimeoutError, db.DatabaseRefused) as exc:
        print(f"database: {database_problem(exc, settings)}", file=sys.stderr)
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


class _Report:
    """Print one line per check as it finishes; remember whether all passed."""

    def __init__(self) -> None:
        self.ok = True

    def line(self, name: str, status: str, detail: str) -> None:
        self.ok = self.ok and status != "FAIL"
        print(f"{status:<4}  {name}: {detail}", flush=True)


async def _check(settings: Settings, args: argparse.Namespace) -> int:
    from services.checks import checks  # no aiogram on this path: check answers in ~1 s

    report = _Report()
    report.line("env", "ok", "all keys valid")
    skipped = await _check_database(settings, report)
    pool = db.create_pool(settings)
    product = checks(settings, pool)
    if skipped:
        for check in product:
            report.line(check.name, "skip", skipped)
        return EXIT_FAILED
    try:
        await pool.open(wait=True, timeout=settings.db_connect_timeout_s)
        for check in product:
            try:
                async with asyncio.timeout(settings.db_connect_timeout_s + 5):
                    report.line(check.name, "ok", await check.probe())
            except Exception as exc:
                report.line(check.name, "FAIL", str(exc) or type(exc).__name__)
    finally:
        await pool.close(timeout=2.0)
    return 0 if report.ok else EXIT_FAILED


async def _check_database(settings: Settings, report: _Report) -> str | None:
    """Check the database and its migrations; return why later checks are skipped, if so."""
    try:
        conn = await _connect_once(settings, "check")
    except (psycopg.Error, OSError, TimeoutError) as exc:
        report.line("database", "FAIL", database_problem(exc, settings))
        report.line("migrations", "skip", "needs the database")
        return "needs the database"
    async with conn:
        try:
            db.require_supported_server(conn)
        except db.DatabaseRefused as exc:
            report.line("database", "FAIL", str(exc))
            return "needs a supported PostgreSQL"
        version = conn.info.parameter_status("server_version") or "?"
        report.line("database", "ok", f"reachable, PostgreSQL {version}")
        status = await migrations.read_status(conn)
    if status.problems:
        report.line("migrations", "FAIL", "; ".join(status.problems))
        return "needs a consistent migration history"
    if status.pending:
        report.line("migrations", "FAIL", f"{len(status.pending)} pending "
                    f"({', '.join(status.pending)}): {MIGRATE_HINT}")
        return f"needs the migrations: {MIGRATE_HINT}"
    report.line("migrations", "ok", f"{len(status.applied)} applied, checksums match")
    return None


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    name = lease_name(settings.telegram_bot_token.get())
    try:
        async with await _connect_once(settings, "status") as conn:
            schema = await migrations.read_status(conn)
            if not schema.applied:
                print(f"database reachable but not migrated ({len(schema.pending)} pending): "
                      f"{MIGRATE_HINT}", file=sys.stderr)
                return EXIT_FAILED
            election, instances = ElectionStore(conn), InstanceStore(conn)
            lease = await election.lease_overview(name=name)
            members = await instances.all_instances()
            events = await election.recent_events(name=name, limit=RECENT_EVENTS)
    except psycopg.errors.UndefinedTable:
        print(f"database schema incomplete: {MIGRATE_HINT}", file=sys.stderr)
        return EXIT_FAILED
    except (psycopg.Error, OSError, TimeoutError) as exc:
        print(f"database: {database_problem(exc, settings)}", file=sys.stderr)
        return EXIT_FAILED
    if schema.pending:
        print(f"note: {len(schema.pending)} migrations pending: {MIGRATE_HINT}", file=sys.stderr)
    report: dict[str, Any] = {"lease": lease, "instances": members, "events": events,
                              "migrations": schema.as_dict()}
    if args.json:
        print(orjson.dumps(report, default=str).decode())
        return 0
    if lease:
        print(f"leader: {lease['holder']}  term: {lease['term']}  "
              f"lease expires in: {_fmt_s(lease['expires_in_s'])}")
    else:
        print("leader: none yet")
    print("instances:")
    for row in members:
        print(f"  {row['instance_id']:<32} {row['role']:<10} term={row['term']}  "
              f"last_seen={row['last_seen_at']:%H:%M:%S}  v{row['version']}")
    print(f"last {RECENT_EVENTS} leader events:")
    for row in events:
        print(f"  {row['at']:%Y-%m-%d %H:%M:%S.%f}  term={row['term']:<5} "
              f"{row['event']:<9} {row['instance_id']}  {row['reason'] or ''}")
    return 0


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"
