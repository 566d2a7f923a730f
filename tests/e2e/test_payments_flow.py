"""Money in as users and operators meet it, through the Telegram sandbox: a transfer approved
once by two operators, a rejection, a reused receipt, an old button pressed by a stranger, a
crash between the decision and the messages, and Stars delivered twice."""

from __future__ import annotations

from typing import Any

from services.billing.ledger import read_wallet
from services.payments import decisions
from services.payments.decisions import Decision
from services.payments.store import NoticeStatus, PaymentStore, RefundStatus
from services.telegram.ui import LanguageCb
from tests.e2e.chat import OPERATORS, STATUS_SQL, ChatBot, Person, Screen
from tests.helpers import eventually

TOPUPS_SQL = b"SELECT count(*) FROM ledger WHERE kind = 'topup' AND user_id = %s"


async def balance(chatbot: ChatBot, user_id: int) -> int:
    async with chatbot.pool.connection() as conn:
        wallet = await read_wallet(conn, user_id)
    return wallet.balance_kop if wallet else 0


async def topups(chatbot: ChatBot, user_id: int) -> int:
    async with chatbot.pool.connection() as conn:
        cur = await conn.execute(TOPUPS_SQL, (user_id,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def handled(chatbot: ChatBot, update_id: int | None) -> None:
    async def done() -> bool:
        async with chatbot.pool.connection() as conn:
            cur = await conn.execute(STATUS_SQL, (update_id,))
            row = await cur.fetchone()
        return bool(row and row[0] == "done")

    await eventually(done, timeout_s=15, what=f"update {update_id} handled")


async def press(chatbot: ChatBot, operator: int, data: str, message_id: int) -> None:
    """An operator presses a button under a receipt (their chat may hold no text message)."""
    (update_id,) = await chatbot.control.inject([{
        "kind": "callback", "chat_id": operator, "user_id": operator, "first_name": "Ann",
        "data": data, "message_id": message_id}])
    await handled(chatbot, update_id)


async def receipts(chatbot: ChatBot, operator: int) -> list[dict[str, Any]]:
    """Return the receipt messages an operator got, as they are now."""
    log = await chatbot.control.chat_messages(operator)
    ids = [e["message_id"] for e in log if e["method"] in ("sendPhoto", "sendDocument")]
    return [await chatbot.control.message(operator, i) for i in ids]


async def transfer(user: Person, amount_button: str = "tamt:500") -> Screen:
    """Open Top up, pick an amount and send a receipt photo; return the screen after."""
    await user.send("/start")
    screen = await user.press("topup")
    assert amount_button in screen.data()
    instructions = await user.press(amount_button)
    assert "Test Bank" in instructions.text and "Ivan Petrov" in instructions.text
    assert "+79990001122" in instructions.text and "2200 0000 0000 0001" in instructions.text
    assert "KB-" in instructions.text
    return await user.send_item("photo")


async def test_a_transfer_is_credited_once_when_two_operators_press_approve(
        chatbot: ChatBot) -> None:
    user = chatbot.person(301)
    received = await transfer(user)
    assert received.text.startswith("📨 Receipt received")
    [first], [second] = [await receipts(chatbot, op) for op in OPERATORS]
    # Operators who never talked to the bot get Russian, the bot's home language.
    assert "500.00 ₽" in first["caption"] and "Пользователь: 301" in first["caption"]
    approve = first["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert approve.startswith("pok:")

    await press(chatbot, OPERATORS[0], approve, first["message_id"])
    assert await balance(chatbot, 301) == 50_000
    for operator in OPERATORS:
        [now] = await receipts(chatbot, operator)
        assert "Approved by Ann" in now["caption"] or "Подтвердил Ann" in now["caption"]
        assert "reply_markup" not in now
    told = [e["text"] for e in await user.log() if e["method"] == "sendMessage"]
    assert any("is approved: 500.00 ₽" in text for text in told)

    # The second operator's press on their (old) message changes nothing.
    await press(chatbot, OPERATORS[1], approve, second["message_id"])
    assert await balance(chatbot, 301) == 50_000 and await topups(chatbot, 301) == 1
    assert await chatbot.trouble() == []


async def test_a_stranger_pressing_an_old_decision_button_gets_nothing(chatbot: ChatBot) -> None:
    await transfer(chatbot.person(302))
    [receipt] = await receipts(chatbot, OPERATORS[0])
    stranger = chatbot.person(303)
    menu = await stranger.send("/start")
    before = [e for e in await stranger.log() if e["method"] != "answerCallbackQuery"]
    for row in receipt["reply_markup"]["inline_keyboard"]:  # Approve, Another amount, Reject
        for button in row:
            await stranger.press(button["callback_data"], message_id=menu.message_id)
    after = [e for e in await stranger.log() if e["method"] != "answerCallbackQuery"]
    assert after == before  # no text, no screen, no prompt: nothing revealed
    await stranger.send("999")  # were an amount prompt open, this would credit 999 ₽
    answers = [e for e in await stranger.log() if e["method"] == "answerCallbackQuery"]
    assert len(answers) == 3 and all(not e.get("text") for e in answers)
    assert await balance(chatbot, 302) == 0 and await topups(chatbot, 302) == 0
    [still] = await receipts(chatbot, OPERATORS[0])
    assert "reply_markup" in still  # the operators can still decide


async def test_a_rejection_with_a_reason_tells_the_user_and_both_operators(
        chatbot: ChatBot) -> None:
    user = chatbot.person(304)
    await transfer(user, "tamt:100")
    [receipt] = await receipts(chatbot, OPERATORS[1])
    reject = receipt["reply_markup"]["inline_keyboard"][1][1]["callback_data"]
    operator = chatbot.person(OPERATORS[1], name="Bob")
    await operator.press(reject, message_id=receipt["message_id"])
    done = await operator.send("no such transfer today")
    assert done.text == "Done."
    for op in OPERATORS:
        [now] = await receipts(chatbot, op)
        assert "Rejected by Bob: no such transfer today" in now["caption"] or (
            "Отклонил Bob" in now["caption"])
    told = [e["text"] for e in await user.log() if e["method"] == "sendMessage"]
    assert any("was rejected: no such transfer today" in text for text in told)
    assert await topups(chatbot, 304) == 0


async def test_another_amount_typed_by_the_operator_is_what_the_user_gets(
        chatbot: ChatBot) -> None:
    await transfer(chatbot.person(305), "tamt:3000")
    [receipt] = await receipts(chatbot, OPERATORS[0])
    amend = receipt["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
    operator = chatbot.person(OPERATORS[0])
    asked = await operator.press(amend, message_id=receipt["message_id"])
    assert "3 000.00 ₽" in asked.text
    assert (await operator.send("abc")).text.startswith("Type a whole number")
    await operator.send("2 500")
    assert await balance(chatbot, 305) == 250_000


async def test_a_receipt_sent_again_for_a_new_top_up_is_refused(chatbot: ChatBot) -> None:
    user = chatbot.person(306)
    await transfer(user)
    [receipt] = await receipts(chatbot, OPERATORS[0])
    await user.press("topup")
    await user.press("tamt:300")
    same_photo = {"message_id": 9_999, "date": 1_700_000_000,
                  "chat": {"id": 306, "type": "private"},
                  "from": {"id": 306, "is_bot": False, "first_name": "Ann",
                           "language_code": "en"},
                  "photo": receipt["photo"]}
    screen = await user.send_item("raw", update={"message": same_photo})
    assert screen.text.startswith("This receipt was already sent")
    async with chatbot.pool.connection() as conn:
        assert len(await PaymentStore(conn).user_pending(306)) == 1


async def test_a_typed_amount_outside_the_limits_is_refused_naming_them(
        chatbot: ChatBot) -> None:
    user = chatbot.person(307)
    await user.send("/start")
    await user.press("topup")
    await user.press("toth")
    refused = await user.send("50")
    assert "from 100.00 ₽ to 100 000.00 ₽" in refused.text
    accepted = await user.send("1500")
    assert "Transfer exactly 1 500.00 ₽" in accepted.text


async def test_the_user_cancels_a_pending_top_up(chatbot: ChatBot) -> None:
    user = chatbot.person(308)
    await transfer(user)
    screen = await user.press("topup")
    cancel = next(d for d in screen.data() if d.startswith("tcan:"))
    after = await user.press(cancel)
    assert not any(d.startswith("tcan:") for d in after.data())
    for operator in OPERATORS:
        [now] = await receipts(chatbot, operator)
        assert "Cancelled by the user" in now["caption"] or "Отменено" in now["caption"]


async def test_a_crash_between_the_decision_and_the_messages_ends_consistent(
        chatbot: ChatBot) -> None:
    user = chatbot.person(309)
    await transfer(user)
    [receipt] = await receipts(chatbot, OPERATORS[0])
    payment_id = int(receipt["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
                     .split(":")[1])
    # The decision commits and the leader dies before sending a single message.
    async with chatbot.leadership.fenced(chatbot.pool) as conn:
        await decisions.decide(conn, payment_id, decision=Decision.APPROVE,
                               operator_id=OPERATORS[0], operator_name="Ann")
    for operator in OPERATORS:
        [now] = await receipts(chatbot, operator)
        assert "reply_markup" in now  # not yet edited
    # The next leader's sweep sends what is queued; a second sweep finds nothing to do.
    assert await chatbot.payments.notices.send_due(chatbot.leadership) == 3
    assert await chatbot.payments.notices.send_due(chatbot.leadership) == 0
    for operator in OPERATORS:
        [now] = await receipts(chatbot, operator)
        assert "Approved by Ann" in now["caption"] or "Подтвердил Ann" in now["caption"]
    async with chatbot.pool.connection() as conn:
        notices = await PaymentStore(conn).notices_of(payment_id)
    assert {n.status for n in notices} == {NoticeStatus.SENT}
    assert await topups(chatbot, 309) == 1


async def test_stars_are_credited_once_even_when_telegram_delivers_the_payment_twice(
        chatbot: ChatBot) -> None:
    user = chatbot.person(310)
    await user.send("/start")
    await user.press("topup")
    packages = await user.press("xtr")
    assert "1.2 ₽" in packages.text and "xtrp:100" in packages.data()
    await user.press("xtrp:100")
    [invoice] = await chatbot.control.outbox(method="sendInvoice")
    assert invoice["currency"] == "XTR" and invoice["total_amount"] == 100
    paid = await chatbot.control.pay(310)
    await handled(chatbot, paid["update_id"])
    [checkout] = (await chatbot.control.payments())["checkouts"]
    assert checkout["status"] == "paid"

    async def credited() -> bool:
        return await balance(chatbot, 310) == 12_000

    await eventually(credited, what="the stars credited")
    again = await chatbot.control.redeliver_payment(checkout["charge_id"])
    await handled(chatbot, again)
    assert await balance(chatbot, 310) == 12_000 and await topups(chatbot, 310) == 1
    told = [e["text"] for e in await user.log() if e["method"] == "sendMessage"]
    assert any("100 ⭐ received: 120.00 ₽" in text for text in told)
    assert any("already on your balance" in text for text in told)


async def test_a_pre_checkout_of_an_old_price_is_refused(chatbot: ChatBot) -> None:
    user = chatbot.person(311)
    await user.send("/start")
    await chatbot.bot.send_invoice(311, title="Old", description="an old invoice",
                                   payload="kb1:100:9900", currency="XTR",
                                   prices=[{"label": "x", "amount": 100}])  # type: ignore[list-item]
    paid = await chatbot.control.pay(311)
    await handled(chatbot, paid["update_id"])
    [checkout] = (await chatbot.control.payments())["checkouts"]
    assert checkout["status"] == "refused"
    assert "price changed" in checkout["error_message"]
    assert await topups(chatbot, 311) == 0


async def test_paysupport_answers_and_passes_the_words_to_the_operators(
        chatbot: ChatBot) -> None:
    user = chatbot.person(312)
    help_text = await user.send("/paysupport")
    assert "@kiebot_help" in help_text.text
    await user.send("/paysupport paid 500 but nothing came")
    for operator in OPERATORS:
        log = await chatbot.control.chat_messages(operator)
        assert any("paid 500 but nothing came" in (e["text"] or "") for e in log)


async def pay_stars(chatbot: ChatBot, user: Person) -> str:
    """Buy the 100-star package as the user; return the charge id once credited."""
    await user.send("/start")
    await user.press("topup")
    await user.press("xtr")
    await user.press("xtrp:100")
    paid = await chatbot.control.pay(user.chat_id)
    await handled(chatbot, paid["update_id"])
    [checkout] = [c for c in (await chatbot.control.payments())["checkouts"]
                  if c["id"] == paid["checkout_id"]]

    async def credited() -> bool:
        return await topups(chatbot, user.chat_id) == 1

    await eventually(credited, what="the stars credited")
    return str(checkout["charge_id"])


async def test_a_stars_refund_is_sent_until_telegram_confirms_it(chatbot: ChatBot) -> None:
    user = chatbot.person(313)
    charge = await pay_stars(chatbot, user)
    async with chatbot.pool.connection() as conn:
        cur = await conn.execute(b"SELECT id FROM payments WHERE telegram_payment_charge_id = %s",
                                 (charge,))
        (payment_id,) = await cur.fetchone() or (None,)
    assert await chatbot.payments.request_refund(payment_id, operator_id=313) is None  # no operator
    refunded = await chatbot.payments.request_refund(payment_id, operator_id=OPERATORS[0])
    assert refunded is not None and await balance(chatbot, 313) == 0
    await chatbot.control.fault("refundStarPayment", fail_next=1, status=400,
                                description="Bad Request: STARS_REFUND_UNAVAILABLE")
    assert await chatbot.payments.send_refunds(chatbot.leadership) == 0  # refused: retried
    assert await chatbot.payments.send_refunds(chatbot.leadership) == 1
    assert [c["refunded"] for c in (await chatbot.control.payments())["charges"]] == [True]
    async with chatbot.pool.connection() as conn:
        assert await PaymentStore(conn).refund_of(payment_id) == (RefundStatus.DONE, 2)
    assert await chatbot.payments.send_refunds(chatbot.leadership) == 0  # nothing left


async def test_a_refund_telegram_already_made_counts_as_done(chatbot: ChatBot) -> None:
    user = chatbot.person(314)
    charge = await pay_stars(chatbot, user)
    async with chatbot.pool.connection() as conn:
        cur = await conn.execute(b"SELECT id FROM payments WHERE telegram_payment_charge_id = %s",
                                 (charge,))
        (payment_id,) = await cur.fetchone() or (None,)
    await chatbot.payments.request_refund(payment_id, operator_id=OPERATORS[0])
    await chatbot.bot.refund_star_payment(314, charge)  # e.g. a crash after Telegram's answer
    assert await chatbot.payments.send_refunds(chatbot.leadership) == 1
    async with chatbot.pool.connection() as conn:
        status = await PaymentStore(conn).refund_of(payment_id)
    assert status is not None and status[0] is RefundStatus.DONE


async def test_each_operator_reads_receipts_decisions_and_paysupport_in_their_own_language(
        chatbot: ChatBot) -> None:
    # Olga's Telegram speaks English but she chose Russian in the bot; Bob's speaks English.
    olga = chatbot.person(OPERATORS[0], language="en", name="Olga")
    await olga.send("/start")
    await olga.press(LanguageCb(language="ru").pack())
    bob = chatbot.person(OPERATORS[1], language="en", name="Bob")
    await bob.send("/start")
    user = chatbot.person(315, language="ru")
    await transfer(user)
    [for_olga], [for_bob] = [await receipts(chatbot, op) for op in OPERATORS]
    assert "Пользователь: 315" in for_olga["caption"] and "User: 315" in for_bob["caption"]
    olga_buttons = [b["text"] for row in for_olga["reply_markup"]["inline_keyboard"] for b in row]
    bob_buttons = [b["text"] for row in for_bob["reply_markup"]["inline_keyboard"] for b in row]
    assert olga_buttons == ["✅ Подтвердить", "✏️ Другая сумма", "❌ Отклонить"]
    assert bob_buttons == ["✅ Approve", "✏️ Another amount", "❌ Reject"]

    approve = for_bob["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await bob.press(approve, message_id=for_bob["message_id"])
    [for_olga], [for_bob] = [await receipts(chatbot, op) for op in OPERATORS]
    assert "Подтвердил Bob: зачислено 500.00 ₽" in for_olga["caption"]
    assert "Approved by Bob: 500.00 ₽ credited" in for_bob["caption"]
    told = [e["text"] for e in await user.log() if e["method"] == "sendMessage"]
    assert any(text.startswith("✅ Пополнение №") and "подтверждено: 500.00 ₽" in text
               for text in told)

    await user.send("/paysupport не пришли деньги")
    [to_olga] = [e["text"] for e in await olga.log() if "/paysupport" in (e["text"] or "")]
    [to_bob] = [e["text"] for e in await bob.log() if "/paysupport" in (e["text"] or "")]
    assert to_olga.startswith("💬 /paysupport от пользователя 315")
    assert to_bob.startswith("💬 /paysupport from user 315")
