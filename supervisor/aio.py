"""Small asyncio helpers shared by every loop: racing the stop event, and the one backoff."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to timeout_s for event; return whether it is set. Loops use this, never sleep."""
    if event.is_set():
        return True
    if timeout_s <= 0:
        return False
    # asyncio.wait, not asyncio.timeout: on 3.11 a cancel that coincides with the timeout can
    # surface as TimeoutError, and a loop catching it would swallow its own cancellation.
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()
    return event.is_set()


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter: initial_s, doubling, capped at max_s."""

    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    # Up to this fraction is added at random so instances do not retry in lockstep.
    jitter: float = 0.1
    attempts: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        base = min(self.max_s, self.initial_s * self.factor ** self.attempts)
        self.attempts += 1
        return base * (1 + random.random() * self.jitter)

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0
