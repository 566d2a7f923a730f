"""Fixtures for the chat screens' tests: the product's handlers on an in-process sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from sandbox.kie import KieSandbox, KieSandboxClient
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.telegram.bot import create_bot
from tests.e2e.chat import ChatBot
from tests.e2e.test_sandbox_kie import KEY, CallbackReceiver
from tests.helpers import BOT_TOKEN, make_env


@pytest.fixture
async def chatbot(database_url: str) -> AsyncIterator[ChatBot]:
    """The leader's loop with the product's handlers, against a sandbox without rate limits."""
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with (TelegramSandbox([BOT_TOKEN], config=config) as sandbox,
                SandboxClient(sandbox.base_url) as control,
                AsyncConnectionPool(database_url, min_size=2, max_size=10, open=False) as pool):
        bot = create_bot(load_settings(make_env(database_url,
                                                TELEGRAM_API_BASE=sandbox.base_url)),
                         leading=lambda: True)
        chat = ChatBot(pool, bot, sandbox, control)
        await chat.start()
        try:
            yield chat
        finally:
            await chat.stop()
            await bot.session.close()


# The Kie sandbox's tests share these; each of their modules runs its own `kie` sandbox.
@pytest.fixture
async def control(kie: KieSandbox) -> AsyncIterator[KieSandboxClient]:
    """Return the control API client of the module's Kie sandbox."""
    async with KieSandboxClient(kie.base_url) as client:
        yield client


@pytest.fixture
async def api(kie: KieSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """Return an HTTP session that sends the Bearer key to the module's Kie sandbox."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(kie.base_url, headers=headers) as session:
        yield session


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    """Run a callback receiver."""
    async with CallbackReceiver() as server:
        yield server
