"""How hard the webhook ingress is being pushed, so the leader can give storing priority.

The leader stores and handles updates in one event loop. Storing one costs a fraction of what
handling one does, and an update that is stored is safe; so while deliveries pour in, the
dispatcher runs with fewer handlers at once (never zero) and the ingress keeps its latency.
The backlog waits, durable, in the inbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Deliveries counted per window; a window is fresh for two window lengths.
WINDOW_S = 0.1
# More deliveries than this in a window (500/s) is a flood.
HIGH_PER_WINDOW = 50


class IngressPressure:
    """Count webhook deliveries in short windows; tell whether the rate is high."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_start = clock()
        self._count = 0
        self._previous = 0

    def note(self) -> None:
        """Count one delivery."""
        now = self._clock()
        if now - self._window_start >= WINDOW_S:
            # A window with no deliveries in between leaves nothing to carry over.
            self._previous = self._count if now - self._window_start < 2 * WINDOW_S else 0
            self._count = 0
            self._window_start = now
        self._count += 1

    def high(self) -> bool:
        """Tell whether deliveries arrive faster than HIGH_PER_WINDOW per window right now."""
        if self._clock() - self._window_start >= 2 * WINDOW_S:
            return False
        return max(self._count, self._previous) > HIGH_PER_WINDOW
