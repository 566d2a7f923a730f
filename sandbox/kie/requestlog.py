"""The log of every request the sandbox received (control API excluded), for assertions.

Each entry: seq, time, method, path, query, headers without `Authorization`, the body (JSON
decoded, or text, cut at 64 KiB; multipart bodies list their parts) and the answer's HTTP
status and body code. `matching(contains=...)` finds e.g. a Telegram file URL
(`/file/bot`) anywhere in an entry.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

MAX_LOGGED_BODY_BYTES: Final[int] = 64 * 1024
HIDDEN_HEADERS: Final[frozenset[str]] = frozenset({"authorization"})
CONTROL_PREFIX: Final[str] = "/_sandbox/"
ENTRY_KEY: Final[web.RequestKey[dict[str, Any]]] = web.RequestKey("kie_log_entry", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestLog:
    """Keep the last `max_items` requests."""

    def __init__(self, max_items: int) -> None:
        """Start empty."""
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_items)
        self.last_seq = 0

    def resize(self, max_items: int) -> None:
        """Change the cap, keeping the newest entries."""
        self._entries = deque(self._entries, maxlen=max_items)

    def clear(self) -> None:
        """Forget every entry (seq keeps increasing)."""
        self._entries.clear()

    async def record(self, request: web.Request) -> dict[str, Any]:
        """Append an entry for `request` and return it (handlers may add to it)."""
        self.last_seq += 1
        entry: dict[str, Any] = {
            "seq": self.last_seq,
            "at_ms": int(time.time() * 1000),
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {
                str(name): value
                for name, value in request.headers.items()
                if name.lower() not in HIDDEN_HEADERS
            },
            "body": await _body(request),
            "status": None,
            "code": None,
        }
        self._entries.append(entry)
        return entry

    def matching(
        self,
        *,
        after_seq: int = 0,
        path_prefix: str | None = None,
        contains: str | None = None,
        limit: int = 1_000,
    ) -> list[dict[str, Any]]:
        """Return entries after `after_seq` whose path starts with / whose text contains."""
        found: list[dict[str, Any]] = []
        for entry in self._entries:
            if entry["seq"] <= after_seq:
                continue
            if path_prefix is not None and not entry["path"].startswith(path_prefix):
                continue
            if contains is not None and contains not in orjson.dumps(entry).decode():
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found


async def _body(request: web.Request) -> Any:
    """Return a loggable form of the body (multipart is left to the upload handler)."""
    if not request.body_exists or request.content_type.startswith("multipart/"):
        return None
    raw = await request.read()  # aiohttp caches it for the handler
    text = raw[:MAX_LOGGED_BODY_BYTES].decode("utf-8", "replace")
    if len(raw) <= MAX_LOGGED_BODY_BYTES and request.content_type == "application/json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return text
    return text


def middleware(log: RequestLog) -> Middleware:
    """Build the aiohttp middleware that records every non-control request."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        entry = await log.record(request)
        request[ENTRY_KEY] = entry
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            entry["status"] = exc.status
            raise
        entry["status"] = response.status
        return response

    return record
