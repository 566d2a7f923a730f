"""The operators' console through the Telegram sandbox: only operators see it, changes apply
once per confirm press, and every change leaves its audit row."""

from __future__ import annotations

import asyncio

from services.billing.ledger import read_wallet
from services.broadcast.sender import BroadcastSender
from services.telegram.handlers.admin import (
    AdjustOkCb,
    AdminCb,
    BroadcastOkCb,
    RefundOkCb,
    Screen,
)
from tests.e2e.chat import OPERATORS, ChatBot
from tests.helpers import eventually

ADJUSTMENTS_SQL = b"SELECT count(*) FROM ledger WHERE kind = 'adjustment' AND user_id = %s"
AUDIT_SQL = b"SELECT action, before, after FROM operator_audit WHERE subject = %s ORDER BY id"
OVERRIDE_SQL = b"SELECT enabled FROM model_overrides"
SCREEN_METHODS = ("sendMessage", "editMessageText")


async def count(chatbot: ChatBot, sql: bytes, *params: object) -> int:
    async with chatbot.pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    return int(row[0]) if row else 0


async def test_a_non_operator_gets_the_ordinary_fallback_and_old_console_buttons_do_nothing(
        chatbot: ChatBot) -> None:
    stranger = chatbot.person(501)
    await stranger.send("/start")
    screen = await stranger.send("/admin")
    assert screen.text.startswith("I did not understand")
    assert "Operators' console" not in screen.text
    before = [e for e in await stranger.log() if e["method"] in SCREEN_METHODS]
    old_buttons = [AdminCb(screen=pressed, arg=1) for pressed in Screen] + [
        AdjustOkCb(user=501, kop=100_000), RefundOkCb(job=1), BroadcastOkCb()]
    for pressed in old_buttons:  # e.g. forwarded by an operator, or pressed by an ex-operator
        await stranger.press(pressed.pack(), message_id=screen.message_id)
    after = [e for e in await stranger.log() if e["method"] in SCREEN_METHODS]
    assert after == before  # no text, no screen: nothing revealed
    async with chatbot.pool.connection() as conn:
        changes = await (await conn.execute(
            b"SELECT (SELECT count(*) FROM operator_audit) + (SELECT count(*) FROM broadcasts)"
            b" + (SELECT count(*) FROM ledger WHERE kind = 'adjustment')")).fetchone()
    assert changes == (0,)  # and nothing done
    answers = [e for e in await stranger.log() if e["method"] == "answerCallbackQuery"]
    assert all(not e.get("text") for e in answers)
    assert await chatbot.trouble() == []


async def test_an_adjustment_confirmed_twice_moves_the_balance_once_with_one_audit_row(
        chatbot: ChatBot) -> None:
    user = chatbot.person(502)
    await user.send("/start")
    operator = chatbot.person(OPERATORS[0], name="Olga")
    home = await operator.send("/admin")
    assert home.text.startswith("🛠 Operators' console")
    await operator.press(home.find("Find a user"))
    card = await operator.send("502")
    assert "User 502" in card.text and "Balance: 0.00 ₽" in card.text
    await operator.press(card.find("Adjust the balance"))
    confirm = await operator.send("+150.50 goodwill for a slow video")
    assert "by 150.50 ₽" in confirm.text and "goodwill" in confirm.text
    press = confirm.find("Confirm")
    done = await operator.press(press, message_id=confirm.message_id)
    assert done.text.startswith("Done. User 502 now has 150.50 ₽")
    again = await operator.press(press, message_id=confirm.message_id)
    assert again.text.startswith("Already applied")
    async with chatbot.pool.connection() as conn:
        wallet = await read_wallet(conn, 502)
        audit = await (await conn.execute(AUDIT_SQL, ("user:502",))).fetchall()
    assert wallet is not None and wallet.balance_kop == 15_050
    assert await count(chatbot, ADJUSTMENTS_SQL, 502) == 1
    assert [(a, b, c["balance_kop"], c["reason"]) for a, b, c in audit] == [
        ("balance_adjust", {"balance_kop": 0, "hold_kop": 0}, 15_050,
         "goodwill for a slow video")]
    assert await chatbot.trouble() == []


async def test_a_debit_below_zero_is_refused_and_changes_nothing(chatbot: ChatBot) -> None:
    await chatbot.person(503).send("/start")
    operator = chatbot.person(OPERATORS[1], name="Bob")
    await operator.send("/admin")
    await operator.press(AdminCb(screen=Screen.ADJUST, arg=503).pack())
    bad = await operator.send("+0 nothing")
    assert bad.text.startswith("Send the amount and the reason")
    confirm = await operator.send("-10 mistake")
    refused = await operator.press(confirm.find("Confirm"), message_id=confirm.message_id)
    assert refused.text == "Refused: the balance cannot go below zero."
    assert await count(chatbot, ADJUSTMENTS_SQL, 503) == 0


async def test_the_operator_screens_answer_and_a_model_toggle_is_audited(
        chatbot: ChatBot) -> None:
    operator = chatbot.person(OPERATORS[0], name="Olga")
    home = await operator.send("/admin")
    stats = await operator.press(home.find("Stats"))
    assert stats.text.startswith("📊 Users:") and "Kie cost" in stats.text
    queue = await operator.press(stats.find("Console"))
    queue = await operator.press(queue.find("Pending payments"))
    assert queue.text.startswith("Pending payments: 0")
    cluster = await operator.press(AdminCb(screen=Screen.CLUSTER).pack())
    assert cluster.text.startswith("🖧 Leader:")
    models = await operator.press(AdminCb(screen=Screen.MODELS).pack())
    first = models.data()[0]
    card = await operator.press(first)
    assert "Catalog price" in card.text and "Enabled: yes" in card.text
    off = await operator.press(card.find("Disable"))
    assert "Enabled: no" in off.text
    assert await count(chatbot, OVERRIDE_SQL) == 0  # enabled = false
    async with chatbot.pool.connection() as conn:
        actions = [r[0] for r in await (await conn.execute(
            b"SELECT action FROM operator_audit ORDER BY id")).fetchall()]
    assert actions == ["model_toggle"]
    assert await chatbot.trouble() == []


async def test_each_operator_gets_the_console_and_its_refusals_in_their_own_language(
        chatbot: ChatBot) -> None:
    await chatbot.person(504).send("/start")
    olga = chatbot.person(OPERATORS[0], language="ru", name="Olga")
    bob = chatbot.person(OPERATORS[1], language="en", name="Bob")
    for operator, home_text, stats_text in ((olga, "🛠 Пульт операторов", "📊 Пользователи:"),
                                            (bob, "🛠 Operators' console", "📊 Users:")):
        home = await operator.send("/admin")
        assert home.text.startswith(home_text)
        stats = await operator.press(AdminCb(screen=Screen.STATS).pack())
        assert stats.text.startswith(stats_text)
        models = await operator.press(AdminCb(screen=Screen.MODELS).pack())
        await operator.press(models.data()[0])
    assert "Включена: да" in (await olga.screen()).text
    assert "Enabled: yes" in (await bob.screen()).text
    # A refusal names its rule in the operator's language (job 999 does not exist).
    refused_ru = await olga.press(RefundOkCb(job=999).pack())
    refused_en = await bob.press(RefundOkCb(job=999).pack())
    assert refused_ru.text == "Отказано: генерации #999 нет."
    assert refused_en.text == "Refused: there is no job #999."
    assert await chatbot.trouble() == []


async def test_a_broadcast_is_previewed_confirmed_once_sent_and_its_progress_edited(
        chatbot: ChatBot) -> None:
    for user_id in (511, 512, 513):
        await chatbot.person(user_id).send("/start")
    operator = chatbot.person(OPERATORS[0], name="Olga")
    await operator.send("/admin")
    await operator.press(AdminCb(screen=Screen.BROADCAST).pack())
    preview = await operator.send("New models are in the catalog!")
    assert preview.text == "New models are in the catalog!"
    send = preview.find("Send to everyone")
    await operator.press(send, message_id=preview.message_id)
    await operator.press(send, message_id=preview.message_id)  # a double press
    async with chatbot.pool.connection() as conn:
        rows = await (await conn.execute(
            b"SELECT id, recipients, progress_message_id FROM broadcasts")).fetchall()
        actions = [r[0] for r in await (await conn.execute(
            b"SELECT action FROM operator_audit")).fetchall()]
    [(broadcast_id, recipients, progress_id)] = rows
    assert recipients == 4 and progress_id is not None  # the operator is a user too
    assert actions == ["broadcast_start"]

    sender = BroadcastSender(chatbot.pool, chatbot.bot, rate_per_s=25, progress_every_s=0.05)
    task = asyncio.create_task(sender.run(chatbot.leadership))
    try:
        async def finished() -> bool:
            message = await chatbot.control.message(OPERATORS[0], progress_id)
            return "finished" in message.get("text", "")
        await eventually(finished, what="the final progress")
    finally:
        task.cancel()
        await asyncio.wait([task])
    message = await chatbot.control.message(OPERATORS[0], progress_id)
    assert message["text"] == (f"📣 Broadcast #{broadcast_id} finished: sent 4 of 4, "
                               "blocked 0, failed 0.")
    for user_id in (511, 512, 513):
        texts = [e["text"] for e in await chatbot.person(user_id).log()
                 if e["method"] == "sendMessage"]
        assert texts.count("New models are in the catalog!") == 1
