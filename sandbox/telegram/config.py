"""Run-time settings of the Telegram sandbox: rate limits, webhook timings, storage caps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

DEFAULT_PER_CHAT_RATE_PER_S: Final[float] = 1.0
DEFAULT_PER_CHAT_BURST: Final[float] = 3.0
DEFAULT_GROUP_RATE_PER_S: Final[float] = 20.0 / 60.0
DEFAULT_GROUP_BURST: Final[float] = 3.0
DEFAULT_GLOBAL_RATE_PER_S: Final[float] = 30.0
DEFAULT_GLOBAL_BURST: Final[float] = 30.0
DEFAULT_WEBHOOK_TIMEOUT_S: Final[float] = 10.0
DEFAULT_WEBHOOK_RETRY_INITIAL_S: Final[float] = 1.0
DEFAULT_WEBHOOK_RETRY_MAX_S: Final[float] = 60.0
DEFAULT_MAX_OUTBOX_ITEMS: Final[int] = 200_000
DEFAULT_MAX_CHAT_LOG_ITEMS: Final[int] = 5_000
DEFAULT_MAX_MESSAGES_PER_CHAT: Final[int] = 2_000


@dataclass(slots=True)
class SandboxConfig:
    """Hold the tunable behaviour of the sandbox; rates <= 0 disable that limit."""

    per_chat_rate_per_s: float = DEFAULT_PER_CHAT_RATE_PER_S
    per_chat_burst: float = DEFAULT_PER_CHAT_BURST
    group_rate_per_s: float = DEFAULT_GROUP_RATE_PER_S
    group_burst: float = DEFAULT_GROUP_BURST
    global_rate_per_s: float = DEFAULT_GLOBAL_RATE_PER_S
    global_burst: float = DEFAULT_GLOBAL_BURST
    webhook_timeout_s: float = DEFAULT_WEBHOOK_TIMEOUT_S
    webhook_retry_initial_s: float = DEFAULT_WEBHOOK_RETRY_INITIAL_S
    webhook_retry_max_s: float = DEFAULT_WEBHOOK_RETRY_MAX_S
    auto_create_chats: bool = False
    allow_non_loopback_webhooks: bool = False
    max_outbox_items: int = DEFAULT_MAX_OUTBOX_ITEMS
    max_chat_log_items: int = DEFAULT_MAX_CHAT_LOG_ITEMS
    max_messages_per_chat: int = DEFAULT_MAX_MESSAGES_PER_CHAT

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict."""
        return asdict(self)

    def copy(self) -> SandboxConfig:
        """Return an independent copy of these settings."""
        return SandboxConfig(**asdict(self))

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, validating names, types and ranges before changing anything."""
        known = {f.name: f.type for f in fields(self)}
        validated: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown config key {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean")
                validated[name] = value
            elif isinstance(current, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} must be a positive integer")
                validated[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                validated[name] = float(value)
        for name in ("webhook_timeout_s", "webhook_retry_initial_s", "webhook_retry_max_s"):
            if name in validated and validated[name] <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("per_chat_burst", "group_burst", "global_burst"):
            if name in validated and validated[name] < 1:
                raise ValueError(f"{name} must be >= 1")
        for name, value in validated.items():
            setattr(self, name, value)
