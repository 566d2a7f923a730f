"""Simulated shoppers for the demo: users who browse the catalog, fill a form and generate.

Each shopper is one private chat that reacts to what the bot shows, as a person would:

    /start (the menu) -> a category (its `cat:` button) -> a model (`mdl:`) -> the card's
    Generate (`gen:`) -> the form: a choice button (`gf:p|y|n`) for a choice, for a typed
    question the lowest number it allows, an https link for a media input, else a prompt
    -> the confirm card's Generate (`gf:g`) -> waits for the result (a photo, video, audio or
    document) -> /start again, until the demo stops.

It knows the screens by their buttons' callback data prefixes (services/telegram/ui.py and
the form engine's verbs), so new texts do not confuse it; a screen it cannot read (or a
screen that does not change for SCREEN_TIMEOUT_S) sends it back to /start. Every update it
sends is recorded (`sent`), so the demo checks that none was lost, like the chat users'.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sandbox.harness.demo_store import SeededUser
from sandbox.telegram import SandboxClient, SandboxError, SandboxTimeout
from supervisor.aio import wait_event

SHOPPERS: Final = 10
FIRST_SHOPPER_ID: Final = 800_001
SEED: Final = 11
SCREEN_TIMEOUT_S: Final = 10.0  # a screen that does not come within this: back to /start
RESULT_TIMEOUT_S: Final = 30.0  # a generation's result (video tasks take 8 s, then delivery)
THINK_S: Final = (0.2, 1.0)  # a person reads a screen this long before tapping
POLL_S: Final = 1.0  # one long poll of the chat's log
BETWEEN_VISITS_S: Final = (1.0, 4.0)  # a shopper comes back after this long
MAX_STEPS: Final = 15  # screens per visit; a form that never gets to Generate starts over
PROMPTS: Final = ("a red fox in the snow", "a lighthouse at dawn, oil painting",
                  "a cat astronaut, studio light", "a calm lake in the mountains")
SAMPLE_LINKS: Final[Mapping[str, str]] = {
    "video": "https://cdn.example.test/in.mp4", "audio": "https://cdn.example.test/in.mp3",
    "image": "https://cdn.example.test/in.png"}
# Where a category's weight is higher, more shoppers go (most people make pictures).
CATEGORY_WEIGHTS: Final[Mapping[str, float]] = {
    "free": 3.0, "image": 3.0, "video": 1.0, "audio": 1.0, "upscale": 0.5}
CHOICE_VERBS: Final = frozenset({"p", "y", "n"})  # the form's PICK, YES, NO
GO_VERB: Final = "g"
MEDIA_METHODS: Final = frozenset({"sendPhoto", "sendVideo", "sendAudio", "sendDocument",
                                  "sendAnimation", "sendVoice", "sendMediaGroup"})
NUMBER_RANGE: Final = re.compile(r"from (-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)")


class Shoppers:
    """`SHOPPERS` chats that browse and generate until `stop` is set."""

    def __init__(self, control: SandboxClient, stop: asyncio.Event, *,
                 count: int = SHOPPERS, seed: int = SEED) -> None:
        self.control = control
        self.stop = stop
        self.random = random.Random(seed)
        self.chat_ids = [FIRST_SHOPPER_ID + i for i in range(count)]
        self.sent: list[int] = []  # update ids of everything the shoppers sent
        self.confirmed = 0  # confirm taps (Generate on the confirm card)
        self.results = 0  # media results that reached a shopper
        self.errors = 0

    def profiles(self) -> list[SeededUser]:
        """Return who the shoppers are, to register them with a starting balance."""
        return [SeededUser(chat_id, f"Shopper{chat_id - FIRST_SHOPPER_ID}", "en")
                for chat_id in self.chat_ids]

    async def run(self) -> None:
        """Run every shopper until `stop` is set."""
        await asyncio.gather(*(self._shop(chat_id) for chat_id in self.chat_ids))

    async def _shop(self, chat_id: int) -> None:
        """One shopper's session: screens in, taps and answers out."""
        shopper = _Shopper(self, chat_id)
        while not self.stop.is_set():
            try:
                await shopper.visit()
            except (SandboxError, OSError, TimeoutError):
                self.errors += 1
            await wait_event(self.stop, self.random.uniform(*BETWEEN_VISITS_S))

    async def inject(self, item: dict[str, Any]) -> None:
        """Send one item as a shopper; record its update id."""
        ids = await self.control.inject([item])
        self.sent.extend(update_id for update_id in ids if update_id is not None)


class _Shopper:
    """What one shopper saw last and does next."""

    def __init__(self, crowd: Shoppers, chat_id: int) -> None:
        self._crowd = crowd
        self._control = crowd.control
        self._random = crowd.random
        self._chat_id = chat_id
        self._seen = 0  # entries of the chat log read so far
        self._after_seq = 0

    async def visit(self) -> None:
        """Open the menu, then follow screens until a generation ends or a screen is unclear."""
        await self._send_text("/start")
        for _ in range(MAX_STEPS):
            if self._crowd.stop.is_set():
                return
            entries = await self._next_entries(SCREEN_TIMEOUT_S)
            screen = await self._latest_screen(entries)
            if screen is None or not await self._act(screen):
                return

    async def _act(self, message: Mapping[str, Any]) -> bool:
        """Answer one screen; return False when the shopper should start over."""
        await wait_event(self._crowd.stop, self._random.uniform(*THINK_S))
        buttons = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                   for b in row if isinstance(b.get("callback_data"), str)]
        by_prefix: dict[str, list[Mapping[str, Any]]] = {}
        for b in buttons:
            by_prefix.setdefault(b["callback_data"].split(":", 1)[0], []).append(b)
        form = [(b["callback_data"].split(":")[1:2] or [""])[0] for b in by_prefix.get("gf", [])]
        message_id = int(message["message_id"])
        if GO_VERB in form:
            go = next(b for b in by_prefix["gf"] if b["callback_data"].split(":")[1] == GO_VERB)
            await self._press(message_id, go)
            self._crowd.confirmed += 1
            await self._await_result()
            return False
        if choices := [b for b in by_prefix.get("gf", [])
                       if b["callback_data"].split(":")[1] in CHOICE_VERBS]:
            await self._press(message_id, self._random.choice(choices))
        elif by_prefix.get("gen"):
            await self._press(message_id, by_prefix["gen"][0])
        elif by_prefix.get("mdl"):
            await self._press(message_id, self._random.choice(by_prefix["mdl"]))
        elif by_prefix.get("cat"):
            await self._press(message_id, self._pick_category(by_prefix["cat"]))
        elif form or _is_question(message):
            await self._send_text(self._answer(str(message.get("text") or "")))
        else:
            return False
        return True

    def _pick_category(self, buttons: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """Pick a category button, weighted by CATEGORY_WEIGHTS."""
        weights = [CATEGORY_WEIGHTS.get(b["callback_data"].split(":")[1], 1.0) for b in buttons]
        return self._random.choices(list(buttons), weights=weights)[0]

    def _answer(self, question: str) -> str:
        """Return a valid answer to a typed question of the form."""
        if "https link" in question:
            kind = next((k for k in ("video", "audio") if k in question), "image")
            return SAMPLE_LINKS[kind]
        numbers = NUMBER_RANGE.search(question)
        if numbers:
            return numbers.group(1)
        if "number" in question:
            return "1"
        return self._random.choice(PROMPTS)

    async def _await_result(self) -> None:
        """Wait until a result reaches the chat (or RESULT_TIMEOUT_S passes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESULT_TIMEOUT_S
        while (left := deadline - loop.time()) > 0 and not self._crowd.stop.is_set():
            entries = await self._next_entries(min(left, SCREEN_TIMEOUT_S))
            if any(entry.get("method") in MEDIA_METHODS for entry in entries):
                self._crowd.results += 1
                return

    async def _next_entries(self, timeout_s: float) -> list[dict[str, Any]]:
        """Return the bot's new actions in this chat (waiting up to timeout_s for one, in
        short polls so that the demo's stop is noticed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self._control.wait(chat_id=self._chat_id, chat_at_least=self._seen + 1,
                                         timeout_s=min(POLL_S, max(deadline - loop.time(), 0.1)))
                break
            except SandboxTimeout:
                if self._crowd.stop.is_set() or loop.time() >= deadline:
                    return []
        chat = await self._control.chat(self._chat_id, after_seq=self._after_seq)
        self._seen = int(chat["total"])
        entries: list[dict[str, Any]] = chat["messages"]
        if entries:
            self._after_seq = max(int(entry["seq"]) for entry in entries)
        return entries

    async def _latest_screen(self, entries: Sequence[Mapping[str, Any]]
                             ) -> Mapping[str, Any] | None:
        """Return the newest message the bot sent or edited, as it is now."""
        for entry in reversed(entries):
            if entry.get("method", "").startswith(("send", "edit")) and entry.get("message_id"):
                try:
                    return await self._control.message(self._chat_id, int(entry["message_id"]))
                except SandboxError:
                    return None  # deleted meanwhile
        return None

    async def _send_text(self, text: str) -> None:
        await self._crowd.inject({"kind": "message", "chat_id": self._chat_id, "text": text,
                                  **self._who()})

    async def _press(self, message_id: int, button: Mapping[str, Any]) -> None:
        await self._crowd.inject({"kind": "callback", "chat_id": self._chat_id,
                                  "message_id": message_id, "data": button["callback_data"],
                                  **self._who()})

    def _who(self) -> dict[str, str]:
        return {"first_name": f"Shopper{self._chat_id - FIRST_SHOPPER_ID}",
                "language_code": "en"}


def _is_question(message: Mapping[str, Any]) -> bool:
    """Tell whether a screen asks for typed input (the form's questions say "send")."""
    return ": send " in str(message.get("text") or "")
