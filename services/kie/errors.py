"""Kie errors: one small hierarchy, and the one rule that sorts codes into retryable or final.

A code is Kie's body `code` when the answer had one, else the HTTP status; 0 means no answer
at all (the connection failed or timed out).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

NO_ANSWER_CODE = 0
DETAIL_MAX_CHARS = 200

# Codes after which the same request may succeed later (kie_api.md §1.4): rate limited,
# maintenance, server errors, the 4o queue being full. 501 (generation failed), 505 (feature
# disabled) and 531 (Suno: failed, refunded) are 5xx but final.
RETRYABLE_CODES = frozenset({NO_ANSWER_CODE, 408, 429, 455, 500, 502, 503, 504, 550})
FINAL_5XX_CODES = frozenset({501, 505, 531})

# What each code means, safe to log and to show an operator; Kie's own text goes to `detail`.
CODE_MEANINGS: Mapping[int, str] = MappingProxyType({
    NO_ANSWER_CODE: "no answer from Kie (network error or timeout)",
    400: "request rejected as invalid",
    401: "API key missing or invalid",
    402: "insufficient Kie credits",
    404: "not found",
    405: "method not allowed",
    408: "Kie timed out",
    422: "validation failed",
    429: "rate limited",
    433: "request refused",
    451: "Kie could not download an input file",
    455: "service under maintenance",
    500: "Kie server error",
    501: "generation failed",
    505: "feature disabled",
    531: "generation failed, credits refunded",
    550: "queue full, request refused",
})


def is_retryable(code: int) -> bool:
    """Return whether a request that ended with this code may succeed if sent again."""
    return code in RETRYABLE_CODES or (500 <= code < 600 and code not in FINAL_5XX_CODES)


class KieError(Exception):
    """A Kie call failed; `code` says how, `message` is safe to log, `detail` is Kie's text."""

    def __init__(self, code: int, message: str | None = None, *, detail: str = "",
                 path: str = "") -> None:
        self.code = code
        self.message = message or CODE_MEANINGS.get(code, "unexpected answer")
        self.detail = detail[:DETAIL_MAX_CHARS]
        self.path = path
        where = f" ({path})" if path else ""
        said = f": {self.detail}" if self.detail else ""
        super().__init__(f"Kie {code}{where}: {self.message}{said}")


class KieRetryable(KieError):
    """A failure that may pass on a later attempt (network, timeout, 429, 455, 5xx, 550)."""

    def __init__(self, code: int, message: str | None = None, *, detail: str = "",
                 path: str = "", maybe_executed: bool = False) -> None:
        super().__init__(code, message, detail=detail, path=path)
        # True when the request may have reached Kie before the answer was lost: a retried
        # create could then start a second task.
        self.maybe_executed = maybe_executed


class KieFinal(KieError):
    """A failure that the same request will meet again (400, 401, 402, 404, 422, 451, 501, ...)."""


class FileTooLarge(KieFinal):
    """A file is larger than the transfer allows."""


def error_for(code: int, *, detail: str = "", path: str = "",
              maybe_executed: bool = False) -> KieError:
    """Return the error class instance this code calls for."""
    if is_retryable(code):
        return KieRetryable(code, detail=detail, path=path, maybe_executed=maybe_executed)
    return KieFinal(code, detail=detail, path=path)


class TelegramFileUnavailable(KieRetryable):
    """Telegram did not hand over a file (its URL, which carries the bot token, is not said)."""
