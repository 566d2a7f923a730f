"""`python -m supervisor check`: one line per probe, non-zero on any failure, no rows left."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from config import ENV_KEYS
from sandbox.harness.databases import with_database
from services.catalog import CATALOG_PATH, load_catalog
from supervisor import cli, logs
from supervisor.cli import EXIT_FAILED
from supervisor.migrations import discover
from tests.helpers import BOT_TOKEN, KIE_KEY, make_env
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("env", "database", "migrations", "catalog", "billing_idempotency")
PRODUCT_TABLES = ("users", "wallets", "ledger")


def cli_env(url: str) -> dict[str, str]:
    env = make_env(url, PORT="10000")
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


def run_check(url: str, command: str = "check",
              **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor", command], cwd=ROOT,
                          env=cli_env(url) | overrides, capture_output=True, text=True,
                          timeout=60)


def result_lines(stdout: str) -> dict[str, str]:
    """Map check name -> its whole line."""
    lines = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition("  ")
        name = rest.strip().split(":")[0]
        if status.strip() in ("ok", "FAIL", "skip") and name:
            lines[name] = line
    return lines


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        counts = {}
        for table in PRODUCT_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
            counts[table] = row[0] if row else -1
        return counts


@pytest.fixture
def free_tcp_url() -> str:
    """A PostgreSQL URL on a port nothing listens on."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    instance = logs.CONTEXT.instance_id
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logs.CONTEXT.instance_id = instance


def test_check_on_a_migrated_database_passes_every_probe(database_url: str) -> None:
    result = run_check(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result_lines(result.stdout)
    assert list(lines) == list(CHECKS)
    for name in CHECKS:
        assert lines[name].startswith(f"ok    {name}: "), lines[name]
    assert f"{len(discover())} applied, checksums match" in lines["migrations"]
    assert "73 models" in lines["catalog"] and "z-image" in lines["catalog"]
    output = result.stdout + result.stderr
    assert BOT_TOKEN not in output and KIE_KEY not in output


def test_billing_probe_leaves_no_rows_behind(database_url: str) -> None:
    assert row_counts(database_url) == dict.fromkeys(PRODUCT_TABLES, 0)
    result = run_check(database_url)
    assert result.returncode == 0, result.stdout
    assert row_counts(database_url) == dict.fromkeys(PRODUCT_TABLES, 0)


def test_check_on_an_unmigrated_database_fails_naming_pending_files(
        empty_database_url: str) -> None:
    result = run_check(empty_database_url)
    assert result.returncode != 0
    lines = result_lines(result.stdout)
    assert lines["env"].startswith("ok")
    assert lines["database"].startswith("ok")
    assert lines["migrations"].startswith(f"FAIL  migrations: {len(discover())} pending (")
    for migration in discover():
        assert migration.filename in lines["migrations"]
    assert lines["migrations"].endswith("run `python -m supervisor migrate`")
    for name in ("catalog", "billing_idempotency"):
        assert lines[name] == (f"skip  {name}: needs the migrations: "
                               "run `python -m supervisor migrate`")
    assert "does not exist" not in result.stdout + result.stderr  # no raw SQL errors
    with psycopg.connect(empty_database_url) as conn:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone()
    assert row and row[0], "check must not migrate"


def test_check_with_a_broken_catalog_fails_the_catalog_line(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    doc = orjson.loads(CATALOG_PATH.read_bytes())
    doc["models"][0]["inputs"][1]["type"] = "colour"
    broken_path = tmp_path / "catalog.json"
    broken_path.write_bytes(orjson.dumps(doc))
    for key in ENV_KEYS:
        monkeypatch.delenv(key.name, raising=False)
    for key, value in make_env(database_url, PORT="10000").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("services.checks.load_catalog",
                        lambda *a, **k: load_catalog(broken_path))

    code = cli.main(["check"])

    out = capsys.readouterr().out
    assert code != 0
    lines = result_lines(out)
    assert lines["catalog"].startswith("FAIL  catalog: "), out
    assert "colour" in out
    for name in ("env", "database", "migrations", "billing_idempotency"):
        assert lines[name].startswith(f"ok    {name}: "), out


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Yield a PostgreSQL URL whose server accepts TCP connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/postgres"


def test_check_on_a_host_that_never_answers_fails_once_and_skips_the_rest() -> None:
    with silent_server() as url:
        result = run_check(url, DB_CONNECT_TIMEOUT="1")
    assert result.returncode == EXIT_FAILED
    lines = result_lines(result.stdout)
    assert list(lines) == list(CHECKS)
    assert lines["database"].startswith("FAIL  database: no answer within DB_CONNECT_TIMEOUT")
    assert "DATABASE_URL" in lines["database"]
    for name in CHECKS[2:]:
        assert lines[name].startswith(f"skip  {name}: needs the database")
    assert result.stderr == "", result.stderr  # no pool warnings, no retries


def test_check_on_a_refused_port_names_the_cause_in_one_line(free_tcp_url: str) -> None:
    result = run_check(free_tcp_url)
    assert result.returncode == EXIT_FAILED
    lines = result_lines(result.stdout)
    assert lines["database"].startswith("FAIL  database: unreachable (")
    assert "Connection refused" in lines["database"]
    assert result.stderr == "", result.stderr


def test_check_on_a_missing_database_says_so_and_which_key_to_fix(database_url: str) -> None:
    result = run_check(with_database(database_url, "kiebot_no_such_database"))
    lines = result_lines(result.stdout)
    assert lines["database"] == ("FAIL  database: the database does not exist; "
                                 "fix DATABASE_URL")


def test_status_on_an_unmigrated_database_says_to_migrate(empty_database_url: str) -> None:
    result = run_check(empty_database_url, "status")
    assert result.returncode == EXIT_FAILED
    assert result.stderr.strip() == (
        f"database reachable but not migrated ({len(discover())} pending): "
        "run `python -m supervisor migrate`")


def test_status_on_a_migrated_database_shows_the_leader_and_events(database_url: str) -> None:
    result = run_check(database_url, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("leader: none yet\ninstances:\n")


def test_check_never_imports_aiogram(database_url: str) -> None:
    # aiogram's import alone took seconds; the smoke test must answer in about one.
    probe = ("import sys; from supervisor import cli; code = cli.main(['check']); "
             "print('aiogram' in sys.modules); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=cli_env(database_url),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "False"
