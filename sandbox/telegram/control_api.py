"""HTTP handlers of the test control API mounted under /_sandbox/ (no token needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from sandbox.common.responses import ControlError, control_errors, dump, json_body, query_int
from sandbox.common.waiters import parse_bounds, wait_timeout_s
from sandbox.telegram.faults import parse_fault
from sandbox.telegram.inject import InjectError, inject
from sandbox.telegram.state import BotState

if TYPE_CHECKING:
    from sandbox.telegram.server import TelegramSandbox

CONTROL_PREFIX: Final[str] = "/_sandbox"
DEFAULT_OUTBOX_LIMIT: Final[int] = 1_000
MAX_OUTBOX_LIMIT: Final[int] = 10_000
MAX_INJECT_ITEMS: Final[int] = 10_000
WAIT_RESERVED_PARAMS: Final[frozenset[str]] = frozenset(
    {"timeout", "bot_id", "chat_id", "chat_at_least"}
)


class ControlApi:
    """Serve inject, inspection, waiting, stats, config, reset and fault endpoints."""

    def __init__(self, sandbox: TelegramSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """Return the route table of the control API."""
        p = CONTROL_PREFIX
        wrap = control_errors
        return [
            web.get(f"{p}/health", wrap(self.health)),
            web.post(f"{p}/inject", wrap(self.inject)),
            web.get(f"{p}/chats", wrap(self.chats)),
            web.get(f"{p}/chats/{{chat_id}}", wrap(self.chat)),
            web.get(f"{p}/chats/{{chat_id}}/messages/{{message_id}}", wrap(self.message)),
            web.get(f"{p}/outbox", wrap(self.outbox)),
            web.get(f"{p}/wait", wrap(self.wait)),
            web.get(f"{p}/stats", wrap(self.stats)),
            web.get(f"{p}/config", wrap(self.get_config)),
            web.post(f"{p}/config", wrap(self.set_config)),
            web.post(f"{p}/reset", wrap(self.reset)),
            web.get(f"{p}/faults", wrap(self.get_faults)),
            web.post(f"{p}/faults", wrap(self.set_faults)),
            web.delete(f"{p}/faults", wrap(self.clear_faults)),
        ]

    def _bot(self, request: web.Request) -> BotState:
        """Select the bot named by `?bot_id=` (default: the first token's bot)."""
        bot_id = query_int(request, "bot_id")
        try:
            return self._sandbox.bot(bot_id)
        except KeyError as exc:
            raise ControlError(404, f"unknown bot_id {bot_id}") from exc

    def _chat_id(self, request: web.Request) -> int:
        """Read the chat id path parameter."""
        try:
            return int(request.match_info["chat_id"])
        except ValueError as exc:
            raise ControlError(400, "chat_id must be an integer") from exc

    async def health(self, request: web.Request) -> web.Response:
        """Answer liveness probes."""
        return dump({"ok": True, "bots": [bot.bot_id for bot in self._sandbox.bots]})

    async def inject(self, request: web.Request) -> web.Response:
        """Inject user activity items and return the assigned update ids."""
        bot = self._bot(request)
        payload = await json_body(request)
        if isinstance(payload, dict):
            items = payload.get("items", [payload] if "kind" in payload else None)
        else:
            items = payload
        if not isinstance(items, list):
            raise ControlError(400, 'send a list of items or {"items": [...]}')
        if len(items) > MAX_INJECT_ITEMS:
            raise ControlError(400, f"at most {MAX_INJECT_ITEMS} items per request")
        try:
            update_ids = inject(bot, items)
        except InjectError as exc:
            raise ControlError(400, str(exc)) from exc
        return dump({"ok": True, "update_ids": update_ids})

    async def chats(self, request: web.Request) -> web.Response:
        """List known chats with how many bot actions each received."""
        bot = self._bot(request)
        return dump(
            {
                "ok": True,
                "chats": [
                    {
                        "chat_id": chat.id,
                        "type": chat.obj.get("type"),
                        "actions": chat.log_total,
                        "blocked": chat.blocked,
                    }
                    for chat in bot.chats.values()
                ],
            }
        )

    async def chat(self, request: web.Request) -> web.Response:
        """Return the chat's log of bot actions in order (optionally after a seq)."""
        bot = self._bot(request)
        chat = bot.chats.get(self._chat_id(request))
        if chat is None:
            raise ControlError(404, "chat not found")
        after_seq = query_int(request, "after_seq", 0) or 0
        entries = chat.log
        if after_seq:
            entries = [entry for entry in entries if entry["seq"] > after_seq]
        return dump(
            {
                "ok": True,
                "chat": chat.obj,
                "blocked": chat.blocked,
                "last_chat_action": chat.last_chat_action,
                "chat_actions": chat.chat_actions,
                "total": chat.log_total,
                "messages": entries,
            }
        )

    async def message(self, request: web.Request) -> web.Response:
        """Return the current state of one stored message (Bot API shape)."""
        bot = self._bot(request)
        chat = bot.chats.get(self._chat_id(request))
        try:
            message_id = int(request.match_info["message_id"])
        except ValueError as exc:
            raise ControlError(400, "message_id must be an integer") from exc
        message = chat.messages.get(message_id) if chat is not None else None
        if message is None:
            raise ControlError(404, "message not found")
        return dump({"ok": True, "from_bot": message.from_bot, "message": message.obj})

    async def outbox(self, request: web.Request) -> web.Response:
        """Return bot actions with seq > after_seq, oldest first."""
        bot = self._bot(request)
        after_seq = query_int(request, "after_seq", 0) or 0
        limit = query_int(request, "limit", DEFAULT_OUTBOX_LIMIT) or DEFAULT_OUTBOX_LIMIT
        limit = min(max(limit, 1), MAX_OUTBOX_LIMIT)
        items = bot.outbox.after(after_seq, limit, request.query.get("method") or None)
        return dump(
            {
                "ok": True,
                "items": items,
                "last_seq": bot.outbox.last_seq,
                "first_seq": bot.outbox.first_seq,
            }
        )

    def _wait_predicate(self, bot: BotState, request: web.Request) -> Callable[[], bool]:
        """Build the predicate of /wait from `<counter>_at_least` / `_at_most` parameters."""
        bounds = parse_bounds(request.query, bot.counters(), WAIT_RESERVED_PARAMS)
        chat_bound = query_int(request, "chat_at_least")
        chat_id = query_int(request, "chat_id")
        if chat_bound is not None and chat_id is None:
            raise ControlError(400, "chat_at_least needs chat_id")
        if not bounds and chat_bound is None:
            raise ControlError(400, "give at least one <counter>_at_least/_at_most condition")

        def predicate() -> bool:
            counters = bot.counters()
            if not all(bound.holds(counters) for bound in bounds):
                return False
            if chat_bound is not None and chat_id is not None:
                chat = bot.chats.get(chat_id)
                if (chat.log_total if chat is not None else 0) < chat_bound:
                    return False
            return True

        return predicate

    async def wait(self, request: web.Request) -> web.Response:
        """Long-poll until every condition holds: 200 with counters, or 408 on timeout."""
        bot = self._bot(request)
        predicate = self._wait_predicate(bot, request)
        satisfied = await bot.waiters.wait(predicate, wait_timeout_s(request))
        payload: dict[str, Any] = {"ok": satisfied, **bot.counters()}
        if not satisfied:
            payload["error"] = "timeout: condition not met"
        return dump(payload, 200 if satisfied else 408)

    async def stats(self, request: web.Request) -> web.Response:
        """Return counters, per-method calls, errors and webhook state."""
        return dump(self._bot(request).stats_dict())

    async def get_config(self, request: web.Request) -> web.Response:
        """Return the current configuration."""
        return dump(self._sandbox.config.to_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        """Change configuration keys at run time and return the new configuration."""
        payload = await json_body(request)
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object of config keys")
        self._sandbox.update_config(payload)
        return dump(self._sandbox.config.to_dict())

    async def reset(self, request: web.Request) -> web.Response:
        """Clear recorded state; `webhook`/`config` flags also reset those."""
        payload = await json_body(request) or {}
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object")
        bot_id = query_int(request, "bot_id")
        try:
            await self._sandbox.reset(
                bot_id,
                webhook=bool(payload.get("webhook", False)),
                config=bool(payload.get("config", False)),
            )
        except KeyError as exc:
            raise ControlError(404, f"unknown bot_id {bot_id}") from exc
        return dump({"ok": True})

    async def get_faults(self, request: web.Request) -> web.Response:
        """List the active fault rules."""
        return dump({"ok": True, "faults": self._bot(request).faults.rules()})

    async def set_faults(self, request: web.Request) -> web.Response:
        """Add or replace one fault rule (or a list of them)."""
        bot = self._bot(request)
        payload = await json_body(request)
        rules = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(rule, dict) for rule in rules):
            raise ControlError(400, "send a fault object or a list of them")
        parsed = [parse_fault(rule) for rule in rules]
        for fault in parsed:
            bot.faults.set(fault)
        return dump({"ok": True, "faults": bot.faults.rules()})

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Remove every fault rule."""
        bot = self._bot(request)
        bot.faults.clear()
        return dump({"ok": True, "faults": []})
