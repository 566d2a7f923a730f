"""The product's screens on the leader's loop, in-process, through the Telegram sandbox.

`ChatBot` runs the poller and the inbox dispatcher with the product's handlers against a
TelegramSandbox; `Person` is one private chat that types and presses, waiting for each update
to be handled (its inbox row done) and returning the screen the bot left: the newest bot
message as the sandbox holds it now (text and buttons).
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from aiogram import Bot
from psycopg_pool import AsyncConnectionPool

from sandbox.telegram import SandboxClient, TelegramSandbox
from services.accounts import Accounts
from services.admin.service import Admin
from services.catalog import get_catalog
from services.composition import (
    FSM_DATA_CACHE_SIZE,
    FSM_STATE_CACHE_SIZE,
    KNOWN_USERS_CACHE_SIZE,
)
from services.delivery.status import StatusBoard
from services.generation import JobLimits
from services.generation.service import Generations
from services.payments.service import Payments, PaymentTerms
from services.storefront import Storefront
from services.telegram import handlers
from services.telegram.dispatcher import CurrentTerm, InboxDispatcher
from services.telegram.fsm_storage import PostgresStorage
from services.telegram.handlers import build_dispatcher
from services.telegram.handlers.support import Support
from services.telegram.notices import dead_letter_notice
from services.telegram.poller import TelegramPoller
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState
from tests.helpers import BOT_TOKEN, eventually, inbox_store, lead

MARKUP = Decimal("2.0")
OPERATORS = (1001, 1002)
PAYMENT_TERMS = PaymentTerms(operators=OPERATORS, bank="Test Bank", card_holder="Ivan Petrov",
                             phone="+79990001122", card="2200 0000 0000 0001", min_rub=100,
                             max_rub=100_000, pending_s=86_400, stars_rub_rate=Decimal("1.2"))
STATUS_SQL = b"SELECT status FROM telegram_updates WHERE update_id = %s"
TROUBLE_SQL = b"""
SELECT update_id, status, attempts, last_error FROM telegram_updates
 WHERE status <> 'done' OR attempts > 1 OR last_error IS NOT NULL
"""


@dataclass
class Screen:
    """A bot message as it is now: its text and its buttons (label, callback data or URL)."""

    message_id: int
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def data(self) -> list[str]:
        """Return the callback data of every button."""
        return [data for _, data in self.buttons if not data.startswith("https://")]

    def find(self, label: str) -> str:
        """Return the callback data of the first button whose label contains `label`."""
        for text, data in self.buttons:
            if label in text:
                return data
        raise AssertionError(f"no button {label!r} on {self.text!r}: {self.buttons}")


def fresh_routers() -> None:
    """Re-create the feature routers (a router joins one Dispatcher per process)."""
    for module in handlers.FEATURES:
        importlib.reload(module)


class ChatBot:
    """Poller + dispatcher + product handlers of one leader, until closed."""

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, sandbox: TelegramSandbox,
                 control: SandboxClient, *, support: Support | None = None,
                 leadership: Leadership | None = None,
                 status_board: StatusBoard | None = None) -> None:
        """Lead with `leadership` when given (the engine's, to run beside it), else alone;
        the confirm handler notes its edits on status_board (the engine's) when given."""
        self.pool = pool
        self._leadership = leadership
        self.status_board = status_board
        self.bot = bot
        self.sandbox = sandbox
        self.control = control
        self.support = support or Support(username="kiebot_help", text="We answer in an hour.")
        self.state = RuntimeState("test", "polling", "test")
        self.term = CurrentTerm()
        self.storefront = Storefront(pool, get_catalog(), markup=MARKUP,
                                     leadership=lambda: self.term.leadership)
        self.payments = Payments(pool, bot, PAYMENT_TERMS,
                                 leadership=lambda: self.term.leadership)
        self.admin = Admin(pool, self.storefront, operators=OPERATORS, markup=MARKUP,
                           lease_name="test-lease", leadership=lambda: self.term.leadership)
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Start polling and dispatching as the leader."""
        fresh_routers()
        accounts = Accounts(self.pool, leadership=lambda: self.term.leadership,
                            known_cache_size=KNOWN_USERS_CACHE_SIZE)
        generations = Generations(self.pool, leadership=lambda: self.term.leadership,
                                  storefront=self.storefront,
                                  limits=JobLimits(max_active_jobs=2, free_daily_quota=5))
        storage = PostgresStorage(self.pool, fence=self.term.fence_params,
                                  state_cache_size=FSM_STATE_CACHE_SIZE,
                                  data_cache_size=FSM_DATA_CACHE_SIZE,
                                  cache_scope=lambda: self.term.leadership)
        dp = build_dispatcher(storage,
                              accounts=accounts, storefront=self.storefront,
                              support=self.support, generations=generations,
                              payments=self.payments, admin=self.admin,
                              **({"status_board": self.status_board} if self.status_board
                                 else {}))
        self.leadership = self._leadership or await lead(self.pool)
        self.allowed_updates = dp.resolve_used_update_types()
        poller = TelegramPoller(self.pool, self.state, api_base=self.sandbox.base_url,
                                token=BOT_TOKEN, allowed_updates=self.allowed_updates,
                                inbox=inbox_store())

        async def listen_connect() -> psycopg.AsyncConnection:
            return await psycopg.AsyncConnection.connect(self.pool.conninfo, autocommit=True)

        dispatcher = InboxDispatcher(self.pool, self.bot, dp, self.state, inbox=inbox_store(),
                                     term=self.term, listen_connect=listen_connect,
                                     concurrency=8,
                                     on_dead_letter=dead_letter_notice(self.bot, accounts))
        self._task = asyncio.gather(poller.run(self.leadership),
                                    dispatcher.run(self.leadership))

    async def stop(self) -> None:
        """Drain and stop; leave fresh routers behind for the next Dispatcher."""
        self.leadership.draining.set()
        try:
            if self._task is not None:
                await asyncio.wait_for(self._task, 15)
        finally:
            fresh_routers()

    async def trouble(self) -> list[tuple[Any, ...]]:
        """Return updates that failed, were retried or are not done."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(TROUBLE_SQL)
            return await cur.fetchall()

    def person(self, chat_id: int, *, language: str = "en", name: str = "Ann") -> Person:
        """Return one private chat's user."""
        return Person(self, chat_id, language, name)


class Person:
    """One user in a private chat with the bot."""

    def __init__(self, chatbot: ChatBot, chat_id: int, language: str, name: str) -> None:
        self.chatbot = chatbot
        self.chat_id = chat_id
        self.language = language
        self.name = name
        self.presses = 0

    def _who(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.chat_id,
                "language_code": self.language, "first_name": self.name}

    async def send(self, text: str) -> Screen:
        """Type a message; return the screen once it is handled."""
        (update_id,) = await self.chatbot.control.inject(
            [{"kind": "message", "text": text, **self._who()}])
        return await self._handled(update_id)

    async def send_item(self, kind: str, **fields: Any) -> Screen:
        """Send any inject item (a photo, a document, a raw update); return the screen after."""
        (update_id,) = await self.chatbot.control.inject([{"kind": kind, **self._who(),
                                                           **fields}])
        return await self._handled(update_id)

    async def press(self, data: str, *, message_id: int | None = None) -> Screen:
        """Press a button (on the newest bot message by default); return the screen after."""
        (update_id,) = await self.chatbot.control.inject(
            [{"kind": "callback", "data": data, "message_id": message_id, **self._who()}])
        self.presses += 1
        return await self._handled(update_id)

    async def log(self) -> list[dict[str, Any]]:
        """Return every bot action in this chat."""
        return await self.chatbot.control.chat_messages(self.chat_id)

    async def _handled(self, update_id: int | None) -> Screen:
        assert update_id is not None

        async def done() -> bool:
            async with self.chatbot.pool.connection() as conn:
                cur = await conn.execute(STATUS_SQL, (update_id,))
                row = await cur.fetchone()
            return bool(row and row[0] in ("done", "failed"))

        await eventually(done, timeout_s=15, interval_s=0.005, what=f"update {update_id}")
        return await self.screen()

    async def screen(self) -> Screen:
        """Return the newest bot message with text, as it is now."""
        log = await self.log()
        ids = [e["message_id"] for e in log if e["method"] in ("sendMessage", "editMessageText")]
        message = await self.chatbot.control.message(self.chat_id, ids[-1])
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        buttons = [(b["text"], b.get("callback_data") or b.get("url", "")) for row in rows
                   for b in row]
        return Screen(message_id=ids[-1], text=message.get("text", ""), buttons=buttons)
