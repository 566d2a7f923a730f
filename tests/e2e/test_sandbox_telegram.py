"""End-to-end tests of the Telegram Bot API sandbox, driven by aiogram 3 and raw aiohttp."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
)
from aiohttp import web

from sandbox.telegram import SandboxClient, SandboxConfig, SandboxTimeout, TelegramSandbox
from sandbox.telegram.media import make_png

TOKEN: Final[str] = "123456789:AAH-sandbox-test-token_abcdefghijklmno"
OTHER_TOKEN: Final[str] = "987654321:AAH-other-test-token_zyxwvutsrqponml"
BOT_USERNAME: Final[str] = "kie_test_bot"
USER_ID: Final[int] = 1001
SECOND_USER_ID: Final[int] = 1002
SECRET: Final[str] = "s3cr3t-Token_ok"
CONDITION_TIMEOUT_S: Final[float] = 5.0
CONDITION_POLL_S: Final[float] = 0.005
REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
PNG_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"


class FastCloseSession(AiohttpSession):
    """Close the aiohttp session without aiogram's fixed 250 ms SSL grace sleep."""

    async def close(self) -> None:
        """Close the underlying client session immediately (plain HTTP, nothing to drain)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = CONDITION_TIMEOUT_S) -> None:
    """Wait for an in-process condition (yielding to the loop between checks)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(CONDITION_POLL_S)


def fast_config() -> SandboxConfig:
    """Return settings with quick webhook retries and generous rate limits."""
    return SandboxConfig(
        webhook_retry_initial_s=0.05,
        webhook_retry_max_s=0.2,
        webhook_timeout_s=2.0,
        per_chat_rate_per_s=1_000.0,
        per_chat_burst=1_000.0,
        global_rate_per_s=10_000.0,
        global_burst=10_000.0,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    """Run a sandbox on a free loopback port."""
    server = TelegramSandbox([TOKEN, OTHER_TOKEN], username=BOT_USERNAME, config=fast_config())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def control(sandbox: TelegramSandbox) -> AsyncIterator[SandboxClient]:
    """Return a control API client."""
    async with SandboxClient(sandbox.base_url) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """Return a raw aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


def make_bot(base_url: str, token: str = TOKEN) -> Bot:
    """Build an aiogram Bot talking to the sandbox."""
    return Bot(token, session=FastCloseSession(api=TelegramAPIServer.from_base(base_url)))


@pytest.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    """Return an aiogram Bot bound to the sandbox."""
    client = make_bot(sandbox.base_url)
    try:
        yield client
    finally:
        await client.session.close()


class WebhookReceiver:
    """A tiny webhook endpoint recording deliveries and per-chat concurrency."""

    def __init__(self) -> None:
        """Start with no recorded deliveries."""
        self.updates: list[dict[str, Any]] = []
        self.secrets: list[str | None] = []
        self.fail_next = 0
        self.work_s = 0.0
        self.reply: dict[str, Any] | None = None
        self.in_flight_by_chat: Counter[int] = Counter()
        self.max_in_flight_per_chat = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Record one delivery, optionally failing it or simulating work."""
        update = await request.json()
        self.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if self.fail_next > 0:
            self.fail_next -= 1
            self.updates.append({**update, "_failed": True})
            return web.Response(status=500, text="boom")
        chat_id = chat_of(update)
        self.in_flight_by_chat[chat_id] += 1
        self.in_flight += 1
        self.max_in_flight_per_chat = max(
            self.max_in_flight_per_chat, self.in_flight_by_chat[chat_id]
        )
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.work_s:
                await asyncio.sleep(self.work_s)
            self.updates.append(update)
        finally:
            self.in_flight_by_chat[chat_id] -= 1
            self.in_flight -= 1
        if self.reply is not None:
            return web.json_response(self.reply)
        return web.json_response({})

    async def start(self) -> str:
        """Listen on a free loopback port and return the webhook URL."""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def delivered(self) -> list[dict[str, Any]]:
        """Return successfully handled updates in arrival order."""
        return [u for u in self.updates if not u.get("_failed")]


def chat_of(update: dict[str, Any]) -> int:
    """Return the chat id an update belongs to."""
    if "message" in update:
        return int(update["message"]["chat"]["id"])
    return int(update["callback_query"]["message"]["chat"]["id"])


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """Run a webhook receiver."""
    hook = WebhookReceiver()
    try:
        yield hook
    finally:
        await hook.stop()


async def raw_call(
    http: aiohttp.ClientSession, base_url: str, method: str, token: str = TOKEN, **params: Any
) -> tuple[int, dict[str, Any]]:
    """Call a Bot API method with a JSON body and return (status, decoded body)."""
    async with http.post(f"{base_url}/bot{token}/{method}", json=params) as resp:
        return resp.status, orjson.loads(await resp.read())


# ---------------------------------------------------------------- identity & errors


async def test_get_me_returns_the_bot_identity_derived_from_the_token(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot is True
    assert me.username == BOT_USERNAME


async def test_a_wrong_token_is_rejected_with_401_unauthorized(sandbox: TelegramSandbox) -> None:
    wrong = make_bot(sandbox.base_url, token="42:not-a-known-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await wrong.get_me()
    finally:
        await wrong.session.close()


async def test_unknown_methods_get_404_and_method_names_are_case_insensitive(
    sandbox: TelegramSandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await raw_call(http, sandbox.base_url, "noSuchMethod")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    async with http.get(f"{sandbox.base_url}/bot{TOKEN}/GETME") as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["username"] == BOT_USERNAME


async def test_empty_text_is_rejected_with_400_like_telegram(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject_message(USER_ID, "hi")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await bot.send_message(USER_ID, "")


async def test_sending_to_an_unknown_chat_fails_with_chat_not_found(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(555, "hello")


async def test_formatting_errors_match_telegram_descriptions(
    sandbox: TelegramSandbox, control: SandboxClient, http: aiohttp.ClientSession
) -> None:
    await control.inject_message(USER_ID, "hi")
    url = sandbox.base_url
    status, body = await raw_call(
        http, url, "sendMessage", chat_id=USER_ID, text="1.5", parse_mode="MarkdownV2"
    )
    assert status == 400
    assert "Character '.' is reserved" in body["description"]
    status, body = await raw_call(
        http, url, "sendMessage", chat_id=USER_ID, text="a < b", parse_mode="HTML"
    )
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities")
    status, body = await raw_call(
        http, url, "sendMessage", chat_id=USER_ID, text="<b>bold</b> &amp; ok", parse_mode="HTML"
    )
    assert status == 200
    assert body["result"]["text"] == "bold & ok"
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]


# ---------------------------------------------------------------- polling


async def test_injected_updates_are_returned_by_get_updates_until_confirmed_by_offset(
    bot: Bot, control: SandboxClient
) -> None:
    ids = await control.inject(
        [
            {"kind": "message", "chat_id": USER_ID, "text": "/start ref42", "language_code": "ru"},
            {"kind": "message", "chat_id": SECOND_USER_ID, "text": "hello"},
            {"kind": "message", "chat_id": USER_ID, "text": "again"},
        ]
    )
    assert ids == sorted(i for i in ids if i is not None) and len(set(ids)) == 3
    first = await bot.get_updates(limit=2)
    assert [u.update_id for u in first] == ids[:2]
    start = first[0].message
    assert start is not None and start.text == "/start ref42"
    assert start.entities is not None and start.entities[0].type == "bot_command"
    assert start.from_user is not None and start.from_user.language_code == "ru"
    assert start.chat.id == start.from_user.id == USER_ID
    again = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.update_id for u in again] == ids[2:]
    assert await bot.get_updates(offset=again[-1].update_id + 1) == []
    stats = await control.stats()
    assert stats["confirmed"] == 3
    assert stats["pending"] == 0


async def test_a_pending_long_poll_wakes_up_when_an_update_is_injected(
    bot: Bot, sandbox: TelegramSandbox, control: SandboxClient
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await wait_until(lambda: sandbox.bot().poll is not None)
    await control.inject_message(USER_ID, "wake up")
    updates = await asyncio.wait_for(poll, CONDITION_TIMEOUT_S)
    assert [u.message.text for u in updates if u.message] == ["wake up"]
    assert time.monotonic() - started < CONDITION_TIMEOUT_S


async def test_a_newer_get_updates_terminates_the_pending_one_with_409(
    bot: Bot, sandbox: TelegramSandbox, control: SandboxClient
) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=20))
    await wait_until(lambda: sandbox.bot().poll is not None)
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, CONDITION_TIMEOUT_S)
    assert (await control.stats())["status_409"] == 1


async def test_get_updates_fails_with_409_while_a_webhook_is_set(
    bot: Bot, receiver: WebhookReceiver
) -> None:
    await bot.set_webhook(await receiver.start())
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates() == []


async def test_allowed_updates_given_to_get_updates_filter_later_injections(
    bot: Bot, control: SandboxClient
) -> None:
    await bot.get_updates(allowed_updates=["callback_query"])
    await control.inject_message(USER_ID, "ignored")
    ids = await control.inject(
        [
            {"kind": "message", "chat_id": USER_ID, "text": "also ignored"},
            {"kind": "callback", "chat_id": USER_ID, "data": "buy:1"},
        ]
    )
    assert ids[0] is None and ids[1] is not None
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [ids[1]]
    assert (await control.stats())["filtered"] == 2


# ---------------------------------------------------------------- webhooks


async def test_webhook_pushes_updates_with_the_secret_header_in_per_chat_order(
    bot: Bot, control: SandboxClient, receiver: WebhookReceiver
) -> None:
    receiver.work_s = 0.01
    await bot.set_webhook(await receiver.start(), secret_token=SECRET, max_connections=10)
    items = [
        {"kind": "message", "chat_id": chat_id, "text": f"m{index}"}
        for index in range(6)
        for chat_id in (USER_ID, SECOND_USER_ID, 1003)
    ]
    ids = await control.inject(items)
    await control.wait(webhook_ok_at_least=len(ids), confirmed_at_least=len(ids))
    delivered = receiver.delivered()
    assert sorted(u["update_id"] for u in delivered) == ids
    assert set(receiver.secrets) == {SECRET}
    for chat_id in (USER_ID, SECOND_USER_ID, 1003):
        chat_ids = [u["update_id"] for u in delivered if chat_of(u) == chat_id]
        assert chat_ids == sorted(chat_ids)
        texts = [u["message"]["text"] for u in delivered if chat_of(u) == chat_id]
        assert texts == [f"m{index}" for index in range(6)]
    assert receiver.max_in_flight_per_chat == 1
    assert receiver.max_in_flight > 1
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.max_connections == 10


async def test_a_failed_webhook_delivery_is_retried_and_the_error_is_reported(
    bot: Bot, control: SandboxClient, receiver: WebhookReceiver
) -> None:
    receiver.fail_next = 1
    await bot.set_webhook(await receiver.start())
    [update_id] = await control.inject([{"kind": "message", "chat_id": USER_ID, "text": "retry"}])
    stats = await control.wait(webhook_ok_at_least=1)
    assert stats["webhook_failed"] == 1
    assert [u["update_id"] for u in receiver.updates] == [update_id, update_id]
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None
    assert info.pending_update_count == 0


async def test_webhook_allowed_updates_drop_unwanted_update_types(
    bot: Bot, control: SandboxClient, receiver: WebhookReceiver
) -> None:
    await bot.set_webhook(await receiver.start(), allowed_updates=["message"])
    await control.inject_message(USER_ID, "first")
    ids = await control.inject(
        [
            {"kind": "callback", "chat_id": USER_ID, "data": "nope"},
            {"kind": "message", "chat_id": USER_ID, "text": "second"},
        ]
    )
    assert ids[0] is None
    await control.wait(webhook_ok_at_least=2)
    assert [u["message"]["text"] for u in receiver.delivered()] == ["first", "second"]
    assert (await bot.get_webhook_info()).allowed_updates == ["message"]


async def test_a_method_returned_in_the_webhook_response_is_executed(
    bot: Bot, control: SandboxClient, receiver: WebhookReceiver
) -> None:
    receiver.reply = {"method": "sendMessage", "chat_id": USER_ID, "text": "pong"}
    await bot.set_webhook(await receiver.start())
    await control.inject_message(USER_ID, "ping")
    log = await control.wait_chat(USER_ID, 1)
    assert [(e["method"], e["text"]) for e in log] == [("sendMessage", "pong")]


async def test_non_loopback_webhook_urls_are_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="loopback"):
        await bot.set_webhook("https://example.com/hook")


# ---------------------------------------------------------------- bot output


@pytest.mark.parametrize("method, kind", [("send_video", "video"), ("send_audio", "audio"),
                                          ("send_document", "document"),
                                          ("send_animation", "animation")])
async def test_each_media_method_sends_its_kind_by_url(
    bot: Bot, control: SandboxClient, method: str, kind: str
) -> None:
    await control.inject_message(USER_ID, "/start")
    sent = await getattr(bot, method)(USER_ID, f"https://cdn.example.test/result.{kind}")
    assert getattr(sent, kind) is not None
    log = (await control.chat(USER_ID))["messages"]
    assert log[-1]["method"] == "send" + kind.capitalize()


async def test_sent_edited_answered_and_photo_messages_show_up_in_the_chat_log(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject_message(USER_ID, "/start")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Buy", callback_data="buy:7")]]
    )
    sent = await bot.send_message(USER_ID, "Pick a plan", reply_markup=keyboard)
    assert sent.from_user is not None and sent.from_user.is_bot
    await control.inject_callback(USER_ID, "buy:7", message_id=sent.message_id)
    [_, press] = await bot.get_updates()
    query = press.callback_query
    assert query is not None and query.data == "buy:7"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="Processing")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    edited = await bot.edit_message_text(
        "Plan 7 selected", chat_id=USER_ID, message_id=sent.message_id
    )
    assert not isinstance(edited, bool) and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Plan 7 selected", chat_id=USER_ID, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER_ID, message_id=9_999)
    by_url = await bot.send_photo(USER_ID, "https://cdn.example.test/result.png", caption="Done")
    assert by_url.photo and by_url.caption == "Done"
    upload = BufferedInputFile(make_png(4, 3, (1, 2, 3)), filename="gen.png")
    uploaded = await bot.send_photo(USER_ID, upload)
    assert uploaded.photo and (uploaded.photo[-1].width, uploaded.photo[-1].height) == (4, 3)
    again = await bot.send_photo(USER_ID, uploaded.photo[-1].file_id)
    assert again.photo and again.photo[-1].file_id == uploaded.photo[-1].file_id
    await bot.send_chat_action(USER_ID, "typing")

    chat = await control.chat(USER_ID)
    log = chat["messages"]
    assert [e["method"] for e in log] == [
        "sendMessage",
        "answerCallbackQuery",
        "editMessageText",
        "sendPhoto",
        "sendPhoto",
        "sendPhoto",
    ]
    assert log[0]["text"] == "Pick a plan"
    assert log[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "buy:7"
    assert log[1]["text"] == "Processing" and log[1]["callback_data"] == "buy:7"
    assert log[2]["message_id"] == sent.message_id and log[2]["text"] == "Plan 7 selected"
    assert log[3]["media"]["url"] == "https://cdn.example.test/result.png"
    assert log[3]["caption"] == "Done"
    assert log[4]["media"]["uploaded"] is True and log[4]["media"]["file_name"] == "gen.png"
    assert chat["last_chat_action"] == "typing"
    outbox = await control.outbox(after_seq=log[1]["seq"], limit=2)
    assert [e["seq"] for e in outbox] == [log[2]["seq"], log[3]["seq"]]
    current = await control.message(USER_ID, sent.message_id)
    assert current["text"] == "Plan 7 selected" and "reply_markup" not in current


async def test_an_injected_photo_can_be_fetched_with_get_file_and_downloaded(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject_photo(USER_ID, caption="make it anime")
    [update] = await bot.get_updates()
    message = update.message
    assert message is not None and message.photo and message.caption == "make it anime"
    largest = message.photo[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None and file.file_size == largest.file_size
    buffer = await bot.download_file(file.file_path)
    assert isinstance(buffer, io.BytesIO)
    data = buffer.getvalue()
    assert data.startswith(PNG_SIGNATURE) and len(data) == largest.file_size


async def test_documents_audio_and_video_can_be_injected_and_downloaded(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject(
        [
            {"kind": "document", "chat_id": USER_ID, "content": "hello", "file_name": "a.txt"},
            {"kind": "audio", "chat_id": USER_ID, "duration": 2},
            {"kind": "video", "chat_id": USER_ID, "caption": "clip"},
        ]
    )
    document, audio, video = [u.message for u in await bot.get_updates()]
    assert document is not None and document.document is not None
    assert document.document.file_name == "a.txt"
    file = await bot.get_file(document.document.file_id)
    assert file.file_path is not None
    buffer = await bot.download_file(file.file_path)
    assert isinstance(buffer, io.BytesIO) and buffer.getvalue() == b"hello"
    assert audio is not None and audio.audio is not None and audio.audio.duration == 2
    assert video is not None and video.video is not None and video.caption == "clip"


async def test_albums_media_edits_copies_and_forwards_are_recorded(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject_message(USER_ID, "hi")
    await control.inject_message(SECOND_USER_ID, "admin here")
    png = make_png(8, 8, (9, 9, 9))
    album = await bot.send_media_group(
        USER_ID,
        [
            InputMediaPhoto(media=BufferedInputFile(png, filename="v1.png"), caption="variant 1"),
            InputMediaPhoto(media="https://cdn.example.test/v2.png"),
        ],
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    edited = await bot.edit_message_media(
        InputMediaPhoto(media="https://cdn.example.test/v3.png", caption="final"),
        chat_id=USER_ID,
        message_id=album[1].message_id,
    )
    assert not isinstance(edited, bool) and edited.caption == "final"
    copied = await bot.copy_message(SECOND_USER_ID, USER_ID, album[0].message_id, caption="receipt")
    forwarded = await bot.forward_message(SECOND_USER_ID, USER_ID, 1)
    assert forwarded.forward_origin is not None and forwarded.text == "hi"
    chat = await bot.get_chat(USER_ID)
    assert chat.id == USER_ID and chat.type == "private"

    user_log = await control.chat_messages(USER_ID)
    assert [e["method"] for e in user_log] == [
        "sendMediaGroup",
        "sendMediaGroup",
        "editMessageMedia",
    ]
    assert user_log[2]["media"]["url"] == "https://cdn.example.test/v3.png"
    admin_log = await control.chat_messages(SECOND_USER_ID)
    assert [(e["method"], e["message_id"]) for e in admin_log] == [
        ("copyMessage", copied.message_id),
        ("forwardMessage", forwarded.message_id),
    ]
    assert admin_log[0]["caption"] == "receipt" and admin_log[0]["media"]["uploaded"] is True


async def test_sending_faster_than_the_per_chat_rate_gets_429_with_retry_after(
    bot: Bot, control: SandboxClient
) -> None:
    await control.configure(per_chat_rate_per_s=1.0, per_chat_burst=1.0)
    await control.inject_message(USER_ID, "hi")
    await bot.send_message(USER_ID, "first")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER_ID, "second")
    assert caught.value.retry_after >= 1
    assert "Too Many Requests: retry after" in caught.value.message
    stats = await control.stats()
    assert stats["status_429"] == 1
    assert stats["outbox"] == 1


async def test_the_global_rate_limit_applies_across_chats(bot: Bot, control: SandboxClient) -> None:
    await control.configure(global_rate_per_s=1.0, global_burst=2.0)
    await control.inject(
        [{"kind": "message", "chat_id": chat_id, "text": "hi"} for chat_id in (1, 2, 3)]
    )
    await bot.send_message(1, "a")
    await bot.send_message(2, "b")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(3, "c")


async def test_a_blocked_user_makes_sends_fail_with_403(bot: Bot, control: SandboxClient) -> None:
    await control.inject([{"kind": "message", "chat_id": USER_ID, "text": "hi"}])
    await control.inject([{"kind": "block", "chat_id": USER_ID}])
    updates = await bot.get_updates()
    member = updates[-1].my_chat_member
    assert member is not None and member.new_chat_member.status == "kicked"
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER_ID, "are you there?")


# ---------------------------------------------------------------- transport & control


async def test_json_form_and_query_string_calls_are_all_accepted(
    sandbox: TelegramSandbox, control: SandboxClient, http: aiohttp.ClientSession
) -> None:
    await control.inject_message(USER_ID, "hi")
    base = f"{sandbox.base_url}/bot{TOKEN}"
    markup = orjson.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}).decode()
    async with http.post(f"{base}/sendMessage", json={"chat_id": USER_ID, "text": "json"}) as r1:
        assert r1.status == 200
    form = {"chat_id": str(USER_ID), "text": "form", "reply_markup": markup}
    async with http.post(f"{base}/sendmessage", data=form) as r2:
        assert (await r2.json())["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "A"
    async with http.get(f"{base}/sendMessage", params={"chat_id": USER_ID, "text": "get"}) as r3:
        assert r3.status == 200
    multipart = aiohttp.FormData(default_to_multipart=True)
    multipart.add_field("chat_id", str(USER_ID))
    multipart.add_field("text", "multipart")
    async with http.post(f"{base}/sendMessage", data=multipart) as r4:
        assert r4.status == 200
    texts = [e["text"] for e in await control.chat_messages(USER_ID)]
    assert texts == ["json", "form", "get", "multipart"]


async def test_injected_faults_fail_the_next_calls_then_recover(
    bot: Bot, control: SandboxClient
) -> None:
    await control.inject_message(USER_ID, "hi")
    await control.fault("sendMessage", fail_next=1, status=500)
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER_ID, "first try")
    await bot.send_message(USER_ID, "second try")
    assert await control.faults() == []
    assert [e["text"] for e in await control.chat_messages(USER_ID)] == ["second try"]


async def test_wait_returns_408_when_the_condition_does_not_hold_in_time(
    control: SandboxClient,
) -> None:
    with pytest.raises(SandboxTimeout):
        await control.wait(timeout_s=0.05, outbox_at_least=1)
    counters = await control.wait(timeout_s=0.05, outbox_at_most=0)
    assert counters["outbox"] == 0


async def test_each_token_has_its_own_bot_state(
    sandbox: TelegramSandbox, control: SandboxClient
) -> None:
    other = make_bot(sandbox.base_url, token=OTHER_TOKEN)
    try:
        async with SandboxClient(sandbox.base_url, bot_id=987654321) as other_control:
            await other_control.inject_message(USER_ID, "for the other bot")
        assert [u.update_id for u in await other.get_updates()] == [1]
        assert (await other.get_me()).username == "sandbox_987654321_bot"
        assert (await control.stats())["injected"] == 0
    finally:
        await other.session.close()


async def test_reset_clears_state_but_keeps_update_ids_increasing(
    bot: Bot, control: SandboxClient
) -> None:
    [first] = await control.inject([{"kind": "message", "chat_id": USER_ID, "text": "a"}])
    await bot.send_message(USER_ID, "reply")
    await control.reset()
    stats = await control.stats()
    assert (stats["injected"], stats["pending"], stats["chats"]) == (0, 0, 0)
    [second] = await control.inject([{"kind": "message", "chat_id": USER_ID, "text": "b"}])
    assert second is not None and first is not None and second > first
    assert [u.update_id for u in await bot.get_updates()] == [second]


async def test_the_standalone_server_prints_its_url_and_never_logs_the_token() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.telegram",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--log-level",
        "DEBUG",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), CONDITION_TIMEOUT_S)
        started = orjson.loads(line)
        assert started["event"] == "started"
        async with aiohttp.ClientSession() as http:
            status, body = await raw_call(http, started["base_url"], "getMe")
            assert status == 200 and body["result"]["id"] == 123456789
            await raw_call(http, started["base_url"], "getMe", token="1:wrong")
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), CONDITION_TIMEOUT_S)
    assert process.returncode == 0
    secret_part = TOKEN.split(":", 1)[1]
    assert secret_part not in stderr.decode()
    lines = [orjson.loads(raw) for raw in stderr.decode().splitlines() if raw.strip()]
    assert any(entry["event"] == "sandbox started" for entry in lines)
