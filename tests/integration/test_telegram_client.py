"""Outgoing Bot API calls: the retry policy, and the leader's webhook upkeep."""

from __future__ import annotations

import logging

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from sandbox.telegram import SandboxClient, TelegramSandbox
from services.telegram import bot as bot_module
from services.telegram.bot import NotLeading, create_bot
from services.telegram.service_state import ServiceStateStore
from services.telegram.webhook import WebhookRegistrar
from tests.helpers import BOT_ID, faulty_first_request, lead, make_env

CHAT = 501


async def test_a_429_is_retried_after_retry_after_and_the_message_is_sent_once(
        bot: Bot, control: SandboxClient) -> None:
    await control.fault("sendMessage", fail_next=1, status=429, retry_after=1)
    await bot.send_message(CHAT, "hello")
    stats = await control.stats()
    assert stats["status_429"] == 1
    assert [m["text"] for m in await control.chat_messages(CHAT)] == ["hello"]


async def test_server_errors_are_retried_with_backoff(
        bot: Bot, control: SandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_module, "BACKOFF_INITIAL_S", 0.01)
    await control.fault("sendMessage", fail_next=2, status=500)
    await bot.send_message(CHAT, "after two 500s")
    assert [m["text"] for m in await control.chat_messages(CHAT)] == ["after two 500s"]


@pytest.mark.parametrize("drop_connection", [True, False], ids=["dropped", "html-502"])
async def test_a_broken_connection_or_an_error_page_is_retried_with_backoff(
        sandbox: TelegramSandbox, control: SandboxClient, database_url: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        drop_connection: bool) -> None:
    monkeypatch.setattr(bot_module, "BACKOFF_INITIAL_S", 0.01)
    caplog.set_level(logging.WARNING, logger=bot_module.__name__)
    async with faulty_first_request(sandbox.base_url, drop_connection=drop_connection) as proxy:
        bot = create_bot(load_settings(make_env(database_url, TELEGRAM_API_BASE=proxy)),
                         leading=lambda: True)
        try:
            await bot.send_message(CHAT, "after one failed attempt")
        finally:
            await bot.session.close()
    assert [r.getMessage() for r in caplog.records] == ["telegram_call_failed"]
    assert [m["text"] for m in await control.chat_messages(CHAT)] == [
        "after one failed attempt"]


async def test_a_leader_that_loses_trust_mid_retry_sends_nothing_more(
        sandbox: TelegramSandbox, control: SandboxClient, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_module, "BACKOFF_INITIAL_S", 0.01)
    await control.fault("sendMessage", fail_next=1, status=500)
    checks: list[bool] = []

    def leading() -> bool:
        # Trusted for the first attempt only, as if the loop froze during the backoff.
        checks.append(not checks)
        return checks[-1]

    bot = create_bot(load_settings(make_env(database_url, TELEGRAM_API_BASE=sandbox.base_url)),
                     leading=leading)
    try:
        with pytest.raises(NotLeading):
            await bot.send_message(CHAT, "from a leader past its trust window")
        with pytest.raises(NotLeading):
            await bot.get_me()
    finally:
        await bot.session.close()
    assert checks == [True, False, False]
    # The one call Telegram saw is the refused (500) first attempt: the chat never got a message.
    assert (await control.stats())["calls"] == {"sendMessage": 1}


async def test_a_bad_request_is_final_and_not_retried(bot: Bot, control: SandboxClient) -> None:
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(CHAT, "")
    assert (await control.stats())["calls"].get("sendMessage") == 1


async def test_the_leader_sets_the_webhook_only_when_it_differs(
        bot: Bot, control: SandboxClient, pool: AsyncConnectionPool) -> None:
    leadership = await lead(pool)
    url = "http://127.0.0.1:9/telegram/webhook"
    registrar = WebhookRegistrar(pool, bot, url=url, secret="sec", allowed_updates=["message"],
                                 service_state=ServiceStateStore(BOT_ID))
    assert await registrar.ensure(leadership) is True
    assert await registrar.ensure(leadership) is False
    info = await bot.get_webhook_info()
    assert info.url == url and info.allowed_updates == ["message"]
    wider = WebhookRegistrar(pool, bot, url=url, secret="sec",
                             allowed_updates=["message", "callback_query"],
                             service_state=ServiceStateStore(BOT_ID))
    assert await wider.ensure(leadership) is True
    rotated = WebhookRegistrar(pool, bot, url=url, secret="new-secret",
                               allowed_updates=["message", "callback_query"],
                             service_state=ServiceStateStore(BOT_ID))
    assert await rotated.ensure(leadership) is True
    assert (await control.stats())["calls"]["setWebhook"] == 3
