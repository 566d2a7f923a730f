"""The Support button: the operators' contact (SUPPORT_TELEGRAM) and words (SUPPORT_TEXT)."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.telegram.ui import SupportCb, add_menu_button, show

router = Router(name=__name__)


@dataclass(frozen=True, slots=True)
class Support:
    """Where users get help: a Telegram username (without @) and a text, both optional."""

    username: str | None = None
    text: str | None = None


@router.callback_query(SupportCb.filter())
async def support(query: CallbackQuery, i18n: I18nContext, support: Support) -> None:
    """Show how to reach support."""
    parts = [support.text] if support.text else []
    kb = InlineKeyboardBuilder()
    if support.username:
        parts.append(i18n.get("support-contact", contact="@" + support.username))
        kb.row(InlineKeyboardButton(text=i18n.get("support-open"),
                                    url=f"https://t.me/{support.username}"))
    if not parts:
        parts.append(i18n.get("support-none"))
    await show(query, "\n\n".join(parts), add_menu_button(kb, i18n).as_markup())
