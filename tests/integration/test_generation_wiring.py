"""The composition root wires the generation engine: its leader loops, the invariants job and
the Kie callback route on every instance, in both bot modes."""

from __future__ import annotations

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from services.composition import compose
from services.generation.callback_ingress import callback_url
from supervisor.http import build_app
from supervisor.runtime_state import RuntimeState
from tests.helpers import make_env

ENGINE_SERVICES = {"kie-submitter", "kie-callbacks", "kie-poller", "kie-delivery"}


@pytest.fixture(autouse=True)
def own_dispatcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give compose() a Dispatcher of its own: the product's routers join only one per process."""
    monkeypatch.setattr("services.composition.build_dispatcher",
                        lambda storage, **_: Dispatcher(storage=storage))


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_every_instance_takes_kie_callbacks_and_the_leader_runs_the_engine(
        database_url: str, pool: AsyncConnectionPool, mode: str) -> None:
    settings = load_settings(make_env(database_url, BOT_MODE=mode))
    state = RuntimeState(instance_id="a", bot_mode=mode, version="0")
    composition = await compose(settings, pool, state)
    try:
        assert {service.name for service in composition.leader_only} >= ENGINE_SERVICES
        app = build_app(state, tuple(composition.routes))
        async with TestClient(TestServer(app)) as client:
            url = callback_url("", 4242, "token")
            answer = await client.post(url, json={"code": 200, "data": {"taskId": "t"}})
            assert (answer.status, await answer.json()) == (
                404, {"ok": False, "error": "no such job"})
    finally:
        for close in composition.on_close:
            await close()
