"""Long-poll waits of the control APIs: resolve waiters when a condition over counters holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from sandbox.common.responses import ControlError

DEFAULT_WAIT_TIMEOUT_S: Final[float] = 10.0
MAX_WAIT_TIMEOUT_S: Final[float] = 300.0
AT_LEAST_SUFFIX: Final[str] = "_at_least"
AT_MOST_SUFFIX: Final[str] = "_at_most"


class Waiters:
    """Resolve futures when their predicate over the sandbox state becomes true."""

    def __init__(self) -> None:
        """Start with nobody waiting."""
        self._items: list[tuple[Callable[[], bool], asyncio.Future[bool]]] = []

    def __bool__(self) -> bool:
        """Tell whether anybody waits (fast path)."""
        return bool(self._items)

    async def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until `predicate()` holds; return False on timeout or release."""
        if predicate():
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        item = (predicate, future)
        self._items.append(item)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return predicate()
        finally:
            if item in self._items:
                self._items.remove(item)

    def notify(self) -> None:
        """Re-check every predicate and resolve the ones that hold."""
        for predicate, future in self._items:
            if not future.done() and predicate():
                future.set_result(True)

    def release_all(self) -> None:
        """Wake every waiter with False (used on shutdown)."""
        for _, future in self._items:
            if not future.done():
                future.set_result(False)


@dataclass(frozen=True, slots=True)
class CounterBound:
    """One `<counter>_at_least=N` or `<counter>_at_most=N` condition."""

    counter: str
    value: int
    at_least: bool

    def holds(self, counters: Mapping[str, int]) -> bool:
        """Tell whether the counter satisfies this bound."""
        current = counters[self.counter]
        return current >= self.value if self.at_least else current <= self.value


def parse_bounds(
    query: Mapping[str, str], known: Mapping[str, int], reserved: frozenset[str]
) -> list[CounterBound]:
    """Read every `<counter>_at_least` / `_at_most` query parameter not in `reserved`."""
    bounds: list[CounterBound] = []
    for name, raw in query.items():
        if name in reserved or raw == "":
            continue
        if name.endswith(AT_LEAST_SUFFIX):
            counter, at_least = name.removesuffix(AT_LEAST_SUFFIX), True
        elif name.endswith(AT_MOST_SUFFIX):
            counter, at_least = name.removesuffix(AT_MOST_SUFFIX), False
        else:
            raise ControlError(400, f"unknown wait condition {name!r}")
        if counter not in known:
            raise ControlError(400, f"unknown counter {counter!r}; known: {sorted(known)}")
        try:
            value = int(raw)
        except ValueError as exc:
            raise ControlError(400, f"{name} must be an integer") from exc
        bounds.append(CounterBound(counter, value, at_least))
    return bounds


def wait_timeout_s(request: web.Request) -> float:
    """Read `?timeout=S` (default 10 s, clamped to 0..300 s)."""
    raw = request.query.get("timeout")
    try:
        timeout_s = float(raw) if raw else DEFAULT_WAIT_TIMEOUT_S
    except ValueError as exc:
        raise ControlError(400, "timeout must be a number of seconds") from exc
    return min(max(timeout_s, 0.0), MAX_WAIT_TIMEOUT_S)
