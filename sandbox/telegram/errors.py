"""Telegram-shaped API errors and response bodies used by the sandbox."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sandbox.common.responses import json_response


class ApiError(Exception):
    """Carry a Telegram error response: HTTP status, description and parameters."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        """Store the status code, the description and optional response parameters."""
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> bytes:
        """Serialize the error the way the Bot API does."""
        payload: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            payload["parameters"] = self.parameters
        return orjson.dumps(payload)

    def response(self) -> web.Response:
        """Build the aiohttp response for this error."""
        return json_response(self.body(), status=self.code)


class ApiResult:
    """Wrap a method result that carries a Telegram `description` next to `result`."""

    __slots__ = ("description", "result")

    def __init__(self, result: Any, description: str) -> None:
        """Store the result and its description."""
        self.result = result
        self.description = description


class RawResult:
    """Wrap an already serialized JSON `result` value (a list of stored updates)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[bytes]) -> None:
        """Store the serialized JSON array items."""
        self.parts = parts


def ok_body(result: Any) -> bytes:
    """Serialize a successful method result, including raw and described results."""
    if isinstance(result, RawResult):
        return b'{"ok":true,"result":[' + b",".join(result.parts) + b"]}"
    if isinstance(result, ApiResult):
        return orjson.dumps(
            {"ok": True, "result": result.result, "description": result.description}
        )
    return orjson.dumps({"ok": True, "result": result})


def bad_request(detail: str) -> ApiError:
    """Build a 400 `Bad Request: ...` error."""
    return ApiError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> ApiError:
    """Build a 403 `Forbidden: ...` error."""
    return ApiError(403, f"Forbidden: {detail}")


def conflict(detail: str) -> ApiError:
    """Build a 409 `Conflict: ...` error."""
    return ApiError(409, f"Conflict: {detail}")


def too_many_requests(retry_after_s: int) -> ApiError:
    """Build a 429 error with `parameters.retry_after` in whole seconds."""
    return ApiError(
        429,
        f"Too Many Requests: retry after {retry_after_s}",
        {"retry_after": retry_after_s},
    )


def unauthorized() -> ApiError:
    """Build the 401 error returned for an unknown bot token."""
    return ApiError(401, "Unauthorized")


def not_found() -> ApiError:
    """Build the 404 error returned for an unknown method or path."""
    return ApiError(404, "Not Found")


def mask_token(token: str) -> str:
    """Hide the secret part of a bot token, keeping the numeric bot id."""
    bot_id, _, _secret = token.partition(":")
    return f"{bot_id}:***" if bot_id.isdigit() else "***"
