"""Fixtures for in-process Telegram tests: the sandbox Bot API, its control client, a Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from config import load_settings
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.telegram.bot import create_bot
from tests.helpers import BOT_TOKEN, make_env


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    """A sandbox without rate limits that knows every chat the bot writes to."""
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sb:
        yield sb


@pytest.fixture
async def control(sandbox: TelegramSandbox) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.base_url) as client:
        yield client


@pytest.fixture
async def bot(sandbox: TelegramSandbox, database_url: str) -> AsyncIterator[Bot]:
    """The product's Bot (retry policy included) of a trusted leader, pointed at the sandbox."""
    b = create_bot(load_settings(make_env(database_url, TELEGRAM_API_BASE=sandbox.base_url)),
                   leading=lambda: True)
    try:
        yield b
    finally:
        await b.session.close()
