"""The Telegram sandbox takes Stars payments as Telegram does: XTR invoices with one price and
no provider, a pre-checkout answered within its deadline, successful_payment, refunds once."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import LabeledPrice

from sandbox.telegram import SandboxClient

CHAT = 4242


async def updates(bot: Bot, offset: int) -> list[Any]:
    return await bot.get_updates(offset=offset, timeout=0,
                                 allowed_updates=["message", "pre_checkout_query"])


async def invoice(bot: Bot, **overrides: Any) -> None:
    fields: dict[str, Any] = {"title": "Balance 120 ₽", "description": "100 stars",
                              "payload": "kb1:100:12000", "currency": "XTR",
                              "prices": [LabeledPrice(label="Balance", amount=100)]}
    await bot.send_invoice(CHAT, **(fields | overrides))


async def test_a_paid_invoice_asks_the_pre_checkout_then_delivers_the_payment(
        bot: Bot, control: SandboxClient) -> None:
    await invoice(bot)
    [sent] = await control.outbox(method="sendInvoice")
    assert sent["payload"] == "kb1:100:12000" and sent["total_amount"] == 100
    paid = await control.pay(CHAT)
    [query] = await updates(bot, 0)
    checkout = query.pre_checkout_query
    assert checkout.id == paid["checkout_id"] and checkout.total_amount == 100
    assert checkout.invoice_payload == "kb1:100:12000" and checkout.currency == "XTR"
    assert await bot.answer_pre_checkout_query(checkout.id, ok=True)
    [message] = await updates(bot, query.update_id + 1)
    payment = message.message.successful_payment
    assert payment.total_amount == 100 and payment.invoice_payload == "kb1:100:12000"
    [state] = (await control.payments())["checkouts"]
    assert state["status"] == "paid" and state["answered_after_ms"] is not None
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(checkout.id, ok=True)  # answered once only

    again = await control.redeliver_payment(payment.telegram_payment_charge_id)
    [twice] = await updates(bot, message.update_id + 1)
    assert twice.update_id == again
    assert (twice.message.successful_payment.telegram_payment_charge_id
            == payment.telegram_payment_charge_id)

    charge = payment.telegram_payment_charge_id
    assert await bot.refund_star_payment(CHAT, charge)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(CHAT, charge)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(CHAT + 1, charge)
    history = await bot.get_star_transactions()
    assert [t.amount for t in history.transactions] == [100, 100]


async def test_a_pre_checkout_answered_after_its_deadline_fails_the_payment(
        bot: Bot, control: SandboxClient) -> None:
    await invoice(bot)
    await control.pay(CHAT, deadline_s=1e-6)
    [query] = await updates(bot, 0)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(query.pre_checkout_query.id, ok=True)
    [state] = (await control.payments())["checkouts"]
    assert state["status"] == "expired" and state["charge_id"] is None
    assert await updates(bot, query.update_id + 1) == []


async def test_a_refused_pre_checkout_charges_nothing(bot: Bot,
                                                      control: SandboxClient) -> None:
    await invoice(bot)
    await control.pay(CHAT)
    [query] = await updates(bot, 0)
    with pytest.raises(TelegramBadRequest, match="ERROR_MESSAGE_EMPTY"):
        await bot.answer_pre_checkout_query(query.pre_checkout_query.id, ok=False)
    await bot.answer_pre_checkout_query(query.pre_checkout_query.id, ok=False,
                                        error_message="price changed")
    [state] = (await control.payments())["checkouts"]
    assert state["status"] == "refused" and state["error_message"] == "price changed"
    assert (await control.payments())["charges"] == []


@pytest.mark.parametrize(("overrides", "error"), [
    ({"prices": [LabeledPrice(label="a", amount=1), LabeledPrice(label="b", amount=2)]},
     "STARS_INVOICE_INVALID"),
    ({"provider_token": "284685063:TEST:abc"}, "PAYMENT_PROVIDER_INVALID"),
    ({"currency": "RUB"}, "PAYMENT_PROVIDER_INVALID"),
    ({"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
    ({"title": "t" * 33}, "INVOICE_TITLE_TOO_LONG"),
], ids=["two-prices", "provider-token", "not-stars", "long-payload", "long-title"])
async def test_invoices_outside_the_stars_rules_are_refused(
        bot: Bot, control: SandboxClient, overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await invoice(bot, **overrides)
    assert await control.outbox(method="sendInvoice") == []
