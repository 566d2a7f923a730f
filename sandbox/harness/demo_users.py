"""Simulated users for the demo, and matching the bot's replies to what they sent.

`Users` sends about `rate_per_s` messages per second over `chats` private chats through the
sandbox control API: a /start first in every chat, then a mix of /start, /help, /balance and
free text. Every free text is a unique unknown command (`/u<chat>-<seq>`: plain text would be
a generation prompt) and the bot's fallback reply quotes it,
so such a reply belongs to exactly one message.

`Replies` reads the sandbox outbox and counts replies per (chat, key): the key is the command
for a command's reply and the quoted text for the fallback's. More replies than messages under
one key are duplicates; fewer are unanswered messages.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sandbox.telegram import SandboxClient, SandboxError
from services.telegram import texts
from supervisor.aio import wait_event

CHATS: Final = 50
RATE_PER_S: Final = 30.0  # messages per second, all chats together
TICK_S: Final = 0.1  # one inject call per tick
MAX_BATCH: Final = 100  # messages per inject call at most (after a stall)
FIRST_CHAT_ID: Final = 700_001
SEED: Final = 7
OUTBOX_PAGE: Final = 10_000  # outbox entries per control API call

TEXT: Final = "text"  # the key kind of free-text messages (their key is the text itself)
# Free texts are unknown commands (plain text at the menu is a generation prompt).
FREE_TEXT_PREFIX: Final = "/u"
ERROR: Final = "error"  # the key of the bot's "something went wrong" reply
# Share of each kind of message after a chat's first /start.
MIX: Final[Mapping[str, float]] = {"/start": 0.1, "/help": 0.1, "/balance": 0.15, TEXT: 0.65}
# Which message key each reply text answers (message ids of services/telegram/locales).
KEY_OF_TEMPLATE: Final[Mapping[str, str]] = {
    "start-welcome": "/start", "start-welcome-back": "/start", "help-text": "/help",
    "balance-text": "/balance", "fallback-hint": TEXT, "something_went_wrong": ERROR,
}
LANGUAGES: Final = ("ru", "en")

ChatKey = tuple[int, str]


@dataclass(frozen=True)
class Message:
    """One message a user sent: its chat and its key (the command, or the free text)."""

    chat_id: int
    key: str


def template_pattern(template: str) -> re.Pattern[str]:
    """Compile a reply template into a regex; the `{text}` field becomes group `text`."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else ("(?P<text>.*?)" if part == TEXT else ".*?")
        for i, part in enumerate(parts))
    return re.compile(regex, re.DOTALL)


_PATTERNS: Final = [
    (key, template_pattern(texts.template(language, name)))
    for language in LANGUAGES
    for name, key in KEY_OF_TEMPLATE.items()
]


def classify(text: str) -> str | None:
    """Return the message key a reply answers (the quoted text for the fallback), or None."""
    for key, pattern in _PATTERNS:
        match = pattern.match(text)  # a reply may go on after its template (a statement)
        if match:
            return match.group(TEXT) if key == TEXT else key
    return None


class Users:
    """Chats that send messages at a steady total rate until `stop` is set."""

    def __init__(self, control: SandboxClient, *, chats: int = CHATS,
                 rate_per_s: float = RATE_PER_S, seed: int = SEED) -> None:
        """Prepare `chats` private chats sending `rate_per_s` messages/s together."""
        self._control = control
        self._chat_ids = [FIRST_CHAT_ID + i for i in range(chats)]
        self._rate_per_s = rate_per_s
        self._random = random.Random(seed)
        self._started: set[int] = set()
        self._seq = 0
        self._attempted = 0
        self.stop = asyncio.Event()
        self.sent: dict[int, Message] = {}  # update_id -> message
        self.expected: Counter[ChatKey] = Counter()
        self.inject_errors = 0
        self.last_error = ""

    @property
    def chats(self) -> int:
        """Return the number of simulated chats."""
        return len(self._chat_ids)

    @property
    def chat_ids(self) -> list[int]:
        """Return the simulated chats' ids."""
        return list(self._chat_ids)

    async def run(self) -> None:
        """Send messages at the target rate until `stop` is set; never stop mid-call."""
        began = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - began) * self._rate_per_s) - self._attempted
            if due > 0:
                await self._send(min(due, MAX_BATCH))
            await wait_event(self.stop, TICK_S)

    async def _send(self, count: int) -> None:
        """Inject `count` messages in one call and record their update ids."""
        messages = [self._next_message() for _ in range(count)]
        self._attempted += count
        try:
            ids = await self._control.inject([self._item(m) for m in messages])
        except (SandboxError, OSError, TimeoutError) as exc:
            self.inject_errors += 1
            self.last_error = str(exc) or type(exc).__name__
            return
        for update_id, message in zip(ids, messages, strict=True):
            if update_id is not None:
                self.sent[update_id] = message
                self.expected[(message.chat_id, message.key)] += 1

    def _next_message(self) -> Message:
        """Pick a chat and what it says: /start first, then the MIX."""
        chat_id = self._random.choice(self._chat_ids)
        if chat_id not in self._started:
            self._started.add(chat_id)
            return Message(chat_id, "/start")
        kind = self._random.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind != TEXT:
            return Message(chat_id, kind)
        self._seq += 1
        return Message(chat_id, f"{FREE_TEXT_PREFIX}{chat_id}-{self._seq}")

    def _item(self, message: Message) -> dict[str, Any]:
        """Return the control API item for a message."""
        return {"kind": "message", "chat_id": message.chat_id, "text": message.key,
                "first_name": _first_name(message.chat_id),
                "language_code": _language(message.chat_id)}


def _first_name(chat_id: int) -> str:
    return f"User{chat_id - FIRST_CHAT_ID}"


def _language(chat_id: int) -> str:
    """Return a chat's language: odd chats speak Russian."""
    return "ru" if chat_id % 2 else "en"


class Replies:
    """The bot's sendMessage calls from the sandbox outbox, counted per (chat, key)."""

    def __init__(self, control: SandboxClient, chat_ids: Collection[int]) -> None:
        """Start reading the outbox from its beginning; count replies in these chats only."""
        self._control = control
        self._chat_ids = frozenset(chat_ids)
        self._after_seq = 0
        self.per_key: Counter[ChatKey] = Counter()
        self.total = 0
        self.errors = 0  # "something went wrong" replies (dead-lettered updates)
        self.other = 0  # replies no known template matches

    async def fetch(self) -> None:
        """Read every outbox entry newer than the last one read."""
        while True:
            items = await self._control.outbox(self._after_seq, OUTBOX_PAGE, method="sendMessage")
            for item in items:
                self._after_seq = max(self._after_seq, int(item["seq"]))
                if item["chat_id"] in self._chat_ids:
                    self._count(item)
            if len(items) < OUTBOX_PAGE:
                return

    def _count(self, item: Mapping[str, Any]) -> None:
        """Count one reply under the key it answers."""
        self.total += 1
        key = classify(str(item.get("text") or ""))
        if key is None:
            self.other += 1
        elif key == ERROR:
            self.errors += 1
        else:
            self.per_key[(int(item["chat_id"]), key)] += 1

    def duplicated(self, expected: Mapping[ChatKey, int]) -> int:
        """Return the replies beyond one per message, per chat and key."""
        return sum(max(0, n - expected.get(key, 0)) for key, n in self.per_key.items())

    def duplicated_texts(self) -> int:
        """Return the fallback replies that quote a (unique) free text more than once."""
        return sum(n - 1 for (_, key), n in self.per_key.items()
                   if key.startswith(FREE_TEXT_PREFIX) and n > 1)

    def unanswered(self, expected: Mapping[ChatKey, int]) -> int:
        """Return the messages without a matching reply."""
        return sum(max(0, n - self.per_key.get(key, 0)) for key, n in expected.items())
