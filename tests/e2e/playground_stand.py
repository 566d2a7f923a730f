"""The playground's page server against the in-process Telegram sandbox, the test playing the
bot's part through the Bot API: what both playground test modules share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from sandbox.harness.env import BOT_TOKEN
from sandbox.harness.playground.app import Person, make_app
from sandbox.telegram import SandboxConfig, TelegramSandbox

CHAT_ID: Final = 4242
PERSON: Final = Person(CHAT_ID, "You", "en")


@dataclass
class Stand:
    """The page's API, the sandbox behind it, and the Bot API as the bot."""

    page: TestClient[Any, Any]
    sandbox: TelegramSandbox
    http: aiohttp.ClientSession

    async def bot(self, method: str, **params: Any) -> Any:
        """Call the Bot API as the bot; return its result."""
        url = f"{self.sandbox.base_url}/bot{BOT_TOKEN}/{method}"
        async with self.http.post(url, json=params) as response:
            body = await response.json()
        assert body["ok"], body
        return body["result"]

    async def bot_upload(self, method: str, field: str, data: bytes, name: str,
                         **params: Any) -> Any:
        """Call a send* method with an uploaded file, as aiogram does (multipart)."""
        form = aiohttp.FormData({"chat_id": str(CHAT_ID), **params})
        form.add_field(field, data, filename=name)
        async with self.http.post(f"{self.sandbox.base_url}/bot{BOT_TOKEN}/{method}",
                                  data=form) as response:
            body = await response.json()
        assert body["ok"], body
        return body["result"]

    async def updates(self) -> list[dict[str, Any]]:
        """Return the updates the bot has not confirmed yet (and confirm them)."""
        found: list[dict[str, Any]] = await self.bot("getUpdates", timeout=0)
        if found:
            await self.bot("getUpdates", offset=found[-1]["update_id"] + 1, timeout=0)
        return found


@contextlib.asynccontextmanager
async def open_stand() -> AsyncIterator[Stand]:
    """Start the sandbox and the page server; stop both at the end."""
    # Rate limits off: the page is under test, not the bot's pace.
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sandbox, \
            aiohttp.ClientSession() as http:
        client = TestClient(TestServer(make_app(sandbox.base_url, BOT_TOKEN, PERSON)))
        await client.start_server()
        try:
            yield Stand(client, sandbox, http)
        finally:
            await client.close()
