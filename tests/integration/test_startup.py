"""Start-up of `python -m supervisor run` against databases that refuse it or are away."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
import pytest

from config import load_settings
from sandbox.harness.databases import with_database
from sandbox.harness.postgres import free_port
from supervisor import db, migrations
from supervisor.instance import EXIT_DATABASE_REFUSED
from supervisor.runtime_state import RuntimeState
from tests.helpers import eventually, make_env

ROOT = Path(__file__).resolve().parents[2]


def _env(database_url: str, **overrides: str) -> dict[str, str]:
    env = make_env(database_url, **overrides)
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


async def _run_to_exit(env: dict[str, str], err_path: Path) -> int:
    with err_path.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor", "run", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=err)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _refusal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("refusing to start: ")]


async def test_run_exits_at_once_naming_the_cause_when_the_database_does_not_exist(
        database_url: str, tmp_path: Path) -> None:
    missing = with_database(database_url, "kiebot_no_such_database")
    err_path = tmp_path / "run.err"
    code = await _run_to_exit(_env(missing), err_path)
    log = err_path.read_text()
    assert code == EXIT_DATABASE_REFUSED, log
    (line,) = _refusal_lines(log)
    assert "database does not exist" in line and "DATABASE_URL" in line
    assert "db_unreachable" not in log


async def test_run_exits_at_once_when_the_role_may_not_connect(
        database_url: str, tmp_path: Path) -> None:
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(netloc=f"kiebot_no_such_role@{parts.hostname}:{parts.port}"))
    err_path = tmp_path / "run.err"
    code = await _run_to_exit(_env(url), err_path)
    log = err_path.read_text()
    assert code == EXIT_DATABASE_REFUSED, log
    (line,) = _refusal_lines(log)
    assert "role" in line and "DATABASE_URL" in line


async def test_a_server_older_than_the_minimum_is_refused_naming_the_version(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "MIN_SERVER_VERSION_NUM", 99_0000)
    with pytest.raises(db.DatabaseRefused) as refused:
        await migrations.apply_pending(database_url)
    assert "too old" in str(refused.value) and "idle_session_timeout" in str(refused.value)
    assert refused.value.env_key == "DATABASE_URL"


def test_a_refused_connection_is_transient_and_missing_credentials_are_not() -> None:
    import psycopg

    assert db.refusal(psycopg.OperationalError(
        'connection to server at "10.0.0.1", port 5432 failed: Connection refused')) is None
    assert db.refusal(psycopg.OperationalError(
        'FATAL:  too many connections for database "kiebot"')) is None
    refused = db.refusal(psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "kiebot"'))
    assert refused is not None and "wrong user or password" in refused.cause


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    state = RuntimeState(instance_id="a", bot_mode="polling", version="0")
    caplog.set_level(logging.INFO, logger="supervisor.runtime_state")
    for _ in range(5):
        state.mark_db_unreachable("migrations", ConnectionRefusedError("refused"))
    state.mark_db_ok()
    state.mark_db_ok()
    assert [r.getMessage() for r in caplog.records] == ["db_unreachable", "db_reachable"]
    assert state.health()["last_errors"][0]["count"] == 5


async def test_an_unreachable_database_is_retried_quietly_and_sigterm_stops_start_up(
        tmp_path: Path) -> None:
    port = free_port()
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    env = _env(dead, PORT=str(port), SHUTDOWN_GRACE="1")
    err_path = tmp_path / "run.err"
    url = f"http://127.0.0.1:{port}/health"
    with err_path.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor", "run", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=err)
    try:
        async with aiohttp.ClientSession() as session:

            async def retried(times: int) -> bool:
                assert proc.returncode is None, err_path.read_text()
                try:
                    async with session.get(url) as response:
                        status, body = response.status, orjson.loads(await response.read())
                except aiohttp.ClientError:
                    return False
                assert status == 503, body
                errors: list[dict[str, Any]] = body["last_errors"]
                return any(e["where"] == "migrations" and e["count"] >= times for e in errors)

            await eventually(lambda: retried(4), timeout_s=30, interval_s=0.1,
                             what="four attempts to reach the database")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err_path.read_text()
    events = [orjson.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert code == 0, log
    assert events.count("db_unreachable") == 1, log
    assert "stop_requested" in events
    assert "instance_started" not in events, log
    assert events[-1] == "instance_stopped"


async def test_the_pool_does_not_log_each_failed_reconnect(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    pool = db.create_pool(load_settings(make_env(dead)))
    await pool.open(wait=False)
    try:
        await eventually(lambda: pool.get_stats().get("connections_errors", 0) >= 2,
                         what="two failed connection attempts")
    finally:
        await pool.close(timeout=1.0)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg.pool")] == []
