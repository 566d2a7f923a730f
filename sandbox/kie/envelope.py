"""Kie's response shapes: the `{code, msg, data}` envelope and the upload host's envelope.

Kie documents both styles: errors as HTTP 200 with the error in the body `code`, and errors
as HTTP statuses. `http_status_errors` in the config picks: off, every answer is HTTP 200;
on, the HTTP status equals the body code.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from sandbox.common.responses import json_response

OK: Final[int] = 200
MSG_SUCCESS: Final[str] = "success"
MSG_UNAUTHORIZED: Final[str] = "You do not have access permissions"
MSG_UPLOAD_UNAUTHORIZED: Final[str] = "Authentication failed: Invalid API Key"
MSG_NO_CREDITS: Final[str] = "The current credits are insufficient. Please top up."
MSG_RATE_LIMITED: Final[str] = "Rate limit exceeded"
MSG_NOT_FOUND: Final[str] = "Not Found"
MSG_TASK_NOT_FOUND: Final[str] = "Task not found"
MSG_TASK_ID_REQUIRED: Final[str] = "taskId parameter is required"
MSG_UPLOADED: Final[str] = "File uploaded successfully"
DEFAULT_MESSAGES: Final[dict[int, str]] = {
    400: "Bad request",
    401: MSG_UNAUTHORIZED,
    402: MSG_NO_CREDITS,
    404: MSG_NOT_FOUND,
    405: "Method not allowed",
    422: "Validation error",
    429: MSG_RATE_LIMITED,
    455: "Service unavailable: the system is under maintenance",
    500: "Server Error - An unexpected error occurred while processing the request",
    501: "Generation failed",
    505: "The feature is disabled",
}


class KieError(Exception):
    """An error answer: the body `code` and `msg` (data is null)."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        """Store the code and its message (default: Kie's text for the code)."""
        self.code = code
        self.msg = msg or DEFAULT_MESSAGES.get(code, "Error")
        super().__init__(f"{code}: {self.msg}")


def envelope(data: Any, *, code: int = OK, msg: str = MSG_SUCCESS) -> dict[str, Any]:
    """Return the `{code, msg, data}` body."""
    return {"code": code, "msg": msg, "data": data}


def api_response(body: dict[str, Any], *, http_status_errors: bool) -> web.Response:
    """Answer with `body`; the HTTP status follows the body code only when configured."""
    code = body.get("code", OK)
    status = code if http_status_errors and isinstance(code, int) and code != OK else OK
    return json_response(orjson.dumps(body), status)


def error_body(error: KieError) -> dict[str, Any]:
    """Return the API host's error body."""
    return envelope(None, code=error.code, msg=error.msg)


def upload_error_body(error: KieError) -> dict[str, Any]:
    """Return the upload host's error body."""
    return {"success": False, "code": error.code, "msg": error.msg}


def upload_body(data: dict[str, Any]) -> dict[str, Any]:
    """Return the upload host's success body."""
    return {"success": True, "code": OK, "msg": MSG_UPLOADED, "data": data}
