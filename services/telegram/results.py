"""The buttons under a delivered result: built by the leader's delivery worker (no i18n
context there, so texts come by language), pressed in the chat, handled by handlers/results.py.

A result that is one message carries them itself; an album cannot carry a keyboard (Telegram
allows none on a media group), so several files get them on a short follow-up message
(`next_text`) sent after the last one. A failure notice gets Repeat and Menu. A status
message carries Menu all along (`status_keyboard`): the user browses on while Kie works, and
the menu comes as a new message, so the status message stays where it is.
"""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.telegram import texts
from services.telegram.ui import ResultAct, ResultCb, button


def result_keyboard(language: str, job_id: int, *, succeeded: bool) -> InlineKeyboardMarkup:
    """Return the buttons under job_id's result (succeeded) or failure notice."""
    def press(key: str, act: ResultAct) -> InlineKeyboardButton:
        return button(texts.get(language, key), ResultCb(act=act, job=job_id))

    kb = InlineKeyboardBuilder()
    if succeeded:
        kb.row(press("result-repeat", ResultAct.REPEAT), press("result-change", ResultAct.CHANGE))
        kb.row(press("result-other", ResultAct.OTHER), press("ui-menu", ResultAct.MENU))
    else:
        kb.row(press("result-repeat", ResultAct.REPEAT), press("ui-menu", ResultAct.MENU))
    return kb.as_markup()


def status_keyboard(language: str, job_id: int) -> InlineKeyboardMarkup:
    """Return the buttons of job_id's status message: Menu, opened below it."""
    kb = InlineKeyboardBuilder()
    kb.row(button(texts.get(language, "ui-menu"), ResultCb(act=ResultAct.MENU, job=job_id)))
    return kb.as_markup()


def next_text(language: str, model: str) -> str:
    """Return the follow-up message that carries an album's buttons."""
    return texts.get(language, "result-next", model=model)
