"""The leader's invariants audit publishes them on /health and /metrics."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from services.generation.invariants_job import InvariantsJob
from supervisor.http import build_app
from supervisor.runtime_state import RuntimeState
from tests.integration.generation_support import new_user

# A priced, open job with no hold behind it: what a bug in the request path would leave.
UNHELD_JOB_SQL = b"""
INSERT INTO generation_jobs (user_id, chat_id, model_id, params, price_kop, idempotency_key)
VALUES (700001, 700001, 'z-image', '{}', 500, 'unheld')
"""


async def scrape(state: RuntimeState) -> tuple[dict[str, object], str]:
    async with TestClient(TestServer(build_app(state))) as client:
        health = await (await client.get("/health")).json()
        metrics = await (await client.get("/metrics")).text()
    return health, metrics


async def test_a_clean_audit_shows_ok_on_health_and_metrics(pool: AsyncConnectionPool) -> None:
    state = RuntimeState(instance_id="a", bot_mode="polling", version="0")
    assert await InvariantsJob(pool, state).run() == []
    health, metrics = await scrape(state)
    assert health["invariants"]["ok"] is True and health["invariants"]["violations"] == 0
    assert "kiebot_invariants_ok 1.0" in metrics


async def test_a_violation_is_reported_with_its_rule(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn, conn.transaction():
        await new_user(conn)
        await conn.execute(UNHELD_JOB_SQL)
    state = RuntimeState(instance_id="a", bot_mode="polling", version="0")
    violations = await InvariantsJob(pool, state).run()
    assert violations
    health, metrics = await scrape(state)
    assert health["invariants"]["ok"] is False
    assert "open_job_has_its_hold" in health["invariants"]["rules"]
    assert "kiebot_invariants_ok 0.0" in metrics
    assert f"kiebot_invariant_violations_total {float(len(violations))}" in metrics
