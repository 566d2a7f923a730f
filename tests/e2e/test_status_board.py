"""Status messages against the Telegram sandbox: posted once, edited under a throttle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from config import load_settings
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.delivery.status import OnShown, StatusBoard
from services.telegram.bot import create_bot
from tests.helpers import BOT_TOKEN, eventually, make_env

CHAT = 77
HOUR_S = 3_600.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sb:
        yield sb


@pytest.fixture
async def control(sandbox: TelegramSandbox) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.base_url) as client:
        yield client


@pytest.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    env = make_env("postgresql://unused@127.0.0.1/unused", TELEGRAM_API_BASE=sandbox.base_url)
    b = create_bot(load_settings(env), leading=lambda: True)
    try:
        yield b
    finally:
        await b.session.close()


async def posted(board: StatusBoard) -> int:
    """Post a "queued" status message; return its id."""
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    return message_id


async def edits(control: SandboxClient) -> list[str]:
    return [e["text"] for e in await control.chat_messages(CHAT)
            if e["method"] == "editMessageText"]


async def test_edits_within_the_interval_wait_and_only_the_latest_is_shown(
        bot: Bot, control: SandboxClient) -> None:
    board = StatusBoard(bot, interval_s=HOUR_S)
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    for percent in (10, 20, 30):
        await board.show(CHAT, message_id, f"generating {percent}%")
    assert await edits(control) == []  # the post itself started the interval
    assert board.pending == 1

    await board.flush()
    assert await edits(control) == ["generating 30%"]
    assert (await control.message(CHAT, message_id))["text"] == "generating 30%"
    await board.close()


async def test_an_edit_goes_out_at_once_when_the_interval_has_passed(
        bot: Bot, control: SandboxClient) -> None:
    clock = Clock()
    board = StatusBoard(bot, interval_s=3.0, clock=clock)
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    clock.now_s += 3.0
    await board.show(CHAT, message_id, "generating…")
    await board.show(CHAT, message_id, "generating 50%")  # within the next interval: waits
    assert await edits(control) == ["generating…"]
    clock.now_s += 3.0
    await board.show(CHAT, message_id, "done", final=True)
    assert await edits(control) == ["generating…", "done"]
    assert board.pending == 0
    await board.close()


async def test_a_waiting_text_is_shown_by_the_timer_when_the_interval_ends(
        bot: Bot, control: SandboxClient) -> None:
    board = StatusBoard(bot, interval_s=0.05)
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    await board.show(CHAT, message_id, "generating…")

    async def shown() -> bool:
        return await edits(control) == ["generating…"]

    await eventually(shown, what="the throttled edit")
    await board.close()


async def test_the_same_text_twice_is_not_edited_again(bot: Bot, control: SandboxClient) -> None:
    clock = Clock()
    board = StatusBoard(bot, interval_s=3.0, clock=clock)
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    clock.now_s += 10
    await board.show(CHAT, message_id, "queued")
    assert await edits(control) == []
    assert (await control.stats())["errors"] == {}
    await board.close()


async def test_a_user_who_blocked_the_bot_gets_no_status_and_no_error(
        bot: Bot, control: SandboxClient) -> None:
    board = StatusBoard(bot, interval_s=HOUR_S)
    message_id = await board.post(CHAT, "queued")
    assert message_id is not None
    await control.inject([{"kind": "block", "chat_id": CHAT}])
    await board.show(CHAT, message_id, "generating…")
    await board.flush()
    assert board.pending == 0
    assert await board.post(CHAT, "queued") is None
    await board.close()


async def test_an_edit_made_elsewhere_starts_the_interval_and_queue_never_waits(
        bot: Bot, control: SandboxClient) -> None:
    clock = Clock()
    board = StatusBoard(bot, interval_s=3.0, clock=clock)
    sent = await bot.send_message(CHAT, "card")
    await bot.edit_message_text("queued", chat_id=CHAT, message_id=sent.message_id)
    board.note(CHAT, sent.message_id, "queued")
    board.queue(CHAT, sent.message_id, "generating…")  # within the interval: waits
    assert await edits(control) == ["queued"] and board.pending == 1
    clock.now_s += 3.0
    board.queue(CHAT, sent.message_id, "generating… 0:05")  # due now: its own task edits

    async def shown() -> bool:
        return await edits(control) == ["queued", "generating… 0:05"]

    await eventually(shown, what="the queued edit")
    await board.close()


async def test_after_a_final_text_nothing_goes_back_and_each_shown_text_is_reported(
        bot: Bot, control: SandboxClient) -> None:
    board = StatusBoard(bot, interval_s=0.0)
    message_id = await posted(board)
    reports: list[tuple[str, bool]] = []

    def report(text: str) -> OnShown:
        async def on_shown(showing: bool) -> None:
            reports.append((text, showing))
        return on_shown

    await board.show(CHAT, message_id, "generating…", on_shown=report("generating…"))
    await board.show(CHAT, message_id, "done", final=True, on_shown=report("done"))
    await board.show(CHAT, message_id, "generating… 0:35", on_shown=report("late"))
    await board.close()  # waits for the reports
    assert await edits(control) == ["generating…", "done"]
    assert reports == [("generating…", True), ("done", True)]


async def test_a_deleted_message_is_reported_gone_and_forgotten(
        bot: Bot, control: SandboxClient) -> None:
    board = StatusBoard(bot, interval_s=0.0)
    message_id = await posted(board)
    await bot.delete_message(CHAT, message_id)
    reports: list[bool] = []

    async def on_shown(showing: bool) -> None:
        reports.append(showing)

    await board.show(CHAT, message_id, "generating…", on_shown=on_shown)
    await board.close()
    assert reports == [False] and board.pending == 0
