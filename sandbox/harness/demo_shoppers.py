"""Simulated shoppers for the demo: users who browse the catalog, fill a form and generate.

Each shopper is one private chat that reacts to what the bot shows, as a person would.
Shoppers start with no money. A shopper without money (new, or whose last top-up was
rejected), and now and then one with money, first tops up by bank transfer:

    /start -> Top up (`topup`) -> a preset amount (`tamt:<rub>`), or Another amount (`toth`)
    and a typed one -> the transfer instructions -> a receipt photo -> waits for the
    operator's decision (the bot's "Top-up #n is approved / was rejected" message)

(the simulated operator, demo_operator, decides it). Then, and on every other visit:

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

from sandbox.harness.demo_users import template_pattern
from sandbox.telegram import SandboxClient, SandboxError, SandboxTimeout
from services.telegram import texts
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
# Where a category's weight is higher, more shoppers go (most people make pictures; with the
# money they topped up, most pay).
CATEGORY_WEIGHTS: Final[Mapping[str, float]] = {
    "free": 1.0, "image": 3.0, "video": 1.0, "audio": 1.0, "upscale": 0.5}
CHOICE_VERBS: Final = frozenset({"p", "y", "n"})  # the form's PICK, YES, NO
GO_VERB: Final = "g"
MEDIA_METHODS: Final = frozenset({"sendPhoto", "sendVideo", "sendAudio", "sendDocument",
                                  "sendAnimation", "sendVoice", "sendMediaGroup"})
NUMBER_RANGE: Final = re.compile(r"from (-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)")
# Top-ups: a shopper with money tops up again on this share of visits; this share of top-ups
# is a typed amount (else a preset); typed amounts are whole roubles in this range.
TOPUP_AGAIN_SHARE: Final = 0.15
TYPED_SHARE: Final = 0.3
TYPED_RUB: Final = (150, 2500)
DECISION_TIMEOUT_S: Final = 60.0  # the operator's decision reaches the shopper within this
LANGUAGE: Final = "en"
APPROVED: Final = template_pattern(texts.template(LANGUAGE, "topup-user-approved"))
REJECTED: Final = template_pattern(texts.template(LANGUAGE, "topup-user-rejected"))


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
        self.receipts = 0  # receipts sent for a top-up
        self.approved_seen = 0  # top-up decisions the shoppers were told
        self.rejected_seen = 0
        self.errors = 0

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
        self._has_money = False  # told of an approved top-up (and not rejected since)

    async def visit(self) -> None:
        """Top up if need be; open the menu, then follow screens until a generation ends or a
        screen is unclear."""
        if not self._has_money or self._random.random() < TOPUP_AGAIN_SHARE:
            await self.top_up()
            return
        await self._send_text("/start")
        for _ in range(MAX_STEPS):
            if self._crowd.stop.is_set():
                return
            screen = await self._next_screen()
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
        elif by_prefix.get("cat") and by_prefix.get("topup"):  # the menu: its last model
            await self._press(message_id, self._pick_category(by_prefix["cat"]))  # aside
        elif by_prefix.get("mdl"):
            await self._press(message_id, self._random.choice(by_prefix["mdl"]))
        elif by_prefix.get("cat"):
            await self._press(message_id, self._pick_category(by_prefix["cat"]))
        elif form or _is_question(message):
            await self._send_text(self._answer(str(message.get("text") or "")))
        else:
            return False
        return True

    async def top_up(self) -> None:
        """Ask for a top-up by transfer, send the receipt and wait for the operator."""
        await self._send_text("/start")
        menu = await self._next_screen()
        if menu is None or not (top_up := _button(menu, "topup")):
            return
        await self._press(int(menu["message_id"]), top_up)
        amounts = await self._next_screen()
        presets = [b for b in _buttons(amounts) if b["callback_data"].startswith("tamt:")]
        if amounts is None or not presets:
            return
        await wait_event(self._crowd.stop, self._random.uniform(*THINK_S))
        other = _button(amounts, "toth")
        if other and self._random.random() < TYPED_SHARE:
            await self._press(int(amounts["message_id"]), other)
            if await self._next_screen() is None:
                return
            await self._send_text(str(self._random.randrange(*TYPED_RUB, 50)))
        else:
            await self._press(int(amounts["message_id"]), self._random.choice(presets))
        instructions = await self._next_screen()
        if instructions is None or "KB-" not in str(instructions.get("text") or ""):
            return  # not the transfer instructions: start over next visit
        await wait_event(self._crowd.stop, self._random.uniform(*THINK_S))
        await self._crowd.inject({"kind": "photo", "chat_id": self._chat_id, **self._who()})
        self._crowd.receipts += 1
        await self._await_decision()

    async def _await_decision(self) -> None:
        """Wait until the bot tells the operator's decision (or DECISION_TIMEOUT_S passes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DECISION_TIMEOUT_S
        while (left := deadline - loop.time()) > 0 and not self._crowd.stop.is_set():
            for entry in await self._next_entries(min(left, SCREEN_TIMEOUT_S)):
                text = str(entry.get("text") or "")
                if entry.get("method") != "sendMessage":
                    continue
                if APPROVED.match(text):
                    self._crowd.approved_seen += 1
                    self._has_money = True
                    return
                if REJECTED.match(text):
                    self._crowd.rejected_seen += 1
                    self._has_money = False
                    return

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

    async def _next_screen(self) -> Mapping[str, Any] | None:
        """Return the next message the bot sends or edits here (skipping answers to presses),
        or None when none comes within SCREEN_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SCREEN_TIMEOUT_S
        while (left := deadline - loop.time()) > 0 and not self._crowd.stop.is_set():
            screen = await self._latest_screen(await self._next_entries(left))
            if screen is not None:
                return screen
        return None

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
                "language_code": LANGUAGE}


def _buttons(message: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Return a message's buttons that carry callback data."""
    rows = ((message or {}).get("reply_markup") or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row if isinstance(b.get("callback_data"), str)]


def _button(message: Mapping[str, Any] | None, data: str) -> Mapping[str, Any] | None:
    """Return the button whose callback data is `data`, or None."""
    return next((b for b in _buttons(message) if b["callback_data"] == data), None)


def _is_question(message: Mapping[str, Any]) -> bool:
    """Tell whether a screen asks for typed input (the form's questions say "send")."""
    return ": send " in str(message.get("text") or "")
