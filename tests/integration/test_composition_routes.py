"""The composition root installs the webhook route only in webhook mode."""

from __future__ import annotations

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from services.composition import compose
from services.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from supervisor.http import build_app
from supervisor.runtime_state import RuntimeState
from tests.helpers import make_env, message_update


@pytest.fixture(autouse=True)
def own_dispatcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give compose() a Dispatcher of its own: the product's routers join only one per process."""
    monkeypatch.setattr("services.composition.build_dispatcher",
                        lambda storage, **_: Dispatcher(storage=storage))


async def _post_webhook_status(database_url: str, pool: AsyncConnectionPool, mode: str) -> int:
    settings = load_settings(make_env(database_url, BOT_MODE=mode))
    state = RuntimeState(instance_id="a", bot_mode=mode, version="0")
    composition = await compose(settings, pool, state)
    try:
        app = build_app(state, tuple(composition.routes))
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                WEBHOOK_PATH, json=message_update(1),
                headers={SECRET_HEADER: settings.webhook_secret_token.get()})
            return response.status
    finally:
        for close in composition.on_close:
            await close()


async def test_polling_mode_has_no_webhook_route(database_url: str,
                                                 pool: AsyncConnectionPool) -> None:
    assert await _post_webhook_status(database_url, pool, "polling") == 404


async def test_webhook_mode_stores_a_webhook_delivery(database_url: str,
                                                      pool: AsyncConnectionPool) -> None:
    assert await _post_webhook_status(database_url, pool, "webhook") == 200
