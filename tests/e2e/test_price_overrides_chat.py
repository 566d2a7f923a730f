"""An operator's price through the chat: the catalog and the card show it, Generate charges it.

A price changed while a card is open is never charged unseen: the press answers with the
new card, nothing held; a model switched off while its card is open is refused.
"""

from __future__ import annotations

from typing import Any

from services.billing.ledger import EntryKind, Wallet, apply_entry, read_wallet
from services.catalog import get_catalog
from services.generation import Succeeded, apply_outcome
from services.telegram.forms.screens import Verb
from services.telegram.handlers.generate import FormPress
from services.telegram.texts import rubles
from services.telegram.ui import GenerateCb, ModelCb
from tests.e2e.chat import ChatBot, Person, Screen

MODEL_ID = "seedream/4.5-text-to-image"  # one required input (the prompt); 5.11 RUB x 2.0
INDEX = next(i for i, m in enumerate(get_catalog().models) if m.id == MODEL_ID)
CATALOG_KOP = 1022
OPERATOR = 1001
JOBS_SQL = b"SELECT id, price_kop, status FROM generation_jobs WHERE user_id = %s ORDER BY id"
LEDGER_SQL = b"""
SELECT kind, balance_delta_kop, hold_delta_kop FROM ledger
 WHERE user_id = %s AND kind <> 'topup' ORDER BY id
"""


async def set_price(chatbot: ChatBot, price_kop: int | None, *, enabled: bool = True) -> None:
    """Set the model's override as the /admin console does."""
    await chatbot.admin.set_model(INDEX, enabled=enabled, price_kop=price_kop,
                                  operator_id=OPERATOR)


async def funded(chatbot: ChatBot, chat_id: int) -> Person:
    user = chatbot.person(chat_id)
    await user.send("/start")
    async with chatbot.pool.connection() as conn:
        await apply_entry(conn, user_id=chat_id, kind=EntryKind.TOPUP, balance_delta_kop=5000,
                          hold_delta_kop=0, idempotency_key=f"seed:{chat_id}",
                          payment_id=chat_id)
    return user


async def open_card(user: Person) -> Screen:
    """Open the model's card from the catalog, fill the prompt; return the confirm card."""
    await user.press(ModelCb(model=INDEX).pack())
    await user.press(GenerateCb(model=INDEX).pack())
    return await user.send("a lighthouse at dawn")


def generate_button(card: Screen) -> tuple[str, str]:
    """Return the label and data of the card's Generate button."""
    for label, data in card.buttons:
        if data.startswith("gf:") and FormPress.unpack(data).verb is Verb.GO:
            return label, data
    raise AssertionError(f"no Generate button on {card.text!r}")


async def rows(chatbot: ChatBot, sql: bytes, chat_id: int) -> list[tuple[Any, ...]]:
    async with chatbot.pool.connection() as conn:
        return await (await conn.execute(sql, (chat_id,))).fetchall()


async def test_an_override_is_shown_in_the_catalog_and_on_the_card_and_is_what_is_charged(
        chatbot: ChatBot) -> None:
    user = await funded(chatbot, 301)
    await set_price(chatbot, 777)
    model_card = await user.press(ModelCb(model=INDEX).pack())
    assert rubles(777) in model_card.text and rubles(CATALOG_KOP) not in model_card.text
    card = await open_card(user)
    label, data = generate_button(card)
    assert label.endswith(rubles(777)) and rubles(5000 - 777) in card.text
    queued = await user.press(data)
    assert queued.text.startswith("⏳") and "queued" in queued.text
    [(job_id, price_kop, status)] = await rows(chatbot, JOBS_SQL, 301)
    assert (price_kop, status) == (777, "pending")
    async with chatbot.pool.connection() as conn:
        assert await read_wallet(conn, 301) == Wallet(balance_kop=5000 - 777, hold_kop=777)
        await apply_outcome(conn, job_id, Succeeded(["https://cdn/x.png"]))
        assert await read_wallet(conn, 301) == Wallet(balance_kop=5000 - 777, hold_kop=0)
    assert await rows(chatbot, LEDGER_SQL, 301) == [("hold", -777, 777), ("commit", 0, -777)]
    assert await chatbot.trouble() == []


async def test_a_price_changed_while_the_card_is_open_is_refused_with_the_new_card(
        chatbot: ChatBot) -> None:
    user = await funded(chatbot, 302)
    card = await open_card(user)
    old_label, old_press = generate_button(card)
    assert old_label.endswith(rubles(CATALOG_KOP))
    await set_price(chatbot, 1500)
    changed = await user.press(old_press)
    assert changed.text.startswith("The price of") and rubles(1500) in changed.text
    assert await rows(chatbot, JOBS_SQL, 302) == []
    new_label, new_press = generate_button(changed)
    assert new_label.endswith(rubles(1500))
    queued = await user.press(new_press)
    assert queued.text.startswith("⏳") and "queued" in queued.text
    [(_, price_kop, _)] = await rows(chatbot, JOBS_SQL, 302)
    assert price_kop == 1500
    assert await rows(chatbot, LEDGER_SQL, 302) == [("hold", -1500, 1500)]


async def test_a_model_switched_off_while_its_card_is_open_is_refused_holding_nothing(
        chatbot: ChatBot) -> None:
    user = await funded(chatbot, 303)
    card = await open_card(user)
    _, press = generate_button(card)
    await set_price(chatbot, None, enabled=False)
    refused = await user.press(press)
    assert "is not available right now" in refused.text and "home" in refused.data()
    assert await rows(chatbot, JOBS_SQL, 303) == []
    async with chatbot.pool.connection() as conn:
        assert await read_wallet(conn, 303) == Wallet(balance_kop=5000, hold_kop=0)
