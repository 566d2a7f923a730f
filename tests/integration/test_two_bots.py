"""Two bots on one database: each election, inbox, claim and release sees only its own rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message
from psycopg_pool import AsyncConnectionPool

from config import load_settings
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.telegram.bot import create_bot
from services.telegram.dispatcher import CurrentTerm, InboxDispatcher
from services.telegram.inbox import bot_id_of
from services.telegram.service_state import ServiceStateStore
from supervisor.election import Leadership, lease_name
from supervisor.runtime_state import RuntimeState
from tests.helpers import (
    BOT_TOKEN,
    eventually,
    inbox_store,
    lead_lease,
    make_env,
    message_update,
    store_updates,
)

OTHER_TOKEN = "987654321:OTHER-token_abcdefghijklmnopqrstuvwxyz"
TOKENS = (BOT_TOKEN, OTHER_TOKEN)
STATUS_SQL = b"""
SELECT bot_id, update_id, status, claimed_term FROM telegram_updates ORDER BY bot_id, update_id
"""


@pytest.fixture
async def two_bot_sandbox() -> AsyncIterator[TelegramSandbox]:
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox(list(TOKENS), config=config) as sb:
        yield sb


def echo_dispatcher(tag: str) -> Dispatcher:
    router = Router()

    @router.message()
    async def echo(msg: Message) -> None:
        await msg.answer(f"{tag}: {msg.text}")

    dp = Dispatcher(storage=MemoryStorage())
    dp.include_router(router)
    return dp


def inbox_dispatcher(pool: AsyncConnectionPool, bot: Bot, tag: str) -> InboxDispatcher:
    async def listen_connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True)

    return InboxDispatcher(pool, bot, echo_dispatcher(tag), RuntimeState("t", "polling", "t"),
                           inbox=inbox_store(bot.id), term=CurrentTerm(),
                           listen_connect=listen_connect, concurrency=4)


async def rows(pool: AsyncConnectionPool) -> list[tuple[int, int, str, int | None]]:
    async with pool.connection() as conn:
        cur = await conn.execute(STATUS_SQL)
        return [tuple(r) for r in await cur.fetchall()]  # type: ignore[misc]


async def test_two_bots_with_the_same_update_ids_each_handle_only_their_own(
        pool: AsyncConnectionPool, database_url: str,
        two_bot_sandbox: TelegramSandbox) -> None:
    a_id, b_id = (bot_id_of(t) for t in TOKENS)
    bots = [create_bot(load_settings(make_env(database_url, TELEGRAM_BOT_TOKEN=t,
                                              TELEGRAM_API_BASE=two_bot_sandbox.base_url)),
                       leading=lambda: True)
            for t in TOKENS]
    # Bot B's update 3 was claimed by B's term 1, whose leader is still running it.
    assert await store_updates(pool, message_update(1, 11, "a one"),
                               message_update(2, 11, "a two"), bot_id=a_id) == 2
    assert await store_updates(pool, message_update(1, 22, "b one"),
                               message_update(2, 22, "b two"), message_update(3, 33, "b busy"),
                               bot_id=b_id) == 3
    b_leadership = await lead_lease(pool, lease_name(OTHER_TOKEN), term=1)
    async with b_leadership.fenced(pool) as conn:
        busy = await inbox_store(b_id).claim(conn, term=1, limit=1)
    assert [j.key for j in busy] == [1]
    # Bot A leads at a much higher term: on promotion it must release none of B's claims.
    a_leadership = await lead_lease(pool, lease_name(BOT_TOKEN), term=7)
    b_leadership = await lead_lease(pool, lease_name(OTHER_TOKEN), term=2)
    leaderships: list[Leadership] = [a_leadership, b_leadership]
    tasks = [asyncio.ensure_future(inbox_dispatcher(pool, bot, tag).run(leadership))
             for bot, tag, leadership in zip(bots, "AB", leaderships, strict=True)]
    try:
        async def all_done() -> bool:
            return all(r[2] == "done" for r in await rows(pool))

        await eventually(all_done, timeout_s=15, what="both bots' updates done")
    finally:
        for leadership in leaderships:
            leadership.draining.set()
        await asyncio.wait(tasks, timeout=15)
        for bot in bots:
            await bot.session.close()
    done = await rows(pool)
    assert [(r[0], r[1]) for r in done] == [(a_id, 1), (a_id, 2), (b_id, 1), (b_id, 2),
                                            (b_id, 3)]
    # B's stale claim was released by B's own new term (2), never by A's term 7.
    assert {r[3] for r in done if r[0] == b_id} == {2}
    async with SandboxClient(two_bot_sandbox.base_url, bot_id=a_id) as a_control:
        assert [m["text"] for m in await a_control.chat_messages(11)] == ["A: a one",
                                                                          "A: a two"]
    async with SandboxClient(two_bot_sandbox.base_url, bot_id=b_id) as b_control:
        assert [m["text"] for m in await b_control.chat_messages(22)] == ["B: b one",
                                                                          "B: b two"]
        assert [m["text"] for m in await b_control.chat_messages(33)] == ["B: b busy"]


async def test_two_bots_keep_their_own_service_state(pool: AsyncConnectionPool) -> None:
    a, b = (ServiceStateStore(bot_id_of(t)) for t in TOKENS)
    async with pool.connection() as conn:
        await a.put_state(conn, "telegram_webhook_fingerprint", "a-fingerprint")
        await b.put_state(conn, "telegram_webhook_fingerprint", "b-fingerprint")
        assert await a.get_state(conn, "telegram_webhook_fingerprint") == "a-fingerprint"
        assert await b.get_state(conn, "telegram_webhook_fingerprint") == "b-fingerprint"
