"""Webhook mode: the ingress route on every instance, and the leader's setWebhook upkeep.

Ingress (`POST /telegram/webhook`, any instance, leader or not)
    1. secret header compared in constant time          -> 401 on mismatch (any bytes)
    2. body over MAX_BODY_BYTES                          -> 413 (aiohttp refuses to read it)
       body not received within BODY_READ_TIMEOUT_S      -> 408, connection closed
    3. not a JSON object with an integer update_id       -> 400 with the reason
    4. INSERT ... ON CONFLICT (update_id) DO NOTHING + NOTIFY, committed
    5. 200 only after the commit; database unavailable   -> 503, so Telegram retries
    A crash before step 5 loses nothing: Telegram has no 200 and sends the update again.

Secret
    `Settings.webhook_secret_token`: WEBHOOK_SECRET_TOKEN, or derived from the bot token by
    config when unset; the URL never contains the token or the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence

import psycopg
from aiogram import Bot
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from config import Settings
from services.telegram.inbox import BadUpdate, GroupCommitWriter, InboxStore, parse_update
from services.telegram.pressure import IngressPressure
from services.telegram.service_state import ServiceStateStore
from supervisor.aio import wait_event
from supervisor.election import Leadership
from supervisor.http import json_response
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's own limit for a webhook's parallel connections; ours are cheap inserts.
MAX_CONNECTIONS = 100
REVERIFY_INTERVAL_S = 600.0
# Telegram sends an update (a few KB) in one go; a body still incomplete after this is stalled
# or a slow-loris, and would otherwise hold its connection and handler forever.
BODY_READ_TIMEOUT_S = 10.0
OK_BODY = b'{"ok":true}'
STATE_KEY = "telegram_webhook_fingerprint"


def webhook_url(settings: Settings) -> str:
    """Return the public URL Telegram posts updates to."""
    return settings.webhook_base_url + WEBHOOK_PATH


class WebhookIngress:
    """Accept Telegram's webhook POSTs durably on any instance."""

    def __init__(self, pool: AsyncConnectionPool, state: RuntimeState, *, secret: str,
                 inbox: InboxStore, pressure: IngressPressure | None = None) -> None:
        self._writer = GroupCommitWriter(pool, inbox)
        self._pressure = pressure or IngressPressure()
        self._state = state
        self._secret = secret.encode()

    def install(self, app: web.Application) -> None:
        """Add the webhook route to the HTTP app."""
        app.router.add_post(WEBHOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Store one update, answering 200 only once it is durable."""
        # aiohttp keeps header bytes that are not UTF-8 as surrogates: compare the bytes sent.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret):
            return _refuse(401, "wrong or missing secret token")
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, "body larger than 1 MB")
        except TimeoutError:
            stalled = _refuse(408, f"body not received within {BODY_READ_TIMEOUT_S} s")
            stalled.force_close()  # the rest of the body may still come: drop the connection
            return stalled
        try:
            incoming = parse_update(body)
        except BadUpdate as exc:
            return _refuse(400, str(exc))
        self._pressure.note()
        try:
            await self._writer.store(incoming)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            self._state.record_error("webhook", exc)
            logger.error("webhook_store_failed", extra={"error": str(exc)[:200]})
            return _refuse(503, "storage unavailable, retry later")
        self._state.count("webhook_updates")
        return web.Response(body=OK_BODY, content_type="application/json")


def _refuse(status: int, reason: str) -> web.Response:
    return json_response({"ok": False, "error": reason}, status=status)


class WebhookRegistrar:
    """Keep Telegram's webhook pointed at us while this instance leads (webhook mode)."""

    name = "telegram-webhook"

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, *, url: str, secret: str,
                 allowed_updates: Sequence[str], service_state: ServiceStateStore) -> None:
        self._pool = pool
        self._service_state = service_state
        self._bot = bot
        self._url = url
        self._secret = secret
        self._allowed = sorted(allowed_updates)
        # What we last asked Telegram for; the secret is hashed (Telegram never reveals it).
        self._fingerprint = hashlib.sha256(
            "\n".join([url, secret, *self._allowed]).encode()).hexdigest()

    async def run(self, leadership: Leadership | None) -> None:
        """Check the webhook now and every REVERIFY_INTERVAL_S."""
        assert leadership is not None, "leader-only service"
        while not leadership.draining.is_set():
            await self.ensure(leadership)
            await wait_event(leadership.draining, REVERIFY_INTERVAL_S)

    async def ensure(self, leadership: Leadership) -> bool:
        """Call setWebhook if Telegram's webhook differs from ours; return whether it did."""
        info = await self._bot.get_webhook_info()
        async with self._pool.connection() as conn:
            fingerprint = await self._service_state.get_state(conn, STATE_KEY)
        same = (info.url == self._url and sorted(info.allowed_updates or []) == self._allowed
                and fingerprint == self._fingerprint)
        if same:
            return False
        await self._bot.set_webhook(self._url, secret_token=self._secret,
                                    allowed_updates=self._allowed,
                                    max_connections=MAX_CONNECTIONS, drop_pending_updates=False)
        async with leadership.fenced(self._pool) as conn:
            await self._service_state.put_state(conn, STATE_KEY, self._fingerprint)
        logger.info("webhook_set", extra={"url": self._url, "allowed_updates": self._allowed})
        return True
