"""What every screen shares: the cross-feature buttons and how a screen reaches the chat.

Conventions (every feature follows them):
- A feature's buttons are `CallbackData` factories declared in its handler module, with a
  short unique prefix; a test packs each one's largest value and checks the 64-byte limit.
  The factories here are the ones several features press or handle.
- A screen is a text and an inline keyboard built with `InlineKeyboardBuilder`; every screen
  but the menu ends with the Menu button (`add_menu_button`), so no screen is a dead end.
- `show()` edits the pressed message in place for a callback and sends a new one for a
  message; an edit to identical content (a double tap) is not an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

logger = logging.getLogger(__name__)

# Telegram's answer when an edit would change nothing (a double tap on the same button).
NOT_MODIFIED = "message is not modified"
# Two presses of one button on one message this close together are one (a double tap).
DOUBLE_TAP_S = 5.0
LAST_PRESS_KEY = "last_press"


class MenuCb(CallbackData, prefix="home"):
    """Open the main menu."""


class GenerateCb(CallbackData, prefix="gen"):
    """Start a generation with the model at this catalog index (handled by the form engine)."""

    model: int


class TopUpCb(CallbackData, prefix="topup"):
    """Open the top-up screen (handled by payments)."""


class ResultAct(StrEnum):
    """What a button under a delivered result (or a failure notice) does."""

    REPEAT = "r"  # a new confirm card with the job's model and parameters
    CHANGE = "c"  # the job's form again, prefilled: its first question, then the card
    OTHER = "o"   # the catalog at the job's category
    MENU = "m"    # the main menu


class ResultCb(CallbackData, prefix="res"):
    """A button under job `job`'s result (built by the delivery worker, handled by
    handlers/results.py; the job must be the pressing user's)."""

    act: ResultAct
    job: int


# The screens the menu opens (each handled by its feature's router).

class CategoryCb(CallbackData, prefix="cat"):
    """Open one page of a category's models (`category` "free": the free models)."""

    category: str
    page: int = 0


class ModelCb(CallbackData, prefix="mdl"):
    """Open the card of the model at this catalog index; `back` is where its Back leads."""

    model: int
    back: str = ""  # "" the category list, "f" the free list, "s" the search results
    page: int = 0


class FindCb(CallbackData, prefix="find"):
    """Ask for a model name to search for."""


class FoundCb(CallbackData, prefix="found"):
    """Open one page of the latest search's results."""

    page: int


class HistoryCb(CallbackData, prefix="hist"):
    """Open one page of the user's generations."""

    page: int = 0


class BalanceCb(CallbackData, prefix="bal"):
    """Open the balance and the latest operations."""


class HelpCb(CallbackData, prefix="help"):
    """Open the help."""


class LanguageCb(CallbackData, prefix="lang"):
    """Open the language choice (`language` set: choose it)."""

    language: str = ""


class SupportCb(CallbackData, prefix="sup"):
    """Open the support contacts."""


def add_menu_button(builder: InlineKeyboardBuilder, i18n: I18nContext) -> InlineKeyboardBuilder:
    """Append the Menu button on a row of its own."""
    builder.row(button(i18n.get("ui-menu"), MenuCb()))
    return builder


def menu_only(i18n: I18nContext) -> InlineKeyboardMarkup:
    """Return a keyboard with just the Menu button."""
    return add_menu_button(InlineKeyboardBuilder(), i18n).as_markup()


def add_pager(builder: InlineKeyboardBuilder, i18n: I18nContext, *, page: int, pages: int,
              to: Callable[[int], CallbackData]) -> None:
    """Append a row ‹ 2/5 › when there is more than one page (`to(page)` makes a button)."""
    if pages <= 1:
        return
    row = []
    if page > 0:
        row.append(button(i18n.get("ui-prev"), to(page - 1)))
    row.append(button(i18n.get("ui-page", page=page + 1, pages=pages), to(page)))
    if page < pages - 1:
        row.append(button(i18n.get("ui-next"), to(page + 1)))
    builder.row(*row)


def pages_of(total: int, per_page: int) -> int:
    """Return how many pages `total` items fill (at least one)."""
    return max(1, -(-total // per_page))


async def show(target: Message | CallbackQuery, text: str,
               markup: InlineKeyboardMarkup | None = None) -> None:
    """Put a screen in the chat: edit the pressed message, or answer a sent one."""
    if isinstance(target, Message):
        await target.answer(text, reply_markup=markup)
        return
    message = target.message
    if message is None or target.bot is None:
        return
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in str(exc):
                return
            # Gone or no longer editable (deleted, too old): the screen comes as a new message.
            logger.info("screen_not_editable", extra={"error": str(exc)})
    # A media message (a delivered result), or one we could not edit: send a new one.
    await target.bot.send_message(message.chat.id, text, reply_markup=markup)


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    """Return an inline button that presses `data`."""
    return InlineKeyboardButton(text=text, callback_data=data.pack())


async def first_press(state: FSMContext, query: CallbackQuery) -> bool:
    """Return False for the second tap of one button on one message within DOUBLE_TAP_S.

    One chat's updates are handled one at a time, so reading and writing the chat's FSM data
    here cannot race another press of the same chat.
    """
    message_id = query.message.message_id if query.message else 0
    pressed = [message_id, query.data or "", time.time()]
    last = (await state.get_data()).get(LAST_PRESS_KEY)
    await state.update_data({LAST_PRESS_KEY: pressed})
    return not (last and last[:2] == pressed[:2] and pressed[2] - last[2] < DOUBLE_TAP_S)


async def leave_prompt(state: FSMContext) -> None:
    """Leave whatever prompt the chat was in (a command or the menu ends it)."""
    if await state.get_state() is not None:
        await state.set_state(None)
