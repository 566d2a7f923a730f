"""The result sender against the Telegram sandbox, with result files served by a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from config import load_settings
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.delivery.files import MB, Media, ResultFile, ResultKind
from services.delivery.sender import MAX_CAPTION_UTF16, Outcome, ResultSender, utf16_len
from services.telegram.bot import create_bot
from tests.helpers import BOT_TOKEN, ResultFiles, make_env, serve_result_files

CHAT = 4242


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
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    """The product's Bot (retry policy included), pointed at the sandbox."""
    env = make_env("postgresql://unused@127.0.0.1/unused", TELEGRAM_API_BASE=sandbox.base_url)
    b = create_bot(load_settings(env), leading=lambda: True)
    try:
        yield b
    finally:
        await b.session.close()


@pytest.fixture
async def files() -> AsyncIterator[ResultFiles]:
    async with serve_result_files() as served:
        yield served


@pytest.fixture
async def sender(bot: Bot) -> AsyncIterator[ResultSender]:
    async with aiohttp.ClientSession() as http:
        yield ResultSender(bot, http)


EXTENSIONS = {ResultKind.IMAGE: "png", ResultKind.VIDEO: "mp4", ResultKind.AUDIO: "mp3",
              ResultKind.OTHER: "zip"}
ROUTE_CASES = [
    (ResultKind.IMAGE, 1_000, "sendPhoto", False),
    (ResultKind.IMAGE, 5 * MB, "sendPhoto", False),
    (ResultKind.IMAGE, 5 * MB + 1, "sendPhoto", True),
    (ResultKind.IMAGE, 10 * MB + 1, "sendDocument", False),
    (ResultKind.IMAGE, 20 * MB + 1, "sendDocument", True),
    (ResultKind.IMAGE, 50 * MB + 1, "sendMessage", None),
    (ResultKind.VIDEO, 20 * MB, "sendVideo", False),
    (ResultKind.VIDEO, 20 * MB + 1, "sendVideo", True),
    (ResultKind.VIDEO, 60 * MB, "sendMessage", None),
    (ResultKind.AUDIO, 1_000, "sendAudio", False),
    (ResultKind.AUDIO, 20 * MB + 1, "sendAudio", True),
    (ResultKind.AUDIO, 50 * MB + 1, "sendMessage", None),
    (ResultKind.OTHER, 1_000, "sendDocument", False),
    (ResultKind.OTHER, 20 * MB + 1, "sendDocument", True),
    (ResultKind.OTHER, 50 * MB + 1, "sendMessage", None),
]


@pytest.mark.parametrize(("kind", "size", "method", "uploaded"), ROUTE_CASES)
async def test_each_kind_takes_the_route_its_size_allows(
        sender: ResultSender, control: SandboxClient, files: ResultFiles,
        kind: ResultKind, size: int, method: str, uploaded: bool | None) -> None:
    url = files.url(f"result.{EXTENSIONS[kind]}", size)
    delivery = await sender.send(CHAT, [ResultFile(kind, url)], caption="Your result")

    assert delivery.outcome is Outcome.SENT
    [entry] = await control.chat_messages(CHAT)
    assert entry["method"] == method
    [item] = delivery.sent
    assert delivery.message_ids == [entry["message_id"]]
    # An image goes as a photo by URL unprobed; over 5 MB Telegram refuses it (having read
    # a little before it hung up), then the probe learns the size for the remaining routes.
    refused_first = kind is ResultKind.IMAGE and size > 5 * MB
    assert (await control.stats())["errors"] == ({"400": 1} if refused_first else {})
    assert files.heads == (0 if kind is ResultKind.IMAGE and not refused_first else 1)
    if uploaded is None:
        assert url in entry["text"] and "Your result" in entry["text"]
        assert item.file_id is None and item.media is None
        if not refused_first:
            assert files.bytes_sent == 0  # a link: nothing was downloaded
        return
    assert entry["caption"] == "Your result"
    assert entry["media"]["uploaded"] is uploaded
    assert entry["media"]["file_size"] == size
    assert item.file_id == entry["media"]["file_id"]
    # By URL the sandbox (Telegram) fetched the file; an upload streamed it through us.
    if refused_first:
        assert files.bytes_sent >= size
    else:
        assert files.bytes_sent == size


async def test_a_size_known_in_advance_is_not_probed(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    url = files.url("clip.mp4", 30 * MB)
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.VIDEO, url, size_bytes=30 * MB)])
    assert delivery.outcome is Outcome.SENT
    assert files.heads == 0
    [entry] = await control.chat_messages(CHAT)
    assert entry["method"] == "sendVideo" and entry["media"]["uploaded"] is True


async def test_a_size_without_content_length_is_counted_by_a_streamed_get(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    url = files.url("big.png", 6 * MB, declare_length=False)
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, url)])
    assert delivery.outcome is Outcome.SENT
    [entry] = await control.chat_messages(CHAT)
    assert entry["method"] == "sendPhoto" and entry["media"]["uploaded"] is True


async def test_a_url_telegram_refuses_falls_back_to_an_upload(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    # The producer said 1 kB; the file is 6 MB: Telegram refuses it by URL (over 5 MB).
    url = files.url("big.png", 6 * MB)
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, url, size_bytes=1_000)])
    assert delivery.outcome is Outcome.SENT
    [entry] = await control.chat_messages(CHAT)
    assert entry["method"] == "sendPhoto" and entry["media"]["uploaded"] is True
    assert (await control.stats())["errors"].get("400") == 1


async def test_an_upload_larger_than_announced_is_cut_off_and_reported_unavailable(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    # Said 7 MB (a photo upload), is 60 MB: the stream stops past 10 MB, nothing is sent.
    url = files.url("huge.png", 60 * MB, declare_length=False)
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, url, size_bytes=7 * MB)])
    assert delivery.outcome is Outcome.UNAVAILABLE and delivery.unavailable == [0]
    assert (await control.stats())["outbox"] == 0


async def test_several_results_go_out_as_one_album_with_the_caption_on_the_first(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    results = [ResultFile(ResultKind.IMAGE, files.url(f"v{n}.png", 2_000)) for n in range(3)]
    delivery = await sender.send(CHAT, results, caption="Three variants")

    log = await control.chat_messages(CHAT)
    assert [entry["method"] for entry in log] == ["sendMediaGroup"] * 3
    assert len({entry["media_group_id"] for entry in log}) == 1
    assert [entry["caption"] for entry in log] == ["Three variants", None, None]
    assert delivery.file_ids(3) == [entry["media"]["file_id"] for entry in log]
    assert delivery.message_ids == [entry["message_id"] for entry in log]


async def test_more_than_ten_results_are_split_into_even_albums(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    results = [ResultFile(ResultKind.IMAGE, files.url(f"v{n}.png", 500)) for n in range(11)]
    delivery = await sender.send(CHAT, results)

    log = await control.chat_messages(CHAT)
    groups: dict[str, int] = {}
    for entry in log:
        groups[entry["media_group_id"]] = groups.get(entry["media_group_id"], 0) + 1
    assert sorted(groups.values()) == [5, 6]
    assert None not in delivery.file_ids(11)


async def test_audio_and_documents_get_albums_of_their_own(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    results = [ResultFile(ResultKind.IMAGE, files.url("a.png", 500)),
               ResultFile(ResultKind.VIDEO, files.url("b.mp4", 500)),
               ResultFile(ResultKind.AUDIO, files.url("c.mp3", 500)),
               ResultFile(ResultKind.AUDIO, files.url("d.mp3", 500)),
               ResultFile(ResultKind.OTHER, files.url("e.zip", 500))]
    delivery = await sender.send(CHAT, results)

    log = await control.chat_messages(CHAT)
    assert [(entry["method"], entry["media"]["type"]) for entry in log] == [
        ("sendMediaGroup", "photo"), ("sendMediaGroup", "video"),
        ("sendMediaGroup", "audio"), ("sendMediaGroup", "audio"),
        ("sendDocument", "document")]
    assert [item.media for item in sorted(delivery.sent, key=lambda i: i.index)] == [
        Media.PHOTO, Media.VIDEO, Media.AUDIO, Media.AUDIO, Media.DOCUMENT]


async def test_a_file_id_re_sends_a_result_after_its_url_expired(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    first = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, files.url("r.png", 700))])
    [file_id] = first.file_ids(1)
    assert file_id is not None

    again = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, file_id=file_id,
                                                media=Media.PHOTO)])
    assert again.outcome is Outcome.SENT and again.file_ids(1) == [file_id]
    log = await control.chat_messages(CHAT)
    assert [entry["media"]["file_id"] for entry in log] == [file_id, file_id]


async def test_a_user_who_blocked_the_bot_ends_the_delivery_at_once(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    await control.inject([{"kind": "message", "chat_id": CHAT, "text": "hi"},
                          {"kind": "block", "chat_id": CHAT}])
    results = [ResultFile(ResultKind.IMAGE, files.url(f"v{n}.png", 500)) for n in range(2)]
    delivery = await sender.send(CHAT, results)

    assert delivery.outcome is Outcome.BLOCKED and delivery.sent == []
    assert "blocked" in (delivery.detail or "")
    stats = await control.stats()
    assert stats["errors"] == {"403": 1}  # one refusal, no retry loop


async def test_a_result_gone_from_its_url_is_reported_unavailable(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    delivery = await sender.send(CHAT, [
        ResultFile(ResultKind.VIDEO, files.missing_url("gone.mp4")),
        ResultFile(ResultKind.IMAGE, files.url("ok.png", 800))])
    assert delivery.outcome is Outcome.SENT and delivery.unavailable == [0]
    assert [entry["method"] for entry in await control.chat_messages(CHAT)] == ["sendPhoto"]

    nothing = await sender.send(CHAT, [ResultFile(ResultKind.AUDIO,
                                                  files.missing_url("gone.mp3"))])
    assert nothing.outcome is Outcome.UNAVAILABLE and nothing.sent == []


async def test_an_image_gone_from_its_url_is_refused_by_telegram_then_found_unavailable(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    # Sent by URL unprobed: Telegram cannot fetch it (400), the probe then finds it gone.
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE,
                                                   files.missing_url("gone.png"))])
    assert delivery.outcome is Outcome.UNAVAILABLE and delivery.unavailable == [0]
    stats = await control.stats()
    assert stats["errors"] == {"400": 1} and stats["outbox"] == 0


async def test_a_long_caption_is_clipped_to_telegrams_limit(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    caption = "🎨" * 700  # 1,400 UTF-16 units
    await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, files.url("r.png", 700))],
                      caption=caption)
    [entry] = await control.chat_messages(CHAT)
    assert utf16_len(entry["caption"]) <= MAX_CAPTION_UTF16
    assert entry["caption"].endswith("…")


def _methods(log: list[dict[str, Any]]) -> list[str]:
    return [entry["method"] for entry in log]


async def test_files_too_big_for_telegram_go_out_as_links_beside_the_media(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    small, huge = files.url("s.png", 900), files.url("h.mp4", 80 * MB)
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, small),
                                        ResultFile(ResultKind.VIDEO, huge)], caption="Done")
    log = await control.chat_messages(CHAT)
    assert _methods(log) == ["sendPhoto", "sendMessage"]
    assert log[0]["caption"] == "Done" and huge in log[1]["text"]
    assert delivery.file_ids(2) == [log[0]["media"]["file_id"], None]


def _keyboard(text: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text,
                                                                       callback_data="x")]])


async def test_one_result_carries_the_buttons_itself(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    delivery = await sender.send(CHAT, [ResultFile(ResultKind.IMAGE, files.url("a.png", 900))],
                                 caption="One", reply_markup=_keyboard("Repeat"),
                                 markup_text="What next?")
    log = await control.chat_messages(CHAT)
    assert _methods(log) == ["sendPhoto"]
    message = await control.message(CHAT, log[0]["message_id"])
    assert message["reply_markup"]["inline_keyboard"][0][0]["text"] == "Repeat"
    assert delivery.message_ids == [log[0]["message_id"]]


async def test_an_album_gets_its_buttons_on_a_follow_up_message_after_it(
        sender: ResultSender, control: SandboxClient, files: ResultFiles) -> None:
    results = [ResultFile(ResultKind.IMAGE, files.url(f"b{n}.png", 900)) for n in range(2)]
    delivery = await sender.send(CHAT, results, caption="Two", reply_markup=_keyboard("Repeat"),
                                 markup_text="What next?")
    log = await control.chat_messages(CHAT)
    assert _methods(log) == ["sendMediaGroup", "sendMediaGroup", "sendMessage"]
    for entry in log[:2]:
        assert "reply_markup" not in await control.message(CHAT, entry["message_id"])
    follow_up = await control.message(CHAT, log[2]["message_id"])
    assert follow_up["text"] == "What next?"
    assert follow_up["reply_markup"]["inline_keyboard"][0][0]["text"] == "Repeat"
    assert delivery.message_ids == [entry["message_id"] for entry in log]
    assert delivery.file_ids(2) == [entry["media"]["file_id"] for entry in log[:2]]
