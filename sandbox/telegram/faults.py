"""Fault injection for Bot API calls: fail the next N calls and/or delay every call."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Final

from sandbox.common.faults import ANY, RuleTable, reject_unknown
from sandbox.telegram.errors import ApiError, too_many_requests

MAX_FAULT_DELAY_MS: Final[int] = 60_000
DEFAULT_FAULT_STATUS: Final[int] = 500
DEFAULT_FAULT_RETRY_AFTER_S: Final[int] = 1
FAULT_KEYS: Final[frozenset[str]] = frozenset(
    {"method", "fail_next", "status", "description", "retry_after", "delay_ms", "chat_id"}
)
FAULT_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: injected fault",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Fault:
    """Describe one fault rule; `method` is `*` or a method name (case-insensitive)."""

    method: str
    fail_next: int = 0
    status: int = DEFAULT_FAULT_STATUS
    description: str | None = None
    retry_after: int | None = None
    delay_ms: int = 0
    chat_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        return asdict(self)

    def is_spent(self) -> bool:
        """Tell whether the rule neither fails nor delays any more calls."""
        return self.fail_next == 0 and self.delay_ms == 0

    def key(self) -> tuple[str, int | None]:
        """Return the table key: the lower-case method and the chat."""
        return self.method.lower(), self.chat_id

    def error(self) -> ApiError:
        """Build the error this rule returns."""
        if self.status == 429:
            retry_after_s = self.retry_after or DEFAULT_FAULT_RETRY_AFTER_S
            error = too_many_requests(retry_after_s)
            if self.description:
                error.description = self.description
            return error
        description = self.description or FAULT_DESCRIPTIONS.get(self.status, "Injected fault")
        parameters = {"retry_after": self.retry_after} if self.retry_after else None
        return ApiError(self.status, description, parameters)


def parse_fault(payload: dict[str, Any]) -> Fault:
    """Validate a fault rule received by the control API."""
    method = payload.get("method")
    if not isinstance(method, str) or not method:
        raise ValueError("method must be a method name or '*'")
    fault = Fault(method=method)
    for name in ("fail_next", "status", "retry_after", "delay_ms", "chat_id"):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")
        setattr(fault, name, value)
    description = payload.get("description")
    if description is not None and not isinstance(description, str):
        raise ValueError("description must be a string")
    fault.description = description
    if fault.fail_next < 0:
        raise ValueError("fail_next must be >= 0")
    if not 400 <= fault.status <= 599:
        raise ValueError("status must be in 400..599")
    if not 0 <= fault.delay_ms <= MAX_FAULT_DELAY_MS:
        raise ValueError(f"delay_ms must be in 0..{MAX_FAULT_DELAY_MS}")
    reject_unknown(payload, FAULT_KEYS)
    return fault


class FaultTable:
    """Keep fault rules keyed by (method, chat_id) and apply them to calls."""

    def __init__(self) -> None:
        """Start with no rules."""
        self._rules: RuleTable[tuple[str, int | None], Fault] = RuleTable()

    def __bool__(self) -> bool:
        """Tell whether any rule is active (fast path for the common case)."""
        return bool(self._rules)

    def set(self, fault: Fault) -> None:
        """Add or replace a rule; a rule with nothing to do removes the existing one."""
        self._rules.set(fault.key(), fault)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        """Return all rules as dicts."""
        return self._rules.rules()

    def _matching(self, method_lower: str, chat_id: int | None) -> list[Fault]:
        """Return the rules that apply to a call, most specific first."""
        keys: list[tuple[str, int | None]] = [(method_lower, None), (ANY, None)]
        if chat_id is not None:
            keys = [(method_lower, chat_id), keys[0], (ANY, chat_id), keys[1]]
        return self._rules.matching(keys)

    async def apply(self, method_lower: str, chat_id: int | None) -> None:
        """Sleep for the configured delay, then raise the error of a rule with calls left."""
        rules = self._matching(method_lower, chat_id)
        delay_ms = max((rule.delay_ms for rule in rules), default=0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        for rule in rules:
            if self._rules.fire(rule.key(), rule):
                raise rule.error()
