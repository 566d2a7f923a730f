"""The createTask limiter: at most 20 grants in any 10 s window, awaited without busy-waiting.

Kie rejects (and does not queue) the 21st new task within 10 s with a 429 (kie_api.md §1.5).
Only the leader submits, so a bucket in its process sees every createTask and is exact.

A classic token bucket refilling continuously (2 tokens/s, burst 20) would let 20 through at
t=0 and 2 more by t=1: 22 in one window. Here each token comes back exactly one window after
it was spent, so a grant at time t is allowed only when fewer than `capacity` grants lie in
(t - window, t]. Waiters queue FIFO behind one lock; the head sleeps until the oldest grant
leaves the window, the others wait on the lock (no polling). `available()` says how many
would pass right now, so the submitter claims only jobs it can send at once. A new leader's
bucket is `prime`d with the previous leader's grants of the last window (from the database),
or its first window would be the old leader's calls plus a full bucket: 429s.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Protocol

CREATE_LIMIT_PER_WINDOW = 20
CREATE_WINDOW_S = 10.0


class Clock(Protocol):
    """Time source of the bucket; tests give one that jumps instead of sleeping."""

    def now(self) -> float:
        """Return monotonic seconds."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Wait delay_s seconds."""
        ...


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        """Return the loop's time in seconds."""
        return asyncio.get_running_loop().time()

    async def sleep(self, delay_s: float) -> None:
        """Sleep on the loop."""
        await asyncio.sleep(delay_s)


class TokenBucket:
    """Grant at most `capacity` acquisitions in any `window_s` (each token returns after it)."""

    def __init__(self, capacity: int = CREATE_LIMIT_PER_WINDOW,
                 window_s: float = CREATE_WINDOW_S, *, clock: Clock | None = None) -> None:
        if capacity < 1 or window_s <= 0:
            raise ValueError("capacity must be >= 1 and window_s > 0")
        self.capacity = capacity
        self.window_s = window_s
        self._clock: Clock = clock or LoopClock()
        self._granted: deque[float] = deque(maxlen=capacity)
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a token; return the clock time at which it was granted."""
        async with self._lock:
            while True:
                now = self._clock.now()
                self._forget_expired(now)
                if len(self._granted) < self.capacity:
                    break
                # The oldest grant in the window must leave it before another is made.
                await self._clock.sleep(self._granted[0] + self.window_s - now)
            self._granted.append(now)
            return now

    def prime(self, ages_s: Iterable[float]) -> None:
        """Replace the grants remembered by those made `age` seconds ago by any leader (as
        the database recorded them), so a new term grants nothing Kie's window still counts."""
        now = self._clock.now()
        self._granted = deque(sorted(now - age for age in ages_s if 0 <= age < self.window_s),
                              maxlen=self.capacity)

    def available(self) -> int:
        """Return how many tokens acquire() would grant right now without waiting."""
        self._forget_expired(self._clock.now())
        return self.capacity - len(self._granted)

    def _forget_expired(self, now: float) -> None:
        """Drop the grants a full window old at `now` (written as acquire's wait is, so the
        two agree to the last bit of a float). Grants are kept in time order, so they leave
        from the left: O(1) per grant instead of a count on every call."""
        while self._granted and self._granted[0] + self.window_s <= now:
            self._granted.popleft()
