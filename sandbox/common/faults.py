"""Fault injection primitives: rule tables, "the next N calls" countdowns, seeded chances.

A rule is any object with a `fail_next` count (and optionally a standing effect such as a
delay). Rules live in a `RuleTable` under a key; a rule with nothing left to do disappears.
Validation helpers give every sandbox the same error texts for bad rule payloads.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

ANY: str = "*"


class Rule(Protocol):
    """A fault rule: it fires `fail_next` more times; `is_spent` says it can be forgotten."""

    fail_next: int

    def is_spent(self) -> bool:
        """Tell whether the rule has nothing left to do."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        ...


K = TypeVar("K")
R = TypeVar("R", bound=Rule)


class RuleTable(Generic[K, R]):
    """Keep fault rules by key; consuming the last firing of a rule removes it."""

    def __init__(self) -> None:
        """Start with no rules."""
        self._rules: dict[K, R] = {}

    def __bool__(self) -> bool:
        """Tell whether any rule is active (fast path for the common case)."""
        return bool(self._rules)

    def set(self, key: K, rule: R) -> None:
        """Add or replace the rule under `key`; a spent rule removes the existing one."""
        if rule.is_spent():
            self._rules.pop(key, None)
        else:
            self._rules[key] = rule

    def get(self, key: K) -> R | None:
        """Return the rule under `key`, if any."""
        return self._rules.get(key)

    def matching(self, keys: Iterable[K]) -> list[R]:
        """Return the rules under `keys`, in the order of `keys`."""
        rules = self._rules
        return [rule for key in keys if (rule := rules.get(key)) is not None]

    def fire(self, key: K, rule: R) -> bool:
        """Consume one firing of `rule` (stored under `key`); False when it has none left."""
        if rule.fail_next <= 0:
            return False
        rule.fail_next -= 1
        if rule.is_spent():
            self._rules.pop(key, None)
        return True

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        """Return all rules as dicts."""
        return [rule.to_dict() for rule in self._rules.values()]


class Chance:
    """Decide "does this call fail?" for a rate, reproducibly (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        """Seed the generator so a run's failures repeat."""
        self._random = random.Random(seed)

    def reseed(self, seed: int) -> None:
        """Restart the sequence from `seed`."""
        self._random.seed(seed)

    def hit(self, rate: float) -> bool:
        """Return True with probability `rate` (0 never, 1 always)."""
        return rate > 0 and (rate >= 1 or self._random.random() < rate)


def reject_unknown(payload: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ValueError naming the keys of a rule payload that are not allowed."""
    unknown = set(payload) - set(allowed)
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")


def int_field(payload: Mapping[str, Any], name: str, default: int, *, low: int, high: int) -> int:
    """Read an integer rule field within low..high (ValueError otherwise)."""
    value = payload.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}")
    return value


def number_field(
    payload: Mapping[str, Any], name: str, default: float | None, *, low: float, high: float
) -> float | None:
    """Read a numeric rule field within low..high (ValueError otherwise)."""
    value = payload.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}")
    return float(value)


def str_field(payload: Mapping[str, Any], name: str, default: str | None) -> str | None:
    """Read an optional string rule field."""
    value = payload.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def bool_field(payload: Mapping[str, Any], name: str) -> bool:
    """Read an optional boolean rule field (default false)."""
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean")
    return value
