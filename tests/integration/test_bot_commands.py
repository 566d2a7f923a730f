"""The leader's command lists: set per language only where Telegram's differ from ours."""

from __future__ import annotations

from aiogram import Bot

from sandbox.telegram import SandboxClient
from services.telegram import texts
from services.telegram.commands import CommandsPublisher


async def test_command_lists_are_set_once_per_language_and_left_alone_when_equal(
        bot: Bot, control: SandboxClient) -> None:
    publisher = CommandsPublisher(bot, texts.core())
    assert await publisher.publish() == ["ru", "en", "default"]
    assert await publisher.publish() == []
    russian = await bot.get_my_commands(language_code="ru")
    assert [c.command for c in russian] == ["start", "menu", "balance", "help"]
    assert russian[1].description == "Главное меню"
    assert (await bot.get_my_commands())[1].description == "The main menu"
    calls = (await control.stats())["calls"]
    assert calls["setMyCommands"] == 3 and calls["getMyCommands"] == 3 + 3 + 2
