"""The command list Telegram shows, per language (leader only, once per term).

On promotion the leader asks Telegram for its command list in each scope language (ru, en,
and the default for every other language) and calls setMyCommands only where it differs from
ours, so a deploy or a failover costs three reads and usually no write. Then it waits for the
term to end. A crash (Telegram unreachable) restarts it with the supervisor's backoff.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import BotCommand
from aiogram_i18n.cores import FluentRuntimeCore

from services.telegram.i18n import DEFAULT_LANGUAGE
from services.users import Language
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

COMMANDS = ("start", "menu", "balance", "help")


def commands_in(core: FluentRuntimeCore, language: str) -> list[BotCommand]:
    """Return the command list in one language."""
    return [BotCommand(command=name, description=core.get(f"command-{name}", language))
            for name in COMMANDS]


class CommandsPublisher:
    """Make Telegram's command lists (ru, en, default) ours, writing only what differs."""

    name = "telegram-commands"

    def __init__(self, bot: Bot, core: FluentRuntimeCore) -> None:
        self._bot = bot
        self._core = core

    async def run(self, leadership: Leadership | None) -> None:
        """Publish the command lists, then wait for the term to end."""
        assert leadership is not None, "leader-only service"
        await self.publish()
        await leadership.draining.wait()

    async def publish(self) -> list[str]:
        """Set every command list Telegram has differently; return the languages set."""
        changed = []
        scopes: list[tuple[str, str | None]] = [(str(lang), str(lang)) for lang in Language]
        scopes.append((str(DEFAULT_LANGUAGE), None))  # every other language
        for language, code in scopes:
            wanted = commands_in(self._core, language)
            current = await self._bot.get_my_commands(language_code=code)
            if _pairs(current) == _pairs(wanted):
                continue
            await self._bot.set_my_commands(wanted, language_code=code)
            changed.append(code or "default")
        logger.info("bot_commands_checked", extra={"changed": changed})
        return changed


def _pairs(commands: list[BotCommand]) -> list[tuple[str, str]]:
    # Compared as pairs: objects parsed from an answer carry extra state that == sees.
    return [(c.command, c.description) for c in commands]
