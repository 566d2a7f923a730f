"""The dead-letter notice speaks the user's chosen language and leads back to the menu."""

from __future__ import annotations

import orjson
from aiogram import Bot
from aiogram.types import User
from psycopg_pool import AsyncConnectionPool

from sandbox.telegram import SandboxClient
from services.accounts import Accounts
from services.telegram import texts
from services.telegram.notices import dead_letter_notice
from services.users import Language
from tests.helpers import lead, message_update


async def test_the_notice_uses_the_chosen_language_over_telegrams_and_offers_the_menu(
        pool: AsyncConnectionPool, bot: Bot, control: SandboxClient) -> None:
    leadership = await lead(pool)
    accounts = Accounts(pool, leadership=lambda: leadership)
    await accounts.enter(User(id=61, is_bot=False, first_name="Ann", language_code="en"))
    await accounts.set_language(61, Language.RU)
    notify = dead_letter_notice(bot, accounts)
    await notify(orjson.dumps(message_update(1, 61, "hi", "en")).decode())
    await notify(orjson.dumps(message_update(2, 62, "hi", "en")).decode())  # never registered
    (russian,) = await control.chat_messages(61)
    (english,) = await control.chat_messages(62)
    assert russian["text"] == texts.get("ru", "something_went_wrong")
    assert english["text"] == texts.get("en", "something_went_wrong")
    assert russian["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "home"

