"""/health, /ready and /metrics: in-process against RuntimeState, then a whole `run` process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from supervisor.http import build_app
from supervisor.metrics import COUNTER_HELP
from supervisor.migrations import discover
from supervisor.runtime_state import DB_DOWN_GRACE_S, LeaderInfo, RuntimeState, ServiceInfo
from tests.helpers import BOT_TOKEN, KIE_KEY, eventually, make_env
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
FILES = [m.filename for m in discover()]
CATALOG_MODELS = 73
MIGRATED = {"ok": True, "count": len(FILES), "applied": FILES, "pending": []}


def new_state(**fields: Any) -> RuntimeState:
    return RuntimeState(instance_id="inst-a", bot_mode="webhook", version="9.9.9", **fields)


@pytest.fixture
def state() -> RuntimeState:
    return new_state()


@pytest.fixture
async def client(state: RuntimeState) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(state))) as c:
        yield c


async def get_json(client: TestClient, path: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path)
    assert response.content_type == "application/json"
    return response.status, await response.json()


# ---- /health ----


async def test_health_reports_every_field(client: TestClient, state: RuntimeState) -> None:
    now = time.monotonic()
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    state.catalog_models = CATALOG_MODELS
    state.set_role("leader", term=7, reason="lock acquired")
    state.trust_until_mono = now + 60
    state.leader = LeaderInfo(instance_id="inst-a", term=7, heartbeat_at_mono=now - 0.25,
                              expires_at_mono=now + 4.75)
    state.services["instance-heartbeat"] = ServiceInfo(state="running", restarts=2)
    state.cluster = [{"instance_id": "inst-a", "role": "leader"}]
    state.takeovers = 1

    status, body = await get_json(client, "/health")

    assert status == 200
    assert body["status"] == "ok"
    assert body["instance_id"] == "inst-a"
    assert body["role"] == "leader" and body["term"] == 7
    leader = body["leader"]
    assert set(leader) == {"instance_id", "term", "heartbeat_age_s", "lease_expires_in_s"}
    assert leader["instance_id"] == "inst-a" and leader["term"] == 7
    assert 0.25 <= leader["heartbeat_age_s"] < 60
    assert leader["lease_expires_in_s"] <= 4.75
    assert body["bot_mode"] == "webhook"
    assert body["uptime_s"] >= 0
    assert body["version"] == "9.9.9"
    assert body["migrations"] == {"applied": FILES, "count": len(FILES), "pending": [],
                                  "ok": True}
    assert body["catalog"] == {"models": CATALOG_MODELS}
    assert body["services"] == {"instance-heartbeat": {"state": "running", "restarts": 2,
                                                       "last_error": None}}
    assert body["cluster"] == [{"instance_id": "inst-a", "role": "leader"}]
    transition = body["last_transition"]
    assert (transition["from"], transition["to"], transition["reason"]) == (
        "follower", "leader", "lock acquired")
    assert body["takeovers"] == 1
    assert body["last_errors"] == []
    assert body["problems"] == []
    assert body["counters"] == {}


async def test_health_of_a_fresh_follower_is_degraded_until_migrated(
        client: TestClient, state: RuntimeState) -> None:
    status, body = await get_json(client, "/health")
    assert status == 503
    assert body["status"] == "degraded"
    assert body["role"] == "follower" and body["term"] is None
    assert body["leader"] == {"instance_id": None, "term": None, "heartbeat_age_s": None,
                              "lease_expires_in_s": None}
    assert body["last_transition"] is None
    assert body["migrations"]["ok"] is False
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    assert (await get_json(client, "/health"))[1]["status"] == "ok"


async def test_health_is_503_for_a_leader_past_its_trust_window(
        client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    state.set_role("leader", term=3, reason="lock acquired")
    state.trust_until_mono = time.monotonic() - 1.0
    status, body = await get_json(client, "/health")
    assert status == 503
    assert body["status"] == "degraded"
    assert body["role"] == "leader"


async def test_health_is_200_for_a_follower_whatever_its_old_trust_window(
        client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    state.trust_until_mono = time.monotonic() - 1.0
    assert (await client.get("/health")).status == 200


async def test_health_shows_stopping(client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    state.stopping = True
    assert (await get_json(client, "/health"))[1]["status"] == "stopping"


async def test_health_shows_error_classes_and_counts_per_place(
        client: TestClient, state: RuntimeState) -> None:
    state.record_error("migrations", ConnectionError("server closed the connection"))
    state.record_error("migrations", ConnectionError("server closed the connection again"))
    state.record_error("webhook", ValueError("bad"))
    _, body = await get_json(client, "/health")
    errors = {(e["where"], e["error"]): e for e in body["last_errors"]}
    assert set(errors) == {("migrations", "ConnectionError"), ("webhook", "ValueError")}
    assert errors[("migrations", "ConnectionError")]["count"] == 2
    assert errors[("webhook", "ValueError")]["count"] == 1


async def test_health_never_shows_exception_text(client: TestClient, state: RuntimeState) -> None:
    leaked = "chat 424242 said 'my secret plan'; parameters: ('4111 1111 1111 1111',)"
    state.services["updates"] = ServiceInfo(state="backoff", restarts=1)
    state.record_error("updates", RuntimeError(leaked))
    _, body = await get_json(client, "/health")
    text = orjson.dumps(body).decode()
    for fragment in ("424242", "secret plan", "4111"):
        assert fragment not in text
    assert body["services"]["updates"]["last_error"] == "RuntimeError"


async def test_health_is_503_until_migrations_are_applied(
        client: TestClient, state: RuntimeState) -> None:
    state.mark_db_ok()
    status, body = await get_json(client, "/health")
    assert status == 503
    assert "migrations not applied" in body["problems"]
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    status, body = await get_json(client, "/health")
    assert status == 200
    assert body["problems"] == []


async def test_health_is_503_when_the_database_is_away_beyond_the_grace(
        client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.db_ok_mono = time.monotonic() - DB_DOWN_GRACE_S - 1
    status, body = await get_json(client, "/health")
    assert status == 503
    assert body["problems"] == ["database unreachable"]
    assert body["role"] == "follower"  # the same document as a 200


async def test_health_is_200_for_a_serving_follower_while_the_database_blips(
        client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.db_ok_mono = time.monotonic() - DB_DOWN_GRACE_S / 2
    assert (await client.get("/health")).status == 200


# ---- /ready ----


async def test_ready_is_503_until_migrated_and_the_database_is_fresh(
        client: TestClient, state: RuntimeState) -> None:
    status, body = await get_json(client, "/ready")
    assert status == 503
    assert body == {"ready": False, "problems": ["migrations not applied",
                                                 "database has not answered recently"]}

    state.migrations = dict(MIGRATED)
    status, body = await get_json(client, "/ready")
    assert status == 503
    assert body["problems"] == ["database has not answered recently"]

    state.mark_db_ok()
    status, body = await get_json(client, "/ready")
    assert status == 200
    assert body == {"ready": True, "problems": []}


async def test_ready_is_503_when_the_database_answer_is_stale(
        client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.db_ok_mono = time.monotonic() - 3600
    status, body = await get_json(client, "/ready")
    assert status == 503
    assert body["problems"] == ["database has not answered recently"]


async def test_ready_is_503_while_shutting_down(client: TestClient, state: RuntimeState) -> None:
    state.migrations = dict(MIGRATED)
    state.mark_db_ok()
    state.mark_db_ok()
    state.stopping = True
    status, body = await get_json(client, "/ready")
    assert status == 503
    assert body["problems"] == ["shutting down"]


# ---- /metrics ----


async def test_metrics_is_prometheus_text_with_help_and_type(
        client: TestClient, state: RuntimeState) -> None:
    state.set_role("leader", term=5, reason="lock acquired")
    state.takeovers = 2
    state.services["updates"] = ServiceInfo(state="running", restarts=3)
    state.count("updates_processed", 4)
    state.count("something_new")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["kiebot_is_leader"].samples[0].labels == {"instance": "inst-a"}
    assert families["kiebot_is_leader"].samples[0].value == 1
    assert families["kiebot_term"].samples[0].value == 5
    assert families["kiebot_takeovers"].type == "counter"
    assert families["kiebot_takeovers"].samples[0].value == 2
    (restarts,) = families["kiebot_service_restarts"].samples
    assert restarts.labels == {"service": "updates"} and restarts.value == 3
    processed = families["kiebot_updates_processed"]
    assert processed.type == "counter" and processed.samples[0].value == 4
    assert processed.documentation == COUNTER_HELP["updates_processed"]
    assert families["kiebot_something_new"].documentation
    assert "# HELP kiebot_uptime_seconds " in text and "# TYPE kiebot_uptime_seconds gauge" in text


async def test_metrics_of_a_follower(client: TestClient) -> None:
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["kiebot_is_leader"].samples[0].value == 0
    assert families["kiebot_term"].samples[0].value == 0
    assert families["kiebot_serving"].samples[0].value == 0  # not migrated yet


async def test_each_runtime_state_has_metrics_of_its_own() -> None:
    first, second = new_state(), new_state()
    first.count("updates_processed", 7)
    async with TestClient(TestServer(build_app(second))) as other:
        text = await (await other.get("/metrics")).text()
    assert "kiebot_updates_processed_total" not in text


async def test_unknown_path_is_404(client: TestClient) -> None:
    assert (await client.get("/nope")).status == 404


# ---- the whole process ----


async def test_run_process_serves_health_becomes_leader_and_exits_0_on_sigterm(
        database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = make_env(database_url, PORT=str(port), INSTANCE_ID="proc-1", SHUTDOWN_GRACE="5")
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    secrets = [BOT_TOKEN, KIE_KEY]
    err_path = tmp_path / "run.err"
    url = f"http://127.0.0.1:{port}/health"
    last: dict[str, Any] = {}

    with err_path.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor", "run", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=err)
    try:
        async with aiohttp.ClientSession() as session:

            async def health_says(predicate: Any) -> bool:
                assert proc.returncode is None, (
                    f"exited {proc.returncode}: {err_path.read_text()}")
                try:
                    async with session.get(url) as response:
                        text = await response.text()
                except aiohttp.ClientError:
                    return False
                for secret in secrets:
                    assert secret not in text
                last.clear()
                last.update(orjson.loads(text))
                return bool(predicate(last))

            await eventually(lambda: health_says(lambda b: True), timeout_s=20,
                             interval_s=0.05, what="/health to answer")
            await eventually(lambda: health_says(lambda b: b["role"] == "leader"),
                             timeout_s=20, interval_s=0.05, what="the instance to lead")
        assert last["catalog"] == {"models": CATALOG_MODELS}
        assert last["migrations"]["ok"] is True
        assert last["migrations"]["applied"] == FILES
        assert last["instance_id"] == "proc-1"
        assert last["leader"]["instance_id"] == "proc-1"
        assert last["term"] == last["leader"]["term"] and last["term"] >= 1
        assert last["status"] == "ok"

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err_path.read_text()
    assert code == 0, log
    for secret in secrets:
        assert secret not in log
    assert '"event":"leader_promoted"' in log
    assert '"event":"instance_stopped"' in log
