"""What the sandbox knows about one bot's payments: invoices, checkouts, Star charges.

Plain records, kept on `BotState.payments`; the Bot API methods and the control endpoints
that change them live in `sandbox.telegram.payments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# Telegram fails a payment whose pre_checkout_query is not answered within 10 s.
PRE_CHECKOUT_DEADLINE_S: Final[float] = 10.0


@dataclass(slots=True)
class Invoice:
    """An invoice message the bot sent."""

    chat_id: int
    message_id: int
    title: str
    payload: str
    currency: str
    total_amount: int


@dataclass(slots=True)
class Checkout:
    """One "user pays invoice X": the pre_checkout_query and what became of it.

    status: pending (waiting for answerPreCheckoutQuery), paid, refused (ok=false), expired
    (no answer within the deadline: the payment failed, as in Telegram).
    """

    id: str
    invoice: Invoice
    user: dict[str, Any]
    created_s: float                    # monotonic
    deadline_s: float
    status: str = "pending"
    answered_after_ms: float | None = None
    error_message: str | None = None
    charge_id: str | None = None
    late_answers: int = 0

    def to_dict(self, now_s: float) -> dict[str, Any]:
        """Return the checkout as the control API shows it (an unanswered one past its
        deadline is expired)."""
        status = self.status
        if status == "pending" and now_s > self.created_s + self.deadline_s:
            status = "expired"
        return {"id": self.id, "chat_id": self.invoice.chat_id,
                "message_id": self.invoice.message_id, "user_id": self.user["id"],
                "payload": self.invoice.payload, "currency": self.invoice.currency,
                "total_amount": self.invoice.total_amount, "status": status,
                "answered_after_ms": self.answered_after_ms,
                "error_message": self.error_message, "charge_id": self.charge_id,
                "late_answers": self.late_answers}


@dataclass(slots=True)
class Charge:
    """A Star payment Telegram took, refundable once."""

    charge_id: str
    user: dict[str, Any]
    chat_id: int
    amount: int
    payload: str
    date: int
    refunded: bool = False
    deliveries: int = 0


@dataclass(slots=True)
class PaymentBook:
    """One bot's invoices, checkouts, charges and Star transactions."""

    invoices: dict[tuple[int, int], Invoice] = field(default_factory=dict)
    checkouts: dict[str, Checkout] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    def next_id(self) -> int:
        """Return a fresh number for ids."""
        self.counter += 1
        return self.counter

    def clear(self) -> None:
        """Forget everything."""
        self.invoices.clear()
        self.checkouts.clear()
        self.charges.clear()
        self.transactions.clear()
