"""JSON responses and the control API's error handling, shared by every sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web

JSON_CONTENT_TYPE: Final[str] = "application/json"
# aiohttp only knows reasons for registered statuses; Kie also answers 455, 501, 505...
REASONS: Final[dict[int, str]] = {455: "Service Unavailable", 531: "Generation Failed"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    """Report a control API error with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        """Store the status and the message."""
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(body: bytes, status: int = 200) -> web.Response:
    """Build a JSON aiohttp response from serialized bytes."""
    return web.Response(
        body=body, status=status, reason=REASONS.get(status), content_type=JSON_CONTENT_TYPE
    )


def dump(payload: Any, status: int = 200) -> web.Response:
    """Serialize a payload as a JSON response."""
    return json_response(orjson.dumps(payload), status)


def control_errors(handler: Handler) -> Handler:
    """Turn ControlError and ValueError into `{"ok": false, "error": ...}` responses."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ControlError as exc:
            return dump({"ok": False, "error": exc.message}, exc.status)
        except ValueError as exc:
            return dump({"ok": False, "error": str(exc)}, 400)

    return wrapped


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """Read an integer query parameter (400 when it is not one)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ControlError(400, f"{name} must be an integer") from exc


async def json_body(request: web.Request) -> Any:
    """Decode a JSON request body (an empty body gives None; bad JSON is a 400)."""
    body = await request.read()
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlError(400, f"invalid JSON body: {exc}") from exc
