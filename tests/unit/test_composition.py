"""The composition root gives handlers product services only: no pool, settings or secret."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from aiogram import Dispatcher
from psycopg_pool import AsyncConnectionPool

from config import Secret, Settings, load_settings
from services.accounts import Accounts
from services.composition import compose
from services.telegram import handlers
from services.telegram.dispatcher import InboxDispatcher
from supervisor.runtime_state import RuntimeState
from tests.helpers import make_env

# compose() does no I/O: nothing ever connects to this.
UNREACHABLE_DB = "postgresql://kiebot:db-password-0123456789@127.0.0.1:9/kiebot"


def fresh_routers() -> None:
    """Re-create the feature modules' routers (a router joins one Dispatcher only)."""
    for module in handlers.FEATURES:
        importlib.reload(module)


@pytest.fixture
def own_routers() -> Iterator[None]:
    """Compose with routers no other test's Dispatcher holds, and leave fresh ones behind."""
    fresh_routers()
    try:
        yield
    finally:
        fresh_routers()


@pytest.mark.usefixtures("own_routers")
async def test_handlers_receive_services_and_never_the_pool_the_settings_or_a_secret() -> None:
    settings = load_settings(make_env(UNREACHABLE_DB))
    pool = AsyncConnectionPool(UNREACHABLE_DB, open=False)
    composition = await compose(settings, pool, RuntimeState("t", "polling", "test"))
    try:
        (inbox,) = [s for s in composition.leader_only if isinstance(s, InboxDispatcher)]
        aiogram_dp = inbox._dp
        assert isinstance(aiogram_dp, Dispatcher)
        data = aiogram_dp.workflow_data
        assert isinstance(data.get("accounts"), Accounts)
        for name, value in data.items():
            assert not isinstance(value, Settings | AsyncConnectionPool | Secret), name
            assert str(value) not in settings.secret_values(), name
    finally:
        for close in composition.on_close:
            await close()
