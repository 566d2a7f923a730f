"""Payments in the Telegram sandbox: invoices, pre-checkout, successful payments, Star refunds.

Bot API methods (as Telegram's rules for Telegram Stars):
- sendInvoice: currency XTR takes exactly one price item and no provider token (other
  currencies need a provider: refused, the sandbox has none); payload 1-128 bytes, title
  1-32 and description 1-255 characters. The invoice is a message in the chat.
- answerPreCheckoutQuery: within PRE_CHECKOUT_DEADLINE_S (10 s) of the query; later, or a
  second time, it is refused ("query is too old ...") and the payment has failed. ok=true
  charges the user: a message with `successful_payment` arrives from them.
- refundStarPayment: once per charge; again: 400 CHARGE_ALREADY_REFUNDED; unknown charge or
  another user: 400 CHARGE_NOT_FOUND.
- getStarTransactions: the bot's incoming charges and outgoing refunds, oldest first.

Control API (the user's side):
- POST /_sandbox/pay {chat_id, user_id?, message_id? (default: the chat's latest invoice),
  deadline_s? (default 10)} -> the pre_checkout_query update; returns its checkout id.
- GET /_sandbox/payments -> every checkout (status, answered_after_ms) and charge.
- POST /_sandbox/payments/redeliver {charge_id} -> the successful_payment message again
  under a new update id (Telegram may deliver a payment twice).
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web

from sandbox.common.responses import ControlError, control_errors, dump, json_body, query_int
from sandbox.telegram.errors import bad_request
from sandbox.telegram.inject import PROFILE_FIELDS, ensure_chat, make_user
from sandbox.telegram.invoices import PRE_CHECKOUT_DEADLINE_S, Charge, Checkout, Invoice
from sandbox.telegram.methods import (
    QUERY_INVALID,
    _entry,
    _reply_markup,
    _store_bot_message,
    _target_chat,
    api_method,
)
from sandbox.telegram.params import Params
from sandbox.telegram.state import BotState, StoredMessage, StoredUpdate, now_s

if TYPE_CHECKING:
    from sandbox.telegram.server import TelegramSandbox

STARS: Final[str] = "XTR"
MAX_PAYLOAD_BYTES: Final[int] = 128
MAX_TITLE_CHARS: Final[int] = 32
MAX_DESCRIPTION_CHARS: Final[int] = 255
MAX_STARS_PER_INVOICE: Final[int] = 100_000
MAX_TRANSACTIONS_LIMIT: Final[int] = 100
CONTROL_PREFIX: Final[str] = "/_sandbox"


@api_method("sendInvoice", rate_limited=True)
async def send_invoice(bot: BotState, p: Params) -> Any:
    """Send an invoice message (Telegram Stars only: the sandbox has no payment provider)."""
    chat = _target_chat(bot, p)
    title, description = p.get_str("title") or "", p.get_str("description") or ""
    payload, currency = p.get_str("payload") or "", p.get_str("currency") or ""
    if not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise bad_request("INVOICE_TITLE_EMPTY" if not title else "INVOICE_TITLE_TOO_LONG")
    if not 1 <= len(description) <= MAX_DESCRIPTION_CHARS:
        raise bad_request("INVOICE_DESCRIPTION_EMPTY" if not description
                          else "INVOICE_DESCRIPTION_TOO_LONG")
    if not 1 <= len(payload.encode()) <= MAX_PAYLOAD_BYTES:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if currency != STARS:
        raise bad_request("PAYMENT_PROVIDER_INVALID")  # no provider behind other currencies
    if p.get_str("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID")  # Stars take no provider token
    prices = p.get_json("prices", "prices")
    if not isinstance(prices, list) or len(prices) != 1 or not isinstance(prices[0], dict):
        raise bad_request("STARS_INVOICE_INVALID")  # XTR: exactly one price item
    amount = prices[0].get("amount")
    if (not isinstance(amount, int) or isinstance(amount, bool)
            or not 1 <= amount <= MAX_STARS_PER_INVOICE):
        raise bad_request("STARS_INVOICE_INVALID")
    raw_markup, inline = _reply_markup(p, inline_only=True)
    content = {"invoice": {"title": title, "description": description, "start_parameter": "",
                           "currency": currency, "total_amount": amount}}
    message = _store_bot_message(bot, chat, "invoice", content, inline, None)
    bot.payments.invoices[(chat.id, message.message_id)] = Invoice(
        chat.id, message.message_id, title, payload, currency, amount)
    bot.record(chat, _entry("sendInvoice", chat, message.message_id, text=title,
                            reply_markup=raw_markup, payload=payload, currency=currency,
                            total_amount=amount))
    return message.obj


@api_method("answerPreCheckoutQuery")
async def answer_pre_checkout_query(bot: BotState, p: Params) -> Any:
    """Accept or refuse a checkout within its deadline; a late or second answer fails."""
    checkout = bot.payments.checkouts.get(p.get_str("pre_checkout_query_id") or "")
    if checkout is None:
        raise bad_request(QUERY_INVALID)
    now = time.monotonic()
    if checkout.status != "pending" or now > checkout.created_s + checkout.deadline_s:
        checkout.late_answers += 1
        if checkout.status == "pending":
            checkout.status = "expired"  # Telegram gave up on it: the payment failed
        bot.notify()
        raise bad_request(QUERY_INVALID)
    ok = p.get_bool("ok")
    error_message = p.get_str("error_message")
    if not ok and not error_message:
        raise bad_request("ERROR_MESSAGE_EMPTY")
    checkout.answered_after_ms = round((now - checkout.created_s) * 1000, 3)
    if not ok:
        checkout.status, checkout.error_message = "refused", error_message
        bot.notify()
        return True
    checkout.status = "paid"
    charge = Charge(charge_id=f"stxSANDBOX{bot.payments.next_id():08d}{secrets.token_hex(6)}",
                    user=checkout.user, chat_id=checkout.invoice.chat_id,
                    amount=checkout.invoice.total_amount, payload=checkout.invoice.payload,
                    date=now_s())
    checkout.charge_id = charge.charge_id
    bot.payments.charges[charge.charge_id] = charge
    bot.payments.transactions.append({
        "id": charge.charge_id, "amount": charge.amount, "date": charge.date,
        "source": {"type": "user", "transaction_type": "invoice_payment",
                   "user": charge.user, "invoice_payload": charge.payload}})
    _deliver_payment(bot, charge)
    return True


@api_method("refundStarPayment")
async def refund_star_payment(bot: BotState, p: Params) -> Any:
    """Refund a Star charge once."""
    charge = bot.payments.charges.get(p.get_str("telegram_payment_charge_id") or "")
    if charge is None or charge.user["id"] != p.get_int("user_id"):
        raise bad_request("CHARGE_NOT_FOUND")
    if charge.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    charge.refunded = True
    bot.payments.transactions.append({
        "id": charge.charge_id, "amount": charge.amount, "date": now_s(),
        "receiver": {"type": "user", "transaction_type": "invoice_payment",
                     "user": charge.user}})
    bot.notify()
    return True


@api_method("getStarTransactions")
async def get_star_transactions(bot: BotState, p: Params) -> Any:
    """Return the bot's Star transactions, oldest first."""
    offset = p.get_int("offset") or 0
    limit = p.get_int("limit") or MAX_TRANSACTIONS_LIMIT
    if not 1 <= limit <= MAX_TRANSACTIONS_LIMIT or offset < 0:
        raise bad_request("LIMIT_INVALID")
    return {"transactions": bot.payments.transactions[offset:offset + limit]}


def _push(bot: BotState, kind: str, payload: dict[str, Any], chat_key: int) -> int | None:
    bot.stats.injected += 1
    if not bot.is_allowed(kind):
        bot.stats.filtered += 1
        bot.notify()
        return None
    update_id = bot.allocate_update_id()
    body = orjson.dumps({"update_id": update_id, kind: payload})
    bot.push_updates([StoredUpdate(update_id, chat_key, kind, body)])
    return update_id


def _deliver_payment(bot: BotState, charge: Charge) -> int | None:
    """Put the user's successful_payment message in the chat and in the updates."""
    chat = ensure_chat(bot, charge.chat_id, charge.user)
    message_id = chat.new_message_id()
    obj: dict[str, Any] = {
        "message_id": message_id, "from": charge.user, "chat": chat.obj, "date": now_s(),
        "successful_payment": {
            "currency": STARS, "total_amount": charge.amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id,
            "provider_payment_charge_id": ""}}
    chat.store(StoredMessage(message_id, False, obj, "successful_payment"),
               bot.config.max_messages_per_chat)
    charge.deliveries += 1
    return _push(bot, "message", obj, chat.id)


def _payer(bot: BotState, item: dict[str, Any], chat_id: int) -> dict[str, Any]:
    """Return the paying user: as the item describes them, else as the chat last saw them
    (Telegram sends a user's whole profile, language_code included, with every update)."""
    user_id = int(item.get("user_id") or chat_id)
    chat = bot.chats.get(chat_id)
    known = chat.user if chat is not None and chat.user and chat.user["id"] == user_id else None
    described = any(name in item for name in PROFILE_FIELDS)
    return dict(known) if known is not None and not described else make_user(item, user_id)


class PaymentControl:
    """The control endpoints of the user's side of payments."""

    def __init__(self, sandbox: TelegramSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """Return the payment control routes."""
        p = CONTROL_PREFIX
        return [web.post(f"{p}/pay", control_errors(self.pay)),
                web.get(f"{p}/payments", control_errors(self.payments)),
                web.post(f"{p}/payments/redeliver", control_errors(self.redeliver))]

    def _bot(self, request: web.Request) -> BotState:
        bot_id = query_int(request, "bot_id")
        try:
            return self._sandbox.bot(bot_id)
        except KeyError as exc:
            raise ControlError(404, f"unknown bot_id {bot_id}") from exc

    async def pay(self, request: web.Request) -> web.Response:
        """The user pays an invoice: send the bot its pre_checkout_query."""
        bot = self._bot(request)
        item = await json_body(request)
        if not isinstance(item, dict) or not isinstance(item.get("chat_id"), int):
            raise ControlError(400, "send {chat_id, user_id?, message_id?, deadline_s?}")
        chat_id = int(item["chat_id"])
        user = _payer(bot, item, chat_id)
        invoices = [inv for (chat, _), inv in bot.payments.invoices.items() if chat == chat_id]
        message_id = item.get("message_id")
        invoice = (bot.payments.invoices.get((chat_id, message_id)) if message_id is not None
                   else (invoices[-1] if invoices else None))
        if invoice is None:
            raise ControlError(404, "no such invoice in this chat")
        deadline_s = float(item.get("deadline_s") or PRE_CHECKOUT_DEADLINE_S)
        checkout = Checkout(id=f"{bot.bot_id % 100_000:05d}{bot.payments.next_id():013d}",
                            invoice=invoice, user=user, created_s=time.monotonic(),
                            deadline_s=deadline_s)
        bot.payments.checkouts[checkout.id] = checkout
        update_id = _push(bot, "pre_checkout_query", {
            "id": checkout.id, "from": user, "currency": invoice.currency,
            "total_amount": invoice.total_amount, "invoice_payload": invoice.payload},
            user["id"])
        return dump({"ok": True, "checkout_id": checkout.id, "update_id": update_id})

    async def payments(self, request: web.Request) -> web.Response:
        """List checkouts and charges."""
        book = self._bot(request).payments
        now = time.monotonic()
        return dump({"ok": True,
                     "checkouts": [c.to_dict(now) for c in book.checkouts.values()],
                     "charges": [{"charge_id": c.charge_id, "user_id": c.user["id"],
                                  "amount": c.amount, "refunded": c.refunded,
                                  "deliveries": c.deliveries} for c in book.charges.values()]})

    async def redeliver(self, request: web.Request) -> web.Response:
        """Deliver a charge's successful_payment message once more."""
        bot = self._bot(request)
        item = await json_body(request)
        charge = bot.payments.charges.get(str((item or {}).get("charge_id")))
        if charge is None:
            raise ControlError(404, "unknown charge_id")
        return dump({"ok": True, "update_id": _deliver_payment(bot, charge)})
