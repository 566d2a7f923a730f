"""The Telegram Bot API sandbox server: an aiohttp application serving the Bot API."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from sandbox.common.responses import json_response
from sandbox.common.server import SandboxServer
from sandbox.telegram.config import SandboxConfig
from sandbox.telegram.control_api import ControlApi
from sandbox.telegram.errors import ApiError, mask_token, not_found, unauthorized
from sandbox.telegram.methods import (
    count_error,
    find_method,
    install_webhook,
    remove_webhook,
    run_method,
)
from sandbox.telegram.params import parse_request
from sandbox.telegram.payments import PaymentControl
from sandbox.telegram.state import POLL_WAKE_STOP, BotState

DEFAULT_USERNAME: Final[str] = "sandbox_bot"
DEFAULT_FIRST_NAME: Final[str] = "Sandbox Bot"
CLIENT_MAX_BYTES: Final[int] = 52 * 1024 * 1024
TOKEN_RE: Final[re.Pattern[str]] = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
RATE_CONFIG_KEYS: Final[frozenset[str]] = frozenset(
    {
        "per_chat_rate_per_s",
        "per_chat_burst",
        "group_rate_per_s",
        "group_burst",
        "global_rate_per_s",
        "global_burst",
    }
)

log = logging.getLogger("sandbox.telegram")


class TelegramSandbox(SandboxServer):
    """Serve a local Telegram Bot API for the given bot tokens plus a /_sandbox control API."""

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        username: str = DEFAULT_USERNAME,
        first_name: str = DEFAULT_FIRST_NAME,
        usernames: Mapping[str, str] | None = None,
        config: SandboxConfig | None = None,
        first_update_id: int = 1,
    ) -> None:
        """Create bots for `tokens` (id = numeric token prefix); the first gets `username`."""
        if not tokens:
            raise ValueError("at least one bot token is required")
        self.config = config or SandboxConfig()
        self._initial_config = self.config.copy()
        self._bots_by_token: dict[str, BotState] = {}
        self._bots_by_id: dict[int, BotState] = {}
        for index, token in enumerate(tokens):
            if not TOKEN_RE.match(token):
                raise ValueError(f"malformed bot token {mask_token(token)!r}")
            bot_id = int(token.split(":", 1)[0])
            if bot_id in self._bots_by_id:
                raise ValueError(f"duplicate bot id {bot_id}")
            name = (usernames or {}).get(token) or (
                username if index == 0 else f"sandbox_{bot_id}_bot"
            )
            bot = BotState(token, name, first_name, self.config, first_update_id)
            self._bots_by_token[token] = bot
            self._bots_by_id[bot_id] = bot
        self._default_bot = self._bots_by_token[tokens[0]]
        super().__init__(self._build_app())

    # ------------------------------------------------------------ public API

    @property
    def bots(self) -> list[BotState]:
        """Return every bot's state in token order."""
        return list(self._bots_by_token.values())

    def bot(self, bot_id: int | None = None) -> BotState:
        """Return one bot's state (default: the first token); KeyError when unknown."""
        if bot_id is None:
            return self._default_bot
        return self._bots_by_id[bot_id]

    def log_fields(self) -> dict[str, Any]:
        """Add the bot ids (never the tokens) to the start line."""
        return {"bot_ids": list(self._bots_by_id)}

    async def on_started(self) -> None:
        """Resume webhook delivery of bots whose webhook survived a stop."""
        for bot in self._bots_by_token.values():
            if bot.webhook is not None and bot.dispatcher is None:
                await install_webhook(bot, bot.webhook)

    async def on_stopping(self) -> None:
        """Release long polls and waiters and stop webhook delivery."""
        for bot in self._bots_by_token.values():
            bot.wake_poll(POLL_WAKE_STOP)
            bot.waiters.release_all()
            if bot.dispatcher is not None:
                await bot.dispatcher.stop()
                bot.dispatcher = None

    def update_config(self, changes: dict[str, Any]) -> None:
        """Apply configuration changes at run time (rate limits restart from full buckets)."""
        self.config.update(changes)
        if RATE_CONFIG_KEYS & set(changes):
            for bot in self._bots_by_token.values():
                bot.limiter.reconfigure()

    async def reset(
        self, bot_id: int | None = None, *, webhook: bool = False, config: bool = False
    ) -> None:
        """Clear recorded state of one bot (or all); optionally the webhook and config too."""
        bots = [self.bot(bot_id)] if bot_id is not None else self.bots
        if config:
            self.update_config(self._initial_config.to_dict())
        for bot in bots:
            async with bot.webhook_lock:
                settings = bot.webhook
                await remove_webhook(bot)
                bot.clear()
                if webhook:
                    bot.allowed_updates = None
                elif settings is not None:
                    await install_webhook(bot, settings)
        log.info("sandbox reset", extra={"bot_id": bot_id, "webhook": webhook, "config": config})

    # ------------------------------------------------------------ HTTP

    def _build_app(self) -> web.Application:
        """Create the aiohttp application with Bot API, file and control routes."""
        app = web.Application(client_max_size=CLIENT_MAX_BYTES)
        app.add_routes(ControlApi(self).routes())
        app.add_routes(PaymentControl(self).routes())
        app.router.add_route("GET", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        return app

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Serve one Bot API call."""
        bot = self._bots_by_token.get(request.match_info["token"])
        if bot is None:
            return unauthorized().response()
        spec = find_method(request.match_info["method"])
        if spec is None:
            count_error(bot, 404)
            return not_found().response()
        try:
            params = await parse_request(request)
        except ApiError as exc:
            count_error(bot, exc.code)
            return exc.response()
        except web.HTTPRequestEntityTooLarge:
            count_error(bot, 413)
            return ApiError(413, "Request Entity Too Large").response()
        try:
            status, body = await run_method(bot, spec, params)
        except Exception:
            log.exception("method failed", extra={"bot_id": bot.bot_id, "method": spec.name})
            count_error(bot, 500)
            return ApiError(500, "Internal Server Error").response()
        return json_response(body, status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        """Serve a stored file's bytes at /file/bot<token>/<file_path>."""
        bot = self._bots_by_token.get(request.match_info["token"])
        if bot is None:
            return unauthorized().response()
        record = bot.files.by_path.get(request.match_info["path"])
        if record is None or record.data is None:
            return not_found().response()
        return web.Response(
            body=record.data, content_type=record.mime_type or "application/octet-stream"
        )

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        """Answer any other path like Telegram does."""
        return not_found().response()
