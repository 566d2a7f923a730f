"""The migration runner against a real PostgreSQL: once, concurrently, and tamper-evident."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

from sandbox.harness.databases import with_database
from supervisor import migrations as migrations_module
from supervisor.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_pending,
    discover,
    read_status,
)
from tests.helpers import eventually, make_env
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
FILES = [m.filename for m in discover()]
PROCESSES = 5


def cli_env(url: str, **overrides: str) -> dict[str, str]:
    """Return a full valid environment for a CLI subprocess (PORT set to a real port)."""
    env = make_env(url, **{"PORT": str(free_port()), **overrides})
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor", *args]


def applied_rows(url: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM schema_migrations ORDER BY version")
        return cur.fetchall()


async def status_of(url: str, directory: Path = MIGRATIONS_DIR):  # type: ignore[no-untyped-def]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await read_status(conn, directory)


def sql_files(directory: Path) -> list[Path]:
    """Return the migration files of directory in order (sync: keeps async tests lint-clean)."""
    return sorted(directory.glob("*.sql"))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def remove(path: Path) -> None:
    path.unlink()


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


async def test_empty_database_gets_every_migration_with_its_bookkeeping(
        empty_database_url: str) -> None:
    status = await apply_pending(empty_database_url)
    assert status.ok
    assert status.applied == FILES
    assert status.pending == [] and status.problems == []
    rows = applied_rows(empty_database_url)
    assert [r["version"] for r in rows] == list(range(1, len(FILES) + 1))
    by_version = {m.version: m for m in discover()}
    for row in rows:
        migration = by_version[row["version"]]  # type: ignore[index]
        assert row["name"] == migration.name
        assert row["checksum"] == migration.checksum
        assert row["applied_at"] is not None
        assert isinstance(row["duration_ms"], float) and row["duration_ms"] >= 0


async def test_second_run_applies_nothing(empty_database_url: str) -> None:
    await apply_pending(empty_database_url)
    before = applied_rows(empty_database_url)
    status = await apply_pending(empty_database_url)
    assert status.ok and status.applied == FILES
    assert applied_rows(empty_database_url) == before


async def test_read_status_on_an_empty_database_lists_everything_pending(
        empty_database_url: str) -> None:
    status = await status_of(empty_database_url)
    assert not status.ok
    assert status.applied == [] and status.pending == FILES


def test_five_processes_migrating_at_once_apply_each_file_exactly_once(
        empty_database_url: str, tmp_path: Path) -> None:
    env = cli_env(empty_database_url)
    logs = [(tmp_path / f"migrate-{i}.err").open("w+") for i in range(PROCESSES)]
    procs = [subprocess.Popen(cli("migrate"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=log, text=True) for log in logs]
    try:
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out, log in zip(procs, outputs, logs, strict=True):
        log.seek(0)
        err = log.read()
        log.close()
        assert proc.returncode == 0, err
        assert f"applied: {len(FILES)}  pending: 0" in out
        assert "Traceback" not in err and '"level":"ERROR"' not in err, err
        assert "refused" not in err and "unavailable" not in err, err
    rows = applied_rows(empty_database_url)
    assert [r["version"] for r in rows] == list(range(1, len(FILES) + 1))
    with psycopg.connect(empty_database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables and tables[0] > len(FILES)


async def test_edited_applied_migration_is_reported_by_name(
        empty_database_url: str, migrations_copy: Path) -> None:
    await apply_pending(empty_database_url, directory=migrations_copy)
    edited = sql_files(migrations_copy)[1]
    append(edited, "\n-- a harmless edit\n")

    with pytest.raises(MigrationError) as info:
        await apply_pending(empty_database_url, directory=migrations_copy)
    assert edited.name in str(info.value)
    assert "checksum changed" in str(info.value)

    status = await status_of(empty_database_url, migrations_copy)
    assert not status.ok
    assert len(status.problems) == 1
    assert status.problems[0].startswith(f"{edited.name}: checksum changed")


async def test_refused_run_applies_nothing_new(
        empty_database_url: str, migrations_copy: Path) -> None:
    await apply_pending(empty_database_url, directory=migrations_copy)
    append(sql_files(migrations_copy)[0], "\n-- edit\n")
    write(migrations_copy / f"{len(FILES) + 1:03d}_extra.sql",
          "CREATE TABLE extra_table (id INT);\n")
    with pytest.raises(MigrationError):
        await apply_pending(empty_database_url, directory=migrations_copy)
    assert len(applied_rows(empty_database_url)) == len(FILES)
    with psycopg.connect(empty_database_url) as conn:
        row = conn.execute("SELECT to_regclass('extra_table') IS NULL").fetchone()
    assert row and row[0]


async def test_deleted_applied_migration_is_reported_missing(
        empty_database_url: str, migrations_copy: Path) -> None:
    await apply_pending(empty_database_url, directory=migrations_copy)
    last = sql_files(migrations_copy)[-1]
    remove(last)

    status = await status_of(empty_database_url, migrations_copy)
    assert not status.ok
    assert status.problems == [f"{last.name}: applied but the file is missing"]

    with pytest.raises(MigrationError) as info:
        await apply_pending(empty_database_url, directory=migrations_copy)
    assert last.name in str(info.value) and "missing" in str(info.value)


async def test_new_file_is_applied_on_top_of_the_existing_history(
        empty_database_url: str, migrations_copy: Path) -> None:
    await apply_pending(empty_database_url, directory=migrations_copy)
    name = f"{len(FILES) + 1:03d}_add_extra.sql"
    write(migrations_copy / name, "CREATE TABLE extra_table (id INT);\n")
    status = await apply_pending(empty_database_url, directory=migrations_copy)
    assert status.ok and status.applied == [*FILES, name]


async def test_failing_migration_leaves_the_prefix_applied_and_names_the_file(
        empty_database_url: str, migrations_copy: Path) -> None:
    name = f"{len(FILES) + 1:03d}_broken.sql"
    write(migrations_copy / name,
          "CREATE TABLE half_done (id INT);\nSELECT * FROM no_such_table;\n")
    with pytest.raises(MigrationError) as info:
        await apply_pending(empty_database_url, directory=migrations_copy)
    assert name in str(info.value)
    assert [r["version"] for r in applied_rows(empty_database_url)] == list(
        range(1, len(FILES) + 1))
    with psycopg.connect(empty_database_url) as conn:
        row = conn.execute("SELECT to_regclass('half_done') IS NULL").fetchone()
    assert row and row[0], "the failed file's DDL must roll back with it"


def test_migrate_status_json_prints_the_status(database_url: str) -> None:
    result = subprocess.run(cli("migrate", "--status", "--json"), cwd=ROOT,
                            env=cli_env(database_url), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    status = orjson.loads(result.stdout)
    assert status == {"ok": True, "count": len(FILES), "applied": FILES, "pending": [],
                      "problems": []}


def test_migrate_status_json_on_an_empty_database_exits_nonzero(
        empty_database_url: str) -> None:
    result = subprocess.run(cli("migrate", "--status", "--json"), cwd=ROOT,
                            env=cli_env(empty_database_url), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    status = orjson.loads(result.stdout)
    assert status["ok"] is False and status["pending"] == FILES
    assert applied_rows_or_none(empty_database_url) is None, "--status must not migrate"


def applied_rows_or_none(url: str) -> list[dict[str, object]] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return applied_rows(url) if row and row[0] else None


async def test_template_database_fixture_has_every_migration(database_url: str) -> None:
    status = await status_of(database_url)
    assert status.ok, status.as_dict()
    assert status.applied == FILES


def test_run_refuses_to_start_when_an_applied_checksum_was_tampered(
        database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    err_path = tmp_path / "run.err"
    with err_path.open("w") as err:
        result = subprocess.run(cli("run"), cwd=ROOT, env=cli_env(database_url),
                                stdout=subprocess.PIPE, stderr=err, text=True, timeout=20)
    stderr = err_path.read_text()
    assert result.returncode == 1, stderr
    assert FILES[0] in stderr
    assert "refusing to start" in stderr
    assert "checksum changed" in stderr


@pytest.fixture
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations_module, "MIGRATION_LOCK_TIMEOUT_MS", 100)
    monkeypatch.setattr(migrations_module, "MIGRATION_LOCK_BACKOFF_S", 0.05)
    monkeypatch.setattr(migrations_module, "MIGRATION_LOCK_ATTEMPTS", 3)


async def test_a_migration_blocked_by_a_long_transaction_gives_up_naming_the_file(
        database_url: str, migrations_copy: Path, short_lock_timeout: None) -> None:
    name = f"{len(FILES) + 1:03d}_add_note.sql"
    write(migrations_copy / name, "ALTER TABLE users ADD COLUMN note TEXT;\n")
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("SELECT count(*) FROM users")  # holds ACCESS SHARE until rollback
        with pytest.raises(MigrationError) as info:
            await apply_pending(database_url, directory=migrations_copy)
        await blocker.rollback()
    assert name in str(info.value) and "locks" in str(info.value)
    assert name not in (await status_of(database_url, migrations_copy)).applied


async def test_a_migration_retries_after_a_lock_timeout_and_applies_once_the_lock_is_free(
        database_url: str, migrations_copy: Path, short_lock_timeout: None,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations_module, "MIGRATION_LOCK_ATTEMPTS", 100)  # however slow we are
    name = f"{len(FILES) + 1:03d}_add_note.sql"
    write(migrations_copy / name, "ALTER TABLE users ADD COLUMN note TEXT;\n")
    caplog.set_level(logging.WARNING, logger="supervisor.migrations")
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("SELECT count(*) FROM users")
        applying = asyncio.create_task(apply_pending(database_url, directory=migrations_copy))
        await eventually(lambda: any(r.getMessage() == "migration_lock_timeout"
                                     for r in caplog.records), what="a lock timeout")
        await blocker.rollback()
        status = await applying
    assert status.ok and status.applied[-1] == name


def test_migrate_on_a_missing_database_names_the_cause_and_the_key(database_url: str) -> None:
    missing = with_database(database_url, "kiebot_no_such_database")
    result = subprocess.run(cli("migrate"), cwd=ROOT, env=cli_env(missing),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "database: the database does not exist; fix DATABASE_URL"
