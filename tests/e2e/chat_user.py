"""A simulated Telegram user for e2e tests: sends messages, files and presses through the
sandbox's control API and reads what the bot showed back.

Each action waits for the bot's last action on it: a message is answered with one message;
a press ends with the callback's answer (the bot answers every press after its handler, so
the answer comes last). A chat is handled serially, so the next action sees the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.telegram.control import SandboxClient

WAIT_S = 30.0
DIGITS_RE = re.compile(r"\d")


@dataclass
class ChatUser:
    """One private chat with the bot."""

    client: SandboxClient
    chat_id: int
    language: str = "en"
    seen: int = 0  # bot actions in this chat read so far
    last_seq: int = 0  # outbox seq of the latest one
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def _who(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.chat_id,
                "first_name": f"U{self.chat_id}", "language_code": self.language}

    async def say(self, text: str) -> dict[str, Any]:
        """Send a text message; return the bot's answer."""
        await self.client.inject([{"kind": "message", "text": text, **self._who}])
        return await self._answered(lambda entry: entry["method"] == "sendMessage")

    async def upload(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a photo, document, audio or video (or a raw update); return the bot's answer."""
        if kind == "raw":
            await self.client.inject([{"kind": "raw", **fields}])
        else:
            await self.client.inject([{"kind": kind, **self._who, **fields}])
        return await self._answered(lambda entry: entry["method"] == "sendMessage")

    async def press(self, data: str, *, message_id: int | None = None) -> dict[str, Any]:
        """Press a button (callback data) under a bot message; return the callback's answer."""
        await self.client.inject([{"kind": "callback", "data": data, "message_id": message_id,
                                   **self._who}])
        return await self._answered(lambda entry: entry["method"] == "answerCallbackQuery")

    async def start(self) -> None:
        """Send /start and wait until the bot said something."""
        await self.client.inject([{"kind": "message", "text": "/start", **self._who}])
        await self._answered(lambda entry: True)

    async def screen(self) -> tuple[int, str, list[tuple[str, str]]]:
        """Return the bot's latest message with buttons: id, text, (label, data) buttons."""
        for entry in reversed(self.log):
            if entry["method"] in ("sendMessage", "editMessageText") and entry.get("message_id"):
                message = await self.client.message(self.chat_id, int(entry["message_id"]))
                rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
                buttons = [(b["text"], b.get("callback_data", "")) for row in rows for b in row]
                return int(entry["message_id"]), str(message.get("text") or ""), buttons
        raise AssertionError(f"chat {self.chat_id}: the bot showed nothing yet")

    async def press_button(self, prefix: str) -> dict[str, Any]:
        """Press the first button of the latest screen whose data starts with prefix."""
        message_id, text, buttons = await self.screen()
        for _, data in buttons:
            if data.startswith(prefix):
                return await self.press(data, message_id=message_id)
        raise AssertionError(f"chat {self.chat_id}: no {prefix!r} button in {text!r}: "
                             f"{buttons}")

    async def _answered(self, last: Any) -> dict[str, Any]:
        """Wait for a new bot action matching `last`; return it."""
        while True:
            await self.client.wait(chat_id=self.chat_id, chat_at_least=self.seen + 1,
                                   timeout_s=WAIT_S)
            chat = await self.client.chat(self.chat_id, after_seq=self.last_seq)
            fresh = chat["messages"]
            self.seen = int(chat["total"])
            if fresh:
                self.last_seq = int(fresh[-1]["seq"])
            self.log.extend(fresh)
            for entry in fresh:
                if last(entry):
                    return entry


def kopecks(label: str) -> int:
    """Return the kopecks a price label shows ('Generate · 1 234.50 ₽' -> 123450)."""
    return int("".join(DIGITS_RE.findall(label)) or 0)
