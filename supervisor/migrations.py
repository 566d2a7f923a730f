"""Apply `migrations/NNN_name.sql` in order, each once, tracked with checksums.

Rules the runner enforces before touching the schema (each refusal names the file):
- names are `NNN_snake_case.sql`, numbered 1, 2, 3, ... with no repeat and no gap;
- every file parses (PostgreSQL's own parser, through pglast) and destroys no data: no DROP
  TABLE / SCHEMA, no ALTER TABLE ... DROP [COLUMN], no DROP ... CASCADE (it drops whatever
  depends on the object, columns included), no TRUNCATE, no DELETE or UPDATE without WHERE;
  the refusal names the file and the statement. Being the real parser, comments, quoting and
  string literals cannot hide or fake a statement;
- every applied migration still has its file, with the same sha256 checksum.

Locks: each file runs with `lock_timeout` = MIGRATION_LOCK_TIMEOUT_MS. DDL waiting for a lock
queues every later query of that table behind it, so a migration stuck behind a long
transaction would stall all traffic; instead it gives up after the timeout, rolls back, and
tries again (MIGRATION_LOCK_ATTEMPTS times, backoff between); then the run is refused naming
the file, and nothing of that file is applied.

Concurrency: `apply_pending` holds a session advisory lock for the whole run, so instances
that boot together migrate exactly once; the others wait, then find nothing to do. Each file
runs in its own transaction together with its `schema_migrations` row, so a crash between
files leaves a consistent prefix applied and the next run continues from there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pglast
import psycopg
from pglast import ast
from pglast.enums import AlterTableType, DropBehavior, ObjectType

from supervisor import db
from supervisor.aio import Backoff
from supervisor.stores import MigrationStore

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
# Fixed advisory lock key for migration runs ("kiebot_migrations" hashed once, by hand).
MIGRATION_LOCK_KEY = 7_354_210_988_125_140_001
_FILE_RE = re.compile(r"^(\d{3})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
# Per attempt: long enough for a busy table's short transactions to finish, short enough
# that the queries queued behind the waiting DDL barely notice.
MIGRATION_LOCK_TIMEOUT_MS = 5000
MIGRATION_LOCK_ATTEMPTS = 5
MIGRATION_LOCK_BACKOFF_S = 1.0   # doubled after each lock timeout, up to the max
MIGRATION_LOCK_BACKOFF_MAX_S = 8.0
STATEMENT_SHOWN_CHARS = 120


class MigrationError(Exception):
    """The migration files or the applied history are inconsistent; nothing was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(slots=True)
class MigrationStatus:
    """Applied versus available migrations."""

    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.pending and not self.problems

    def as_dict(self) -> dict[str, object]:
        """Return the /health and `migrate --status --json` shape."""
        return {
            "ok": self.ok,
            "count": len(self.applied),
            "applied": self.applied,
            "pending": self.pending,
            "problems": self.problems,
        }


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read and check the migration files; raise MigrationError naming every bad file."""
    problems: list[str] = []
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            problems.append(f"{path.name}: name must look like NNN_snake_case.sql")
            continue
        text = path.read_text(encoding="utf-8")
        problems.extend(f"{path.name}: {problem}" for problem in destructive_statements(text))
        checksum = hashlib.sha256(text.encode()).hexdigest()
        migrations.append(Migration(int(match.group(1)), match.group(2), path, text, checksum))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            what = "repeats" if migration.version < expected else "skips"
            problems.append(
                f"{migration.filename}: number {what} (expected {expected:03d}); "
                "migrations are numbered 001, 002, ... without gaps"
            )
            break
    if problems:
        raise MigrationError("; ".join(problems))
    return migrations


def destructive_statements(text: str) -> list[str]:
    """Return one problem per statement of text that destroys data (or why it does not parse)."""
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    for raw in statements:
        why = _destroys(raw.stmt) if raw.stmt is not None else None
        if why:
            start = raw.stmt_location or 0
            end = start + raw.stmt_len if raw.stmt_len else None  # 0: up to the end of the text
            shown = " ".join(text[start:end].split())
            if len(shown) > STATEMENT_SHOWN_CHARS:
                shown = shown[:STATEMENT_SHOWN_CHARS] + "..."
            problems.append(f"`{shown}` {why}; migrations never destroy data")
    return problems


def _destroys(stmt: ast.Node) -> str | None:
    if isinstance(stmt, ast.DropStmt):
        if stmt.removeType == ObjectType.OBJECT_TABLE:
            return "drops a table"
        if stmt.removeType == ObjectType.OBJECT_SCHEMA:
            return "drops a schema"
        if stmt.behavior == DropBehavior.DROP_CASCADE:
            return "drops with CASCADE (and with it whatever depends on it)"
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            if isinstance(cmd, ast.AlterTableCmd) and cmd.subtype == AlterTableType.AT_DropColumn:
                return "drops a column"
    if isinstance(stmt, ast.TruncateStmt):
        return "truncates a table"
    if isinstance(stmt, ast.DeleteStmt) and stmt.whereClause is None:
        return "deletes every row (DELETE without WHERE)"
    if isinstance(stmt, ast.UpdateStmt) and stmt.whereClause is None:
        return "updates every row (UPDATE without WHERE)"
    return None


def compare(migrations: list[Migration], applied_rows: list[dict[str, object]]) -> MigrationStatus:
    """Compare files with the applied history."""
    status = MigrationStatus()
    by_version = {m.version: m for m in migrations}
    applied_versions = set()
    for row in applied_rows:
        version = int(row["version"])  # type: ignore[call-overload]
        applied_versions.add(version)
        label = f"{version:03d}_{row['name']}.sql"
        migration = by_version.get(version)
        if migration is None:
            status.problems.append(f"{label}: applied but the file is missing")
        elif migration.checksum != row["checksum"]:
            status.problems.append(
                f"{migration.filename}: checksum changed since it was applied; "
                "applied migrations are never edited, add a new file instead"
            )
        status.applied.append(label)
    status.pending = [m.filename for m in migrations if m.version not in applied_versions]
    return status


async def read_status(
    conn: psycopg.AsyncConnection, directory: Path = MIGRATIONS_DIR
) -> MigrationStatus:
    """Return the migration status of the database behind conn (read-only)."""
    try:
        migrations = discover(directory)
    except MigrationError as exc:
        return MigrationStatus(problems=[str(exc)])
    store = MigrationStore(conn)
    rows = await store.applied() if await store.table_exists() else []
    return compare(migrations, rows)


async def apply_pending(conninfo: str, *, directory: Path = MIGRATIONS_DIR,
                        connect_timeout_s: float = 10, application_name: str = "migrate",
                        ) -> MigrationStatus:
    """Apply every pending migration under the migration lock; return the final status."""
    migrations = discover(directory)
    conn = await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, connect_timeout=int(max(1, connect_timeout_s)),
        application_name=application_name,
    )
    try:
        db.require_supported_server(conn)
        store = MigrationStore(conn)
        await store.lock(key=MIGRATION_LOCK_KEY)
        try:
            await store.create_table()
            status = await read_status(conn, directory)
            if status.problems:
                raise MigrationError("; ".join(status.problems))
            for migration in migrations:
                if migration.filename in status.pending:
                    await _apply_one(conn, migration)
            return await read_status(conn, directory)
        finally:
            await store.unlock(key=MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_one(conn: psycopg.AsyncConnection, migration: Migration) -> None:
    """Apply one file and its bookkeeping row in one transaction, retrying on lock timeout.

    A crash or an error anywhere inside rolls the whole file back: it is applied or it is not.
    """
    store = MigrationStore(conn)
    backoff = Backoff(initial_s=MIGRATION_LOCK_BACKOFF_S, max_s=MIGRATION_LOCK_BACKOFF_MAX_S)
    for attempt in range(1, MIGRATION_LOCK_ATTEMPTS + 1):
        started = time.perf_counter()
        try:
            async with conn.transaction():
                await store.set_lock_timeout(lock_timeout_ms=MIGRATION_LOCK_TIMEOUT_MS)
                await conn.execute(migration.sql.encode())
                duration_ms = (time.perf_counter() - started) * 1000
                await store.record(version=migration.version, name=migration.name,
                                   checksum=migration.checksum, duration_ms=duration_ms)
            break
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == MIGRATION_LOCK_ATTEMPTS:
                raise MigrationError(
                    f"{migration.filename}: could not take its locks within "
                    f"{MIGRATION_LOCK_TIMEOUT_MS} ms in {attempt} attempts (a long transaction "
                    "holds them); nothing of it was applied") from exc
            delay_s = backoff.next_delay()
            logger.warning("migration_lock_timeout", extra={
                "migration": migration.filename, "attempt": attempt,
                "next_delay_s": round(delay_s, 2)})
            await asyncio.sleep(delay_s)
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.filename}: failed to apply: {exc}") from exc
    logger.info("migration_applied", extra={
        "migration": migration.filename, "duration_ms": round(duration_ms, 1)})
