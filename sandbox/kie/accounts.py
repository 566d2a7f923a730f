"""API keys: Bearer authentication, credit balances and the new-task rate limit.

Rate limit: at most `rate_limit_tasks` accepted tasks per key in any `rate_limit_window_s`
(a sliding window of accept times, O(1) amortised per request). A refused request is not
queued and not counted, as Kie documents.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Iterable, Iterator

from aiohttp import web

from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.envelope import KieError

BEARER_PREFIX = "Bearer "


def as_number(credits: float) -> int | float:
    """Return credits as Kie shows them: an integer when whole."""
    return int(credits) if float(credits).is_integer() else credits


class Account:
    """One API key: its balance, recent accepted tasks and its upload folder."""

    __slots__ = ("accepted_at_s", "credits", "folder", "key")

    def __init__(self, key: str, credits: float) -> None:
        """Start with `credits`."""
        self.key = key
        self.credits = credits
        self.accepted_at_s: deque[float] = deque()
        # Upload URLs are per account (like Kie's opaque path segment), never the key.
        self.folder = secrets.token_hex(6)


class Accounts:
    """Authenticate requests and keep every key's balance and rate window."""

    def __init__(self, keys: Iterable[str], config: KieSandboxConfig) -> None:
        """Accept exactly `keys`."""
        self._config = config
        self._accounts = {key: Account(key, config.initial_credits) for key in keys}
        if not self._accounts:
            raise ValueError("at least one API key is required")

    def __iter__(self) -> Iterator[Account]:
        """Iterate over the accounts."""
        return iter(self._accounts.values())

    def authenticate(self, request: web.Request) -> Account:
        """Return the account of the request's Bearer key (KieError 401 otherwise)."""
        header = request.headers.get("Authorization", "")
        if header.startswith(BEARER_PREFIX):
            offered = header[len(BEARER_PREFIX) :].strip()
            account = self._accounts.get(offered)
            # The dict lookup found the key; compare once more in constant time.
            if account is not None and hmac.compare_digest(account.key, offered):
                return account
        raise KieError(401)

    def get(self, key: str | None) -> Account:
        """Return one account (default: the first key); KeyError when unknown."""
        if key is None:
            return next(iter(self._accounts.values()))
        return self._accounts[key]

    def check_credits(self, account: Account, cost: float) -> None:
        """Refuse a task the balance cannot pay (402)."""
        if account.credits < cost or account.credits <= 0:
            raise KieError(402)

    def check_rate(self, account: Account) -> None:
        """Refuse a new task beyond the window's allowance (429, not queued)."""
        config = self._config
        if not config.rate_limit_enabled:
            return
        now_s = time.monotonic()
        window = account.accepted_at_s
        while window and window[0] <= now_s - config.rate_limit_window_s:
            window.popleft()
        if len(window) >= config.rate_limit_tasks:
            raise KieError(429)

    def accept(self, account: Account, cost: float) -> None:
        """Charge an accepted task and count it in the rate window."""
        account.credits -= cost
        if self._config.rate_limit_enabled:
            account.accepted_at_s.append(time.monotonic())

    def refund(self, account_key: str, cost: float) -> None:
        """Give a failed task's credits back."""
        account = self._accounts.get(account_key)
        if account is not None:
            account.credits += cost

    def reset(self) -> None:
        """Restore every balance and forget rate windows."""
        for account in self._accounts.values():
            account.credits = self._config.initial_credits
            account.accepted_at_s.clear()
