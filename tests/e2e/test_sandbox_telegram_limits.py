"""The Telegram sandbox enforces Telegram's file size limits, by URL and by upload."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile

from config import load_settings
from sandbox.telegram import SandboxConfig, TelegramSandbox
from sandbox.telegram.media import MB
from services.telegram.bot import create_bot
from tests.helpers import BOT_TOKEN, ResultFiles, make_env, serve_result_files

CHAT = 5150


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sb:
        env = make_env("postgresql://unused@127.0.0.1/unused", TELEGRAM_API_BASE=sb.base_url)
        b = create_bot(load_settings(env), leading=lambda: True)
        try:
            yield b
        finally:
            await b.session.close()


@pytest.fixture
async def files() -> AsyncIterator[ResultFiles]:
    async with serve_result_files() as served:
        yield served


async def test_a_photo_by_url_up_to_5_mb_is_fetched_and_its_size_known(
        bot: Bot, files: ResultFiles) -> None:
    sent = await bot.send_photo(CHAT, files.url("p.png", 5 * MB))
    assert sent.photo and sent.photo[-1].file_size == 5 * MB
    assert files.bytes_sent == 5 * MB


@pytest.mark.parametrize(("method", "name", "size"), [
    ("send_photo", "p.png", 5 * MB + 1),
    ("send_video", "v.mp4", 20 * MB + 1),
    ("send_audio", "a.mp3", 20 * MB + 1),
    ("send_document", "d.zip", 20 * MB + 1)])
async def test_a_file_by_url_over_telegrams_limit_is_refused(
        bot: Bot, files: ResultFiles, method: str, name: str, size: int) -> None:
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await getattr(bot, method)(CHAT, files.url(name, size))


async def test_a_url_that_fails_or_is_no_picture_is_refused_like_telegram(
        bot: Bot, files: ResultFiles) -> None:
    with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
        await bot.send_video(CHAT, files.missing_url("v.mp4"))
    with pytest.raises(TelegramBadRequest, match="wrong type of the web page content"):
        await bot.send_photo(CHAT, files.url("not-a-picture.zip", 100))


async def test_a_photo_upload_over_10_mb_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="PHOTO_SAVE_FILE_INVALID"):
        await bot.send_photo(CHAT, BufferedInputFile(bytes(10 * MB + 1), filename="p.png"))
    sent = await bot.send_document(CHAT, BufferedInputFile(bytes(10 * MB + 1), filename="p.png"))
    assert sent.document is not None and sent.document.file_size == 10 * MB + 1


async def test_an_upload_over_50_mb_is_too_large_for_telegram(bot: Bot) -> None:
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_video(CHAT, BufferedInputFile(bytes(50 * MB + 1), filename="v.mp4"))
