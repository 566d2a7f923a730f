"""The demo's simulated operator: an ADMIN_ID user who decides the shoppers' top-ups in chat.

The operator reads their chat with the bot as a person would. Every receipt the bot sends
(a photo or document with the Approve / Another amount / Reject buttons, callback data
`pok:` / `pam:` / `pno:`) joins a queue; receipts are decided one at a time, in the order
they came, after a moment of reading:

    most     Approve (`pok:<payment>`)
    1 in 6   Another amount: `pam:<payment>`, then the amount typed at the bot's prompt
             (the amount asked minus 10 %, at least TOPUP_MIN_RUB)
    1 in 6   Reject: `pno:<payment>`, then a reason typed at the prompt

A decision is done when the receipt message loses its buttons (the bot edits it to show who
decided). The bot is at-least-once and the leader may die mid-decision: a press whose edit
does not come within DECISION_TIMEOUT_S is pressed again (a second Approve of one payment
credits nothing: the payment is no longer pending). Every update the operator sends is
recorded (`sent`), so the demo checks that none was lost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sandbox.telegram import SandboxClient, SandboxError, SandboxTimeout
from supervisor.aio import wait_event

OPERATOR_ID: Final = 600_001  # the operator who decides (reads the bot in Russian)
WATCHER_ID: Final = 600_002  # a second operator who only watches (in English)
OPERATOR_NAME: Final = "Olga"
READ_S: Final = 0.3  # the operator reads a receipt this long before pressing
POLL_S: Final = 1.0  # one long poll of the chat's log
PROMPT_TIMEOUT_S: Final = 10.0  # the bot's "type the amount / reason" prompt comes within this
DECISION_TIMEOUT_S: Final = 10.0  # ... and the receipt's edit; else the press is made again
MAX_PRESSES: Final = 5  # presses of one receipt before the operator leaves it for later
EVERY_NTH: Final = 6  # of each EVERY_NTH decisions: one Another amount, one Reject
AMEND_SHARE: Final = 0.9  # Another amount credits this share of the amount asked
MIN_RUB: Final = 100  # never amend below the smallest top-up
REASONS: Final = ("no such transfer on the account", "the receipt does not match the amount",
                  "the receipt is unreadable")
RECEIPT_METHODS: Final = frozenset({"sendPhoto", "sendDocument"})
DECISION_PREFIXES: Final = ("pok", "pam", "pno")  # Approve, Another amount, Reject
AMOUNT: Final = re.compile(r"(\d[\d ]*)\.\d\d ₽")


@dataclass
class Receipt:
    """One receipt message in the operator's chat."""

    message_id: int
    payment_id: int
    buttons: Mapping[str, str]  # prefix -> callback data
    caption: str


class Operator:
    """Decide every receipt that reaches the operator's chat until `stop` is set."""

    def __init__(self, control: SandboxClient, *, chat_id: int = OPERATOR_ID,
                 watchers: Sequence[int] = (WATCHER_ID,)) -> None:
        self.control = control
        self.chat_id = chat_id
        self.watchers = tuple(watchers)
        self.stop = asyncio.Event()
        self.sent: list[int] = []  # update ids of everything the operator sent
        self.approved = 0  # decisions made, by kind (presses that took effect once each)
        self.amended = 0
        self.rejected = 0
        self.errors = 0
        self._queue: list[Receipt] = []
        self._known: set[int] = set()  # message ids of receipts seen
        self._decided: set[int] = set()  # payment ids decided
        self._seen = 0
        self._after_seq = 0
        self._decisions = 0

    async def run(self) -> None:
        """Say /start (the watchers too, in English), then decide receipts until `stop`."""
        await self._send_text("/start")
        for watcher in self.watchers:
            await self._inject({"kind": "message", "chat_id": watcher, "text": "/start",
                                "first_name": "Watcher", "language_code": "en"})
        while not self.stop.is_set():
            try:
                await self._read_chat(POLL_S)
                while self._queue and not self.stop.is_set():
                    receipt = self._queue.pop(0)
                    if receipt.payment_id not in self._decided:
                        await self._decide(receipt)
            except (SandboxError, OSError, TimeoutError):
                self.errors += 1
                await wait_event(self.stop, POLL_S)

    async def _decide(self, receipt: Receipt) -> None:
        """Press one decision (and type its amount or reason) until the receipt is edited."""
        await wait_event(self.stop, READ_S)
        self._decisions += 1
        kind = ("pam" if self._decisions % EVERY_NTH == EVERY_NTH - 1
                else "pno" if self._decisions % EVERY_NTH == EVERY_NTH // 2 else "pok")
        for _ in range(MAX_PRESSES):
            await self._press(receipt.message_id, receipt.buttons[kind])
            if kind != "pok":
                await self._read_chat(PROMPT_TIMEOUT_S)  # the prompt (order is per chat anyway)
                await self._send_text(self._typed(kind, receipt))
            if await self._edited(receipt.message_id):
                self._decided.add(receipt.payment_id)
                if kind == "pok":
                    self.approved += 1
                elif kind == "pam":
                    self.amended += 1
                else:
                    self.rejected += 1
                return
            if self.stop.is_set():
                return
        self._queue.append(receipt)  # the bot is slow (a failover): come back to it later

    def _typed(self, kind: str, receipt: Receipt) -> str:
        """Return the amount (Another amount) or the reason (Reject) to type."""
        if kind == "pno":
            return REASONS[self._decisions % len(REASONS)]
        asked = AMOUNT.search(receipt.caption)
        rub = int(asked.group(1).replace(" ", "")) if asked else MIN_RUB
        return str(max(MIN_RUB, int(rub * AMEND_SHARE)))

    async def _edited(self, message_id: int) -> bool:
        """Wait until the receipt lost its buttons (decided); False after DECISION_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DECISION_TIMEOUT_S
        while not self.stop.is_set():
            message = await self.control.message(self.chat_id, message_id)
            if not (message.get("reply_markup") or {}).get("inline_keyboard"):
                return True
            if loop.time() >= deadline:
                return False
            await self._read_chat(min(POLL_S, deadline - loop.time()))
        return False

    async def _read_chat(self, timeout_s: float) -> None:
        """Read the bot's new actions in the chat (waiting up to timeout_s for one); queue the
        receipts among them."""
        try:
            await self.control.wait(chat_id=self.chat_id, chat_at_least=self._seen + 1,
                                    timeout_s=max(timeout_s, 0.1))
        except SandboxTimeout:
            return
        chat = await self.control.chat(self.chat_id, after_seq=self._after_seq)
        self._seen = int(chat["total"])
        entries: Sequence[dict[str, Any]] = chat["messages"]
        if entries:
            self._after_seq = max(int(entry["seq"]) for entry in entries)
        for entry in entries:
            message_id = entry.get("message_id")
            if entry.get("method") in RECEIPT_METHODS and message_id is not None \
                    and int(message_id) not in self._known:
                self._known.add(int(message_id))
                await self._maybe_queue(int(message_id))

    async def _maybe_queue(self, message_id: int) -> None:
        """Queue a receipt that still has its decision buttons."""
        message = await self.control.message(self.chat_id, message_id)
        buttons = {b["callback_data"].split(":", 1)[0]: b["callback_data"]
                   for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                   for b in row if isinstance(b.get("callback_data"), str)}
        if all(prefix in buttons for prefix in DECISION_PREFIXES):
            payment_id = int(buttons["pok"].split(":")[1])
            self._queue.append(Receipt(message_id, payment_id, buttons,
                                       str(message.get("caption") or "")))

    async def _send_text(self, text: str) -> None:
        await self._inject({"kind": "message", "chat_id": self.chat_id, "text": text})

    async def _press(self, message_id: int, data: str) -> None:
        await self._inject({"kind": "callback", "chat_id": self.chat_id,
                            "message_id": message_id, "data": data})

    async def _inject(self, item: dict[str, Any]) -> None:
        ids = await self.control.inject([{"first_name": OPERATOR_NAME, "language_code": "ru"}
                                         | item])
        self.sent.extend(update_id for update_id in ids if update_id is not None)
