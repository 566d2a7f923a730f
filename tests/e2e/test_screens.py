"""Every chat screen as a user meets it, through the Telegram sandbox, in Russian and English."""

from __future__ import annotations

import pytest

from services.catalog import get_catalog
from services.storefront import CATEGORIES
from tests.e2e.chat import ChatBot

CATEGORY_COUNTS = {c: sum(m.category == c for m in get_catalog()) for c in CATEGORIES}
TOPUP_SQL = b"""
INSERT INTO ledger (user_id, kind, balance_delta_kop, hold_delta_kop, idempotency_key, payment_id)
VALUES (109, 'topup', 50000, 0, 't1', 1)
"""
JOB_SQL = b"""
INSERT INTO generation_jobs (user_id, chat_id, model_id, params, price_kop, category, status,
                             idempotency_key, finished_at, delivered_file_ids)
VALUES (%s, %s, 'z-image', '{}', 0, 'image', %s, %s, %s, %s)
"""


async def test_start_shows_the_menu_with_every_category_and_its_model_count(
        chatbot: ChatBot) -> None:
    ann = chatbot.person(101, language="en", name="Ann")
    screen = await ann.send("/start")
    assert screen.text.startswith("Hello, Ann!") and "0.00 ₽" in screen.text
    for category, count in CATEGORY_COUNTS.items():
        assert any(label.endswith(f"· {count}") for label, _ in screen.buttons), category
    assert sum(CATEGORY_COUNTS.values()) == len(get_catalog()) == 73
    again = await ann.send("/start")
    assert again.text.startswith("Welcome back, Ann!")
    assert sorted(chatbot.allowed_updates) == ["callback_query", "message", "pre_checkout_query"]


async def test_a_deep_link_payload_is_kept_once(chatbot: ChatBot) -> None:
    await chatbot.person(102).send("/start " + "x" * 65)  # typed by hand: no link makes it
    await chatbot.person(102).send("/start ref_42")
    await chatbot.person(102).send("/start ref_99")
    async with chatbot.pool.connection() as conn:
        cur = await conn.execute(b"SELECT start_payload FROM users WHERE user_id = 102")
        assert await cur.fetchone() == ("ref_42",)
    assert await chatbot.trouble() == []


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_a_category_lists_its_models_cheapest_first_and_opens_a_card(
        chatbot: ChatBot, language: str) -> None:
    user = chatbot.person(103, language=language)
    menu = await user.send("/start")
    page = await user.press(menu.data()[1])  # video, the biggest category
    models = [data for data in page.data() if data.startswith("mdl:")]
    assert len(models) == 8
    prices = [label.rsplit("·", 1)[1] for label, data in page.buttons if data.startswith("mdl:")]
    assert prices, page.buttons
    card = await user.press(models[0])
    assert "gen:" in " ".join(card.data()) and "home" in card.data()
    word = {"ru": "Цена", "en": "Price"}[language]
    assert word in card.text
    back = await user.press(card.data()[1])
    assert back.data() == page.data()


async def test_russian_plurals_follow_the_count(chatbot: ChatBot) -> None:
    user = chatbot.person(104, language="ru")
    await user.send("/start")
    audio = await user.press("cat:audio:0")
    assert audio.text.startswith("🎧 Аудио: 5 моделей")
    upscale = await user.press("cat:upscale:0")
    assert upscale.text.startswith("🔍 Улучшение: 3 модели")


async def test_a_disabled_model_disappears_and_its_old_button_is_outdated(
        chatbot: ChatBot) -> None:
    user = chatbot.person(105)
    await user.send("/start")
    audio = await user.press("cat:audio:0")
    first = audio.data()[0]
    index = int(first.split(":")[1])
    model_id = get_catalog().models[index].id
    await chatbot.storefront.set_override(model_id, enabled=False, price_kop=None,
                                          operator_id=1)
    stale = await user.press(first)
    assert stale.text.startswith("This button is outdated")
    assert "· 4" in " ".join(label for label, _ in stale.buttons)
    answers = [e for e in await user.log() if e["method"] == "answerCallbackQuery"]
    assert answers[-1]["text"].startswith("This button is outdated")


async def test_search_finds_models_by_name_and_says_when_nothing_matches(
        chatbot: ChatBot) -> None:
    user = chatbot.person(106)
    await user.send("/start")
    prompt = await user.press("find")
    assert "model name" in prompt.text
    found = await user.send("sora")
    assert found.text.startswith("Found for “sora”")
    assert all("Sora" in label for label, data in found.buttons if data.startswith("mdl:"))
    nothing = await user.send("no-such-model")
    assert nothing.text.startswith("Nothing found")
    assert "home" in nothing.data()


async def test_choosing_a_language_is_stored_and_used_from_then_on(chatbot: ChatBot) -> None:
    user = chatbot.person(107, language="en")
    await user.send("/start")
    await user.press("lang:")
    menu = await user.press("lang:ru")
    assert menu.text.startswith("Готово")
    help_screen = await user.send("/help")
    assert help_screen.text.startswith("Что я умею")


async def test_history_lists_jobs_and_resends_a_result_once_on_a_double_tap(
        chatbot: ChatBot) -> None:
    user = chatbot.person(108)
    await chatbot.control.inject_photo(108, user_id=108)  # message 1: a file Telegram has
    await user.send("/start")
    photo = (await chatbot.control.message(108, 1))["photo"][-1]["file_id"]
    file_ids = f'["{photo}", ""]'  # the second result went as a link: nothing to re-send
    async with chatbot.pool.connection() as conn:
        await conn.execute(JOB_SQL, (108, 108, "succeeded", "k1", "2026-01-01", file_ids))
        await conn.execute(JOB_SQL, (108, 108, "failed", "k2", "2026-01-01", None))
    history = await user.press("hist:0")
    assert history.text.startswith("You have 2 generations.")
    jobs = [d for d in history.data() if d.startswith("job:")]
    assert len(jobs) == 2
    card = await user.press(jobs[1])  # the older one: succeeded
    assert "done" in card.text
    resend = card.find("Send the result again")
    await user.press(resend)
    await user.press(resend, message_id=card.message_id)
    sent = [e for e in await user.log() if e["method"] == "sendPhoto"]
    assert len(sent) == 1


async def test_balance_shows_the_wallet_and_the_latest_operations_in_words(
        chatbot: ChatBot) -> None:
    user = chatbot.person(109)
    await user.send("/start")
    async with chatbot.pool.connection() as conn:
        await conn.execute(TOPUP_SQL)
    screen = await user.press("bal")
    assert screen.text.startswith("Your balance: 500.00 ₽.")
    assert "Top-up  +500.00 ₽" in screen.text


async def test_support_shows_the_contact_and_top_up_opens_the_payment_screen(
        chatbot: ChatBot) -> None:
    user = chatbot.person(110)
    await user.send("/start")
    support = await user.press("sup")
    assert "@kiebot_help" in support.text and "https://t.me/kiebot_help" in support.buttons[0][1]
    top_up = await user.press("topup")
    assert top_up.text.startswith("➕ Top up your balance") and "tamt:500" in top_up.data()


async def test_an_unknown_button_is_answered_as_outdated_and_shows_the_menu(
        chatbot: ChatBot) -> None:
    user = chatbot.person(111)
    await user.send("/start")
    for data in ("nonsense", "mdl:9999:", "cat:nope:0", "job:123:0", "found:3"):
        screen = await user.press(data)
        assert screen.text.startswith("This button is outdated"), data
    answers = [e for e in await user.log() if e["method"] == "answerCallbackQuery"]
    assert len(answers) == user.presses
    assert await chatbot.trouble() == []


async def test_video_pages_list_every_model_once_cheapest_first(chatbot: ChatBot) -> None:
    user = chatbot.person(112)
    await user.send("/start")
    expected = [lg.index for lg in (await chatbot.storefront.shelf()).in_category("video")]
    shown: list[int] = []
    screen = await user.press("cat:video:0")
    while True:
        shown += [int(d.split(":")[1]) for d in screen.data() if d.startswith("mdl:")]
        pager = [d for label, d in screen.buttons if label == "›"]
        if not pager:
            break
        screen = await user.press(pager[0])
    assert shown == expected and len(shown) == CATEGORY_COUNTS["video"]
    prices = [lg.min_kop for lg in (await chatbot.storefront.shelf()).in_category("video")]
    assert prices == sorted(prices)


async def test_free_models_are_marked_and_a_card_speaks_the_users_language(
        chatbot: ChatBot) -> None:
    user = chatbot.person(113, language="ru")
    await user.send("/start")
    free = await user.press("cat:free:0")
    items = [(label, d) for label, d in free.buttons if d.startswith("mdl:")]
    assert items and all("🆓 бесплатно" in label for label, _ in items)
    z_image = next(d for label, d in items if label.startswith("Z-Image"))
    card = await user.press(z_image)
    assert "Быстрая генерация изображения по тексту." in card.text
    assert "Цена: 🆓 бесплатно" in card.text and "около минуты" in card.text


async def test_the_menu_offers_the_last_model_used_again(chatbot: ChatBot) -> None:
    user = chatbot.person(114)
    await user.send("/start")
    async with chatbot.pool.connection() as conn:
        await conn.execute(JOB_SQL, (114, 114, "failed", "k3", "2026-01-01", None))
    menu = await user.send("/menu")
    card = await user.press(menu.find("Again: Z-Image"))
    assert card.text.startswith("Z-Image")
    assert card.find("Generate").startswith("gen:")


async def test_help_and_unknown_text_lead_back_to_the_menu(chatbot: ChatBot) -> None:
    user = chatbot.person(115)
    help_screen = await user.send("/help")
    assert help_screen.text.startswith("What I can do") and help_screen.data() == ["home"]
    # Plain text at the menu is a prompt (the generate form's quick path); a command is not.
    hint = await user.send("/what_is_this")
    assert hint.text == "I did not understand “/what_is_this”. Send /help to see the commands."
    assert hint.data() == ["home"]


async def test_a_press_on_a_message_the_bot_cannot_edit_gets_its_screen_as_a_new_message(
        chatbot: ChatBot) -> None:
    user = chatbot.person(116)
    await user.send("/start")  # message 1 is the user's own: the bot cannot edit it
    screen = await user.press("help", message_id=1)
    assert screen.text.startswith("What I can do") and screen.message_id not in (1, 2)
    assert await chatbot.trouble() == []
