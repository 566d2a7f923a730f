"""Token-bucket rate limits modelled on Telegram's per-chat, per-group and global limits."""

from __future__ import annotations

import math
import time
from typing import Final

from sandbox.telegram.config import SandboxConfig

MAX_TRACKED_CHATS: Final[int] = 100_000


class TokenBucket:
    """Refill `rate_per_s` tokens per second up to `burst`; one token per request."""

    __slots__ = ("burst", "rate_per_s", "tokens", "updated_at_s")

    def __init__(self, rate_per_s: float, burst: float, now_s: float) -> None:
        """Start full."""
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.updated_at_s = now_s

    def wait_s(self, now_s: float) -> float:
        """Refill and return how long until one token is available (0 when available now)."""
        elapsed_s = now_s - self.updated_at_s
        if elapsed_s > 0:
            self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
            self.updated_at_s = now_s
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s

    def is_full(self, now_s: float) -> bool:
        """Tell whether the bucket has refilled completely (safe to forget)."""
        return self.wait_s(now_s) == 0.0 and self.tokens >= self.burst


class RateLimiter:
    """Check the global bucket and the chat's bucket together; consume only when both allow."""

    def __init__(self, config: SandboxConfig) -> None:
        """Build the buckets from the given settings."""
        self._config = config
        self._global: TokenBucket | None = None
        self._chats: dict[int, TokenBucket] = {}
        self.reconfigure()

    def reconfigure(self) -> None:
        """Drop all buckets and rebuild them from the current settings."""
        cfg = self._config
        now_s = time.monotonic()
        self._global = (
            TokenBucket(cfg.global_rate_per_s, cfg.global_burst, now_s)
            if cfg.global_rate_per_s > 0
            else None
        )
        self._chats.clear()

    def _chat_bucket(self, chat_id: int, now_s: float) -> TokenBucket | None:
        """Return (creating if needed) the bucket of one chat, or None when unlimited."""
        bucket = self._chats.get(chat_id)
        if bucket is not None:
            return bucket
        cfg = self._config
        if chat_id < 0:
            rate_per_s, burst = cfg.group_rate_per_s, cfg.group_burst
        else:
            rate_per_s, burst = cfg.per_chat_rate_per_s, cfg.per_chat_burst
        if rate_per_s <= 0:
            return None
        if len(self._chats) >= MAX_TRACKED_CHATS:
            self._chats = {k: b for k, b in self._chats.items() if not b.is_full(now_s)}
        bucket = TokenBucket(rate_per_s, burst, now_s)
        self._chats[chat_id] = bucket
        return bucket

    def acquire(self, chat_id: int | None, now_s: float | None = None) -> int:
        """Consume a token for `chat_id`; return 0 when allowed, else retry_after in seconds."""
        now = time.monotonic() if now_s is None else now_s
        wait_s = 0.0
        gbucket = self._global
        if gbucket is not None:
            wait_s = gbucket.wait_s(now)
        cbucket = self._chat_bucket(chat_id, now) if chat_id is not None else None
        if cbucket is not None:
            wait_s = max(wait_s, cbucket.wait_s(now))
        if wait_s > 0:
            return max(1, math.ceil(wait_s))
        if gbucket is not None:
            gbucket.tokens -= 1.0
        if cbucket is not None:
            cbucket.tokens -= 1.0
        return 0
