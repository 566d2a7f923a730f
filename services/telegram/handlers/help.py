"""/help and the Help button: what the bot can do."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from services.telegram.ui import HelpCb, leave_prompt, menu_only, show

router = Router(name=__name__)


@router.message(Command("help"))
async def help_command(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    """List the commands and how paying works."""
    await leave_prompt(state)
    await show(message, i18n.get("help-text"), menu_only(i18n))


@router.callback_query(HelpCb.filter())
async def help_button(query: CallbackQuery, i18n: I18nContext) -> None:
    """Show the help in place of the pressed screen."""
    await show(query, i18n.get("help-text"), menu_only(i18n))
