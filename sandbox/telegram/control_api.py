"""HTTP handlers of the test control API mounted under /_sandbox/ (no token needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web

from sandbox.telegram.errors import json_response
from sandbox.telegram.faults import parse_fault
from sandbox.telegram.inject import InjectError, inject
from sandbox.telegram.state import BotState

if TYPE_CHECKING:
    from sandbox.telegram.server import TelegramSandbox

CONTROL_PREFIX: Final[str] = "/_sandbox"
DEFAULT_WAIT_TIMEOUT_S: Final[float] = 10.0
MAX_WAIT_TIMEOUT_S: Final[float] = 300.0
DEFAULT_OUTBOX_LIMIT: Final[int] = 1_000
MAX_OUTBOX_LIMIT: Final[int] = 10_000
MAX_INJECT_ITEMS: Final[int] = 10_000
AT_LEAST_SUFFIX: Final[str] = "_at_least"
AT_MOST_SUFFIX: Final[str] = "_at_most"
WAIT_RESERVED_PARAMS: Final[frozenset[str]] = frozenset({"timeout", "bot_id", "chat_id"})


class ControlError(Exception):
    """Report a control API error with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        """Store the status and the message."""
        super().__init__(message)
        self.status = status
        self.message = message


def _dump(payload: Any, status: int = 200) -> web.Response:
    """Serialize a control API answer."""
    return json_response(orjson.dumps(payload), status)


def _query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """Read an integer query parameter."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ControlError(400, f"{name} must be an integer") from exc


async def _json_body(request: web.Request) -> Any:
    """Decode a JSON request body (an empty body gives None)."""
    body = await request.read()
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlError(400, f"invalid JSON body: {exc}") from exc


class ControlApi:
    """Serve inject, inspection, waiting, stats, config, reset and fault endpoints."""

    def __init__(self, sandbox: TelegramSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """Return the route table of the control API."""
        p = CONTROL_PREFIX
        wrap = self._wrap
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

    @staticmethod
    def _wrap(
        handler: Callable[[web.Request], Any],
    ) -> Callable[[web.Request], Any]:
        """Turn ControlError and ValueError into JSON error responses."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
            except ControlError as exc:
                return _dump({"ok": False, "error": exc.message}, exc.status)
            except ValueError as exc:
                return _dump({"ok": False, "error": str(exc)}, 400)
            return response

        return wrapped

    def _bot(self, request: web.Request) -> BotState:
        """Select the bot named by `?bot_id=` (default: the first token's bot)."""
        bot_id = _query_int(request, "bot_id")
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
        return _dump({"ok": True, "bots": [bot.bot_id for bot in self._sandbox.bots]})

    async def inject(self, request: web.Request) -> web.Response:
        """Inject user activity items and return the assigned update ids."""
        bot = self._bot(request)
        payload = await _json_body(request)
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
        return _dump({"ok": True, "update_ids": update_ids})

    async def chats(self, request: web.Request) -> web.Response:
        """List known chats with how many bot actions each received."""
        bot = self._bot(request)
        return _dump(
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
        after_seq = _query_int(request, "after_seq", 0) or 0
        entries = chat.log
        if after_seq:
            entries = [entry for entry in entries if entry["seq"] > after_seq]
        return _dump(
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
        return _dump({"ok": True, "from_bot": message.from_bot, "message": message.obj})

    async def outbox(self, request: web.Request) -> web.Response:
        """Return bot actions with seq > after_seq, oldest first."""
        bot = self._bot(request)
        after_seq = _query_int(request, "after_seq", 0) or 0
        limit = _query_int(request, "limit", DEFAULT_OUTBOX_LIMIT) or DEFAULT_OUTBOX_LIMIT
        limit = min(max(limit, 1), MAX_OUTBOX_LIMIT)
        items = bot.outbox.after(after_seq, limit, request.query.get("method") or None)
        return _dump(
            {
                "ok": True,
                "items": items,
                "last_seq": bot.outbox.last_seq,
                "first_seq": bot.outbox.first_seq,
            }
        )

    def _wait_predicate(self, bot: BotState, request: web.Request) -> Callable[[], bool]:
        """Build the predicate of /wait from `<counter>_at_least` / `_at_most` parameters."""
        known = bot.counters()
        bounds: list[tuple[str, int, bool]] = []
        chat_bound: int | None = None
        for name in request.query:
            if name in WAIT_RESERVED_PARAMS:
                continue
            value = _query_int(request, name)
            if value is None:
                continue
            if name == "chat_at_least":
                chat_bound = value
                continue
            if name.endswith(AT_LEAST_SUFFIX):
                counter, at_least = name.removesuffix(AT_LEAST_SUFFIX), True
            elif name.endswith(AT_MOST_SUFFIX):
                counter, at_least = name.removesuffix(AT_MOST_SUFFIX), False
            else:
                raise ControlError(400, f"unknown wait condition {name!r}")
            if counter not in known:
                raise ControlError(400, f"unknown counter {counter!r}; known: {sorted(known)}")
            bounds.append((counter, value, at_least))
        chat_id = _query_int(request, "chat_id")
        if chat_bound is not None and chat_id is None:
            raise ControlError(400, "chat_at_least needs chat_id")
        if not bounds and chat_bound is None:
            raise ControlError(400, "give at least one <counter>_at_least/_at_most condition")

        def predicate() -> bool:
            counters = bot.counters()
            for counter, value, at_least in bounds:
                current = counters[counter]
                if (current < value) if at_least else (current > value):
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
        raw_timeout = request.query.get("timeout")
        try:
            timeout_s = float(raw_timeout) if raw_timeout else DEFAULT_WAIT_TIMEOUT_S
        except ValueError as exc:
            raise ControlError(400, "timeout must be a number of seconds") from exc
        timeout_s = min(max(timeout_s, 0.0), MAX_WAIT_TIMEOUT_S)
        satisfied = await bot.waiters.wait(predicate, timeout_s)
        payload: dict[str, Any] = {"ok": satisfied, **bot.counters()}
        if not satisfied:
            payload["error"] = "timeout: condition not met"
        return _dump(payload, 200 if satisfied else 408)

    async def stats(self, request: web.Request) -> web.Response:
        """Return counters, per-method calls, errors and webhook state."""
        return _dump(self._bot(request).stats_dict())

    async def get_config(self, request: web.Request) -> web.Response:
        """Return the current configuration."""
        return _dump(self._sandbox.config.to_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        """Change configuration keys at run time and return the new configuration."""
        payload = await _json_body(request)
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object of config keys")
        self._sandbox.update_config(payload)
        return _dump(self._sandbox.config.to_dict())

    async def reset(self, request: web.Request) -> web.Response:
        """Clear recorded state; `webhook`/`config` flags also reset those."""
        payload = await _json_body(request) or {}
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object")
        bot_id = _query_int(request, "bot_id")
        try:
            await self._sandbox.reset(
                bot_id,
                webhook=bool(payload.get("webhook", False)),
                config=bool(payload.get("config", False)),
            )
        except KeyError as exc:
            raise ControlError(404, f"unknown bot_id {bot_id}") from exc
        return _dump({"ok": True})

    async def get_faults(self, request: web.Request) -> web.Response:
        """List the active fault rules."""
        return _dump({"ok": True, "faults": self._bot(request).faults.rules()})

    async def set_faults(self, request: web.Request) -> web.Response:
        """Add or replace one fault rule (or a list of them)."""
        bot = self._bot(request)
        payload = await _json_body(request)
        rules = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(rule, dict) for rule in rules):
            raise ControlError(400, "send a fault object or a list of them")
        parsed = [parse_fault(rule) for rule in rules]
        for fault in parsed:
            bot.faults.set(fault)
        return _dump({"ok": True, "faults": bot.faults.rules()})

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Remove every fault rule."""
        bot = self._bot(request)
        bot.faults.clear()
        return _dump({"ok": True, "faults": []})
