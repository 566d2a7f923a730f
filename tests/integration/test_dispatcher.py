"""The leader's Telegram loop in-process: poller -> inbox -> dispatcher -> handlers -> sandbox."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message
from psycopg_pool import AsyncConnectionPool

from sandbox.telegram import SandboxClient, TelegramSandbox
from services.accounts import Accounts
from services.catalog import get_catalog
from services.storefront import Storefront
from services.telegram import dispatcher as dispatcher_module
from services.telegram import texts
from services.telegram.dispatcher import CurrentTerm, InboxDispatcher
from services.telegram.fsm_storage import PostgresStorage
from services.telegram.handlers import build_dispatcher
from services.telegram.handlers.support import Support
from services.telegram.inbox import parse_update
from services.telegram.notices import dead_letter_notice
from services.telegram.poller import TelegramPoller
from supervisor.election import FencedError, Leadership
from supervisor.runtime_state import RuntimeState
from tests.e2e.chat import fresh_routers
from tests.helpers import (
    BOT_TOKEN,
    eventually,
    inbox_store,
    lead,
    message_update,
    set_term,
    store_updates,
)

STATUS_SQL = b"SELECT status, attempts, last_error FROM telegram_updates WHERE update_id = %s"


async def store(pool: AsyncConnectionPool, *updates: dict[str, Any]) -> None:
    await store_updates(pool, *updates)


async def status(pool: AsyncConnectionPool, update_id: int) -> tuple[Any, ...] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(STATUS_SQL, (update_id,))
        return await cur.fetchone()


def status_is(pool: AsyncConnectionPool, update_id: int,
              wanted: str) -> Callable[[], Awaitable[bool]]:
    """Return a condition: the update's inbox status is `wanted`."""
    async def check() -> bool:
        row = await status(pool, update_id)
        return bool(row and row[0] == wanted)
    return check


def make_dispatcher(pool: AsyncConnectionPool, bot: Bot, dp: Dispatcher,
                    term: CurrentTerm | None = None) -> InboxDispatcher:
    async def listen_connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True)

    return InboxDispatcher(pool, bot, dp, RuntimeState("test", "polling", "test"),
                           inbox=inbox_store(), term=term or CurrentTerm(),
                           listen_connect=listen_connect, concurrency=8,
                           on_dead_letter=dead_letter_notice(
                               bot, Accounts(pool, leadership=lambda: None)))


async def run_until(service_run: Awaitable[None], leadership: Leadership,
                    condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Run a service until condition holds, then drain it."""
    task = asyncio.ensure_future(service_run)
    try:
        await eventually(condition, timeout_s=15, what=what)
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 15)


def router_with(handler: Callable[[Message], Awaitable[None]]) -> Dispatcher:
    router = Router()
    router.message()(handler)
    dp = Dispatcher(storage=MemoryStorage())
    dp.include_router(router)
    return dp


@functools.cache
def product_dispatcher() -> Dispatcher:
    """The product's handlers (module-level routers can join only one Dispatcher)."""
    fresh_routers()  # the chat screens' tests may have attached them to theirs
    return build_dispatcher(storage=MemoryStorage())


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "RETRY_BASE_S", 0.05)
    monkeypatch.setattr(dispatcher_module, "WAKE_FALLBACK_S", 0.05)


async def test_polled_commands_register_the_user_and_answer_in_their_language(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient,
        sandbox: TelegramSandbox) -> None:
    leadership = await lead(pool)
    term = CurrentTerm()
    dp = product_dispatcher()
    dp.fsm.storage = PostgresStorage(pool, fence=term.fence_params)
    dp.workflow_data.update(accounts=Accounts(pool, leadership=lambda: term.leadership),
                            storefront=Storefront(pool, get_catalog(), markup=Decimal(2),
                                                  leadership=lambda: term.leadership),
                            support=Support())
    await control.inject([
        {"kind": "message", "chat_id": 11, "user_id": 11, "text": "/start",
         "language_code": "ru", "first_name": "Иван"},
        {"kind": "message", "chat_id": 22, "user_id": 22, "text": "/start",
         "language_code": "en", "first_name": "Ann"},
        {"kind": "message", "chat_id": 11, "user_id": 11, "text": "/balance",
         "language_code": "ru"},
        {"kind": "message", "chat_id": 22, "user_id": 22, "text": "/what_is_this",
         "language_code": "en"},
    ])
    poller = TelegramPoller(pool, RuntimeState("test", "polling", "test"),
                            api_base=sandbox.base_url, token=BOT_TOKEN,
                            allowed_updates=["message"], inbox=inbox_store())
    dispatcher = make_dispatcher(pool, bot, dp, term)

    async def both() -> None:
        await asyncio.gather(poller.run(leadership), dispatcher.run(leadership))

    async def four_replies() -> bool:
        return int((await control.stats())["outbox"]) >= 4

    await run_until(both(), leadership, four_replies, "four replies")
    ivan = [m["text"] for m in await control.chat_messages(11)]
    ann = [m["text"] for m in await control.chat_messages(22)]
    assert ivan[0].startswith("Привет, Иван!") and "0.00 ₽" in ivan[0]
    assert ivan[1].startswith("Ваш баланс: 0.00 ₽")
    assert ann[0].startswith("Hello, Ann!")
    assert ann[1] == ("I did not understand \u201c/what_is_this\u201d. "
                      "Send /help to see the commands.")
    stats = await control.stats()
    assert stats["confirmed"] == 4 and stats["pending"] == 0
    async with pool.connection() as conn:
        cur = await conn.execute(b"SELECT count(*) FROM wallets WHERE user_id IN (11, 22)")
        assert await cur.fetchone() == (2,)


async def test_a_failing_handler_is_retried_then_dead_lettered_with_an_apology(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient, fast_retries: None) -> None:
    calls: list[int] = []

    async def broken(msg: Message) -> None:
        calls.append(msg.message_id)
        raise RuntimeError("handler bug")

    leadership = await lead(pool)
    await store(pool, message_update(1, 33, "hi", "ru"))

    await run_until(make_dispatcher(pool, bot, router_with(broken)).run(leadership),
                    leadership, status_is(pool, 1, "failed"), "update 1 dead-lettered")
    row = await status(pool, 1)
    assert row is not None
    assert row[1] == dispatcher_module.MAX_ATTEMPTS == len(calls)
    assert "handler bug" in row[2]
    replies = [m["text"] for m in await control.chat_messages(33)]
    assert replies == [texts.get("ru", "something_went_wrong")]


async def test_a_handler_that_hangs_is_timed_out_retried_then_dead_lettered(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient, fast_retries: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "HANDLER_TIMEOUT_S", 0.05)
    never = asyncio.Event()
    calls: list[int] = []

    async def hangs(msg: Message) -> None:
        calls.append(msg.message_id)
        await never.wait()

    leadership = await lead(pool)
    await store(pool, message_update(1, 34, "hi"))

    await run_until(make_dispatcher(pool, bot, router_with(hangs)).run(leadership),
                    leadership, status_is(pool, 1, "failed"), "update 1 dead-lettered")
    row = await status(pool, 1)
    assert row is not None and row[1] == dispatcher_module.MAX_ATTEMPTS == len(calls)
    assert row[2].startswith("TimeoutError")
    assert len(await control.chat_messages(34)) == 1  # the apology, once


async def test_a_chat_waits_for_its_retried_update_while_other_chats_go_on(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient, fast_retries: None) -> None:
    failed_once: set[int] = set()

    async def flaky(msg: Message) -> None:
        if msg.text == "boom" and msg.message_id not in failed_once:
            failed_once.add(msg.message_id)
            raise RuntimeError("transient")
        await msg.answer(f"ok {msg.text}")

    leadership = await lead(pool)
    await store(pool, message_update(1, 44, "boom"), message_update(2, 44, "after"),
                message_update(3, 55, "other"))

    async def all_done() -> bool:
        rows = [await status(pool, i) for i in (1, 2, 3)]
        return all(r and r[0] == "done" for r in rows)

    await run_until(make_dispatcher(pool, bot, router_with(flaky)).run(leadership),
                    leadership, all_done, "three updates done")
    assert [m["text"] for m in await control.chat_messages(44)] == ["ok boom", "ok after"]
    assert [m["text"] for m in await control.chat_messages(55)] == ["ok other"]


async def test_updates_left_processing_by_an_older_term_run_again_after_promotion(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient) -> None:
    async def echo(msg: Message) -> None:
        await msg.answer(f"echo {msg.text}")

    await store(pool, message_update(1, 66, "in flight"))
    async with (await lead(pool, term=1)).fenced(pool) as conn:
        assert len(await inbox_store().claim(conn, term=1, limit=10)) == 1
    leadership = await lead(pool, term=2)

    await run_until(make_dispatcher(pool, bot, router_with(echo)).run(leadership),
                    leadership, status_is(pool, 1, "done"), "re-run of the stale claim")
    assert [m["text"] for m in await control.chat_messages(66)] == ["echo in flight"]


async def test_a_deposed_leader_claims_nothing(pool: AsyncConnectionPool, bot: Bot) -> None:
    async def echo(msg: Message) -> None:
        await msg.answer("should not happen")

    await store(pool, message_update(1, 77, "hello"))
    leadership = await lead(pool, term=1)
    await set_term(pool, 2)  # a newer leader took over
    with pytest.raises(FencedError):
        await asyncio.wait_for(make_dispatcher(pool, bot, router_with(echo)).run(leadership), 10)
    row = await status(pool, 1)
    assert row is not None and row[0] == "pending"


async def test_a_restart_within_the_term_runs_again_what_the_crash_left_claimed(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient) -> None:
    started = asyncio.Event()
    calls: list[int] = []

    async def hangs_first_time(msg: Message) -> None:
        calls.append(msg.message_id)
        if len(calls) == 1:
            started.set()
            await asyncio.Event().wait()  # the service crashes while this runs
        await msg.answer("handled")

    leadership = await lead(pool)
    await store(pool, message_update(1, 88, "hi"))
    dispatcher = make_dispatcher(pool, bot, router_with(hangs_first_time))
    crashed = asyncio.ensure_future(dispatcher.run(leadership))
    await asyncio.wait_for(started.wait(), 10)
    crashed.cancel()  # e.g. a claim transaction that raised: the supervisor restarts it
    await asyncio.wait({crashed})

    await run_until(dispatcher.run(leadership), leadership, status_is(pool, 1, "done"),
                    "the stranded update handled by the restarted dispatcher")
    assert [m["text"] for m in await control.chat_messages(88)] == ["handled"]


async def test_a_failure_whose_retry_mark_hits_a_database_error_is_not_dropped(
        database_url: str, bot: Bot, control: SandboxClient, fast_retries: None) -> None:
    calls: list[int] = []
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, timeout=0.2,
                                   open=False) as tiny:
        held: list[psycopg.AsyncConnection] = []

        async def fails_holding_the_only_connection(msg: Message) -> None:
            calls.append(msg.message_id)
            if len(calls) == 1:
                held.append(await tiny.getconn())  # the retry mark will find no connection
                raise RuntimeError("transient")
            await msg.answer("second attempt")

        leadership = await lead(tiny)
        await store(tiny, message_update(1, 89, "hi"))
        task = asyncio.ensure_future(
            make_dispatcher(tiny, bot, router_with(fails_holding_the_only_connection))
            .run(leadership))
        try:
            await eventually(lambda: tiny.get_stats().get("requests_errors", 0) >= 1,
                             what="a database error while recording the failure")
            await tiny.putconn(held.pop())
            await eventually(status_is(tiny, 1, "done"), timeout_s=15, what="update 1 done")
        finally:
            leadership.draining.set()
            await asyncio.wait({task}, timeout=15)
            task.cancel()
    assert [m["text"] for m in await control.chat_messages(89)] == ["second attempt"]


async def test_a_poison_update_that_kills_every_leader_is_dead_lettered_not_rerun_forever(
        pool: AsyncConnectionPool, bot: Bot) -> None:
    calls: list[int] = []
    started = asyncio.Event()

    async def kills_the_process(msg: Message) -> None:
        calls.append(msg.message_id)
        started.set()
        await asyncio.Event().wait()

    await store(pool, message_update(1, 90, "poison"))
    dp = router_with(kills_the_process)
    for term in range(1, dispatcher_module.MAX_ATTEMPTS + 1):
        started.clear()
        leadership = await lead(pool, term=term)
        crashed = asyncio.ensure_future(make_dispatcher(pool, bot, dp).run(leadership))
        await asyncio.wait_for(started.wait(), 10)
        crashed.cancel()  # the leader dies with the update in flight
        await asyncio.wait({crashed})
    leadership = await lead(pool, term=dispatcher_module.MAX_ATTEMPTS + 1)
    await run_until(make_dispatcher(pool, bot, dp).run(leadership), leadership,
                    status_is(pool, 1, "failed"), "the poison update dead-lettered")
    assert len(calls) == dispatcher_module.MAX_ATTEMPTS


async def test_a_stored_update_aiogram_cannot_parse_is_dead_lettered_without_an_apology(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient, fast_retries: None) -> None:
    async def echo(msg: Message) -> None:
        await msg.answer("should not happen")

    await store(pool, {"update_id": 1, "message": {"chat": {"id": 91, "type": "private"}}})
    leadership = await lead(pool)
    await run_until(make_dispatcher(pool, bot, router_with(echo)).run(leadership), leadership,
                    status_is(pool, 1, "failed"), "the unparseable update dead-lettered")
    row = await status(pool, 1)
    assert row is not None and row[1] == 1 and "ValidationError" in row[2]
    assert int((await control.stats())["outbox"]) == 0  # no apology to anyone


async def test_a_deposed_leader_whose_dead_letter_mark_is_fenced_sends_no_apology(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient, fast_retries: None) -> None:
    async def deposed_then_fails(msg: Message) -> None:
        await set_term(pool, 2)  # a newer leader took over while this ran
        raise RuntimeError("last attempt fails")

    await store(pool, message_update(1, 92, "hi"))
    async with pool.connection() as conn:
        await conn.execute(b"UPDATE telegram_updates SET attempts = %s WHERE update_id = 1",
                           (dispatcher_module.MAX_ATTEMPTS - 1,))
    leadership = await lead(pool, term=1)
    task = asyncio.ensure_future(
        make_dispatcher(pool, bot, router_with(deposed_then_fails)).run(leadership))
    await asyncio.wait({task}, timeout=10)
    task.cancel()
    await asyncio.wait({task})
    row = await status(pool, 1)
    assert row is not None and row[0] == "processing"  # the next leader owns it now
    assert int((await control.stats())["outbox"]) == 0  # no apology to anyone


async def test_a_claim_of_our_term_that_no_handler_holds_is_reaped_and_run(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient,
        monkeypatch: pytest.MonkeyPatch, fast_retries: None) -> None:
    monkeypatch.setattr(dispatcher_module, "HANDLER_TIMEOUT_S", 0.05)
    monkeypatch.setattr(dispatcher_module, "REAP_MARGIN_S", 0.0)
    monkeypatch.setattr(dispatcher_module, "REAP_EVERY_S", 0.05)

    async def echo(msg: Message) -> None:
        await msg.answer(f"echo {msg.text}")

    leadership = await lead(pool)
    dispatcher = make_dispatcher(pool, bot, router_with(echo))
    task = asyncio.ensure_future(dispatcher.run(leadership))
    try:
        await store(pool, message_update(1, 93, "warm-up"))
        await eventually(status_is(pool, 1, "done"), what="the dispatcher running")
        # A claim of our own term whose handler is gone (lost between claim and settle);
        # stored and claimed in one transaction, so the dispatcher never sees it pending.
        async with leadership.fenced(pool) as conn:
            lost = parse_update(orjson.dumps(message_update(2, 94, "lost")))
            assert await inbox_store().insert_updates(conn, [lost]) == 1
            assert [j.key for j in await inbox_store().claim(conn, term=1, limit=1)] == [2]
        await eventually(status_is(pool, 2, "done"), what="the lost claim reaped and run")
    finally:
        leadership.draining.set()
        await asyncio.wait_for(task, 15)
    assert [m["text"] for m in await control.chat_messages(94)] == ["echo lost"]
