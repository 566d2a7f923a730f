"""Supervised services: the work an instance runs, restarted one-for-one on crash.

A service is any object with a `name` and `async run(leadership)` that runs until cancelled
(or, once `leadership.draining` is set, until its in-flight work is done). `always` services
get `leadership=None` and run for the life of the process; `leader_only` services get the
current `Leadership` and run only while this instance leads.

Each service runs in its own named task wrapped in a restart loop: a crash (an exception, or
returning while not draining) is logged, counted on /health, and followed by a restart after
an exponential backoff (RESTART_INITIAL_S doubling to RESTART_MAX_S). One crash never takes
down its siblings or leadership (Erlang's one_for_one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from supervisor.aio import Backoff, wait_event
from supervisor.election import Leadership
from supervisor.runtime_state import RuntimeState, ServiceInfo

if TYPE_CHECKING:  # aiohttp costs 0.3 s to import; `check` loads this module and serves no HTTP
    from aiohttp import web

logger = logging.getLogger(__name__)

RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
# A service that ran this long before crashing starts its backoff over.
RESTART_RESET_AFTER_S = 60.0


class Service(Protocol):
    """Work the supervisor runs."""

    name: str

    async def run(self, leadership: Leadership | None) -> None:
        """Run until cancelled (or, when draining, until in-flight work is done)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One named `python -m supervisor check` probe; returns a detail line or raises."""

    name: str
    probe: Callable[[], Awaitable[str]]


@dataclass(slots=True)
class Composition:
    """What one composition root hands the supervisor."""

    always: Sequence[Service] = ()
    leader_only: Sequence[Service] = ()
    routes: Sequence[Callable[[web.Application], None]] = ()
    checks: Sequence[Check] = ()
    on_close: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)


class ServiceGroup:
    """Run a set of services, each in its own supervised task."""

    def __init__(self, services: Sequence[Service], state: RuntimeState) -> None:
        self._services = list(services)
        self._state = state
        self._tasks: list[asyncio.Task[None]] = []
        for service in self._services:
            state.services.setdefault(service.name, ServiceInfo())

    def start(self, leadership: Leadership | None) -> None:
        """Start every service under supervision."""
        assert not self._tasks, "start() twice without stop()"
        self._tasks = [
            asyncio.create_task(self._supervise(service, leadership), name=f"svc:{service.name}")
            for service in self._services
        ]

    async def drain(self, leadership: Leadership, grace_s: float) -> None:
        """Ask services to finish in-flight work and wait for them up to grace_s."""
        leadership.draining.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)

    async def stop(self, grace_s: float) -> bool:
        """Cancel every service and wait up to grace_s; return False if one would not stop."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            logger.error("service_stop_timeout", extra={"task": task.get_name(),
                                                        "grace_s": grace_s})
        return not pending

    async def _supervise(self, service: Service, leadership: Leadership | None) -> None:
        info = self._state.services[service.name]
        backoff = Backoff(initial_s=RESTART_INITIAL_S, max_s=RESTART_MAX_S)
        never = asyncio.Event()
        draining = leadership.draining if leadership else never
        try:
            while True:
                info.state = "running"
                started = asyncio.get_running_loop().time()
                try:
                    await service.run(leadership)
                    if draining.is_set():
                        return
                    raise RuntimeError("service returned while it should keep running")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if asyncio.get_running_loop().time() - started > RESTART_RESET_AFTER_S:
                        backoff.reset()
                    delay = backoff.next_delay()
                    info.restarts += 1
                    info.state = "backoff"
                    self._state.record_error(service.name, exc)
                    logger.exception("service_crashed", extra={
                        "service": service.name, "attempt": backoff.attempts,
                        "next_delay_s": round(delay, 2)})
                if await wait_event(draining, delay):
                    return
        finally:
            info.state = "stopped"
