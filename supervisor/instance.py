"""The life of one instance process: startup(), main_loop(), shutdown().

startup     pool (not yet connected) -> composition (catalog, services) -> HTTP server up
            (so /health answers from the first second) -> migrations under the migration lock,
            retried while the DB is unreachable -> always-on services.
main_loop   candidate -> leader -> demoting -> candidate ..., until a stop signal:
            campaign() blocks until we lead; leader-only services start with the Leadership;
            hold() renews until leadership ends. On loss the services are cancelled first
            (they must not outlive the trust window), then the lock session is closed. If a
            service will not stop within LEADER_STOP_GRACE the process exits with
            EXIT_UNFENCED rather than run work that is no longer fenced.
shutdown    on SIGTERM/SIGINT: a leader drains (no new work, in-flight work finishes within
            SHUTDOWN_GRACE while the lease is still renewed), resigns and exits 0; a follower
            exits at once. A second signal exits immediately. A signal during start-up ends
            it where it is: the instance never reports itself started.

Start-up failures
    transient (DB down, restarting, unreachable): retried every 0.5-2 s, logged once as
        `db_unreachable` and once as `db_reachable` when it answers again;
    permanent (`db.DatabaseRefused`: wrong password, no such database or role, PostgreSQL
        older than 14): one line naming the cause and the env key, exit EXIT_DATABASE_REFUSED;
    a bad migration history or catalog: exit EXIT_REFUSED.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from importlib import metadata

import psycopg
from psycopg_pool import AsyncConnectionPool

from config import Settings
from supervisor import db, migrations
from supervisor.aio import Backoff, wait_event
from supervisor.election import Elector, Leadership
from supervisor.http import HttpServer, build_app
from supervisor.registry import InstanceHeartbeat, InstancePruner
from supervisor.runtime_state import Role, RuntimeState
from supervisor.services import Composition, ServiceGroup
from supervisor.stores import TransitionReason

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REFUSED = 1       # a migration or catalog problem: starting would be wrong
EXIT_DATABASE_REFUSED = 79   # the database refuses us for good (credentials, database, version)
EXIT_UNFENCED = 70     # a leader-only service ignored cancellation after demotion
EXIT_FORCED = 130      # second signal
ComposeFn = Callable[[Settings, AsyncConnectionPool, RuntimeState], Awaitable[Composition]]


def freeze_startup_heap() -> None:
    """Move what start-up left (~250k long-lived objects: aiogram, pydantic models, the
    catalog, the Fluent texts) out of the garbage collector's reach: a full pass over them
    stalls the event loop for 100-250 ms (bench/generation.py saw a burst's slowest results
    wait out exactly such a pass). Call once everything long-lived is loaded."""
    gc.collect()
    gc.freeze()


class StartupRefused(Exception):
    """Starting would be wrong (bad migration history, broken catalog); the reason says why."""


def package_version() -> str:
    """Return the installed package version."""
    try:
        return metadata.version("kiebot")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Instance:
    """One supervisor process."""

    def __init__(self, settings: Settings, compose: ComposeFn) -> None:
        self.settings = settings
        self._compose = compose
        self.state = RuntimeState(instance_id=settings.instance_id,
                                  bot_mode=settings.bot_mode, version=package_version())
        self.stop_event = asyncio.Event()
        self._signals = 0
        self._pool = db.create_pool(settings)
        self._http: HttpServer | None = None
        self._always: ServiceGroup | None = None
        self._heartbeat = InstanceHeartbeat(self._pool, self.state)
        self._composition = Composition()
        self.exit_code = EXIT_OK

    async def run(self) -> int:
        """Run until stopped; return the process exit code."""
        self._install_signal_handlers()
        try:
            await self.startup()
            await self.main_loop()
        except StartupRefused as exc:
            logger.error("startup_refused", extra={"reason": str(exc)})
            print(f"refusing to start: {exc}", file=sys.stderr)
            self.exit_code = EXIT_REFUSED
        except db.DatabaseRefused as exc:
            print(f"refusing to start: {exc}", file=sys.stderr)
            self.exit_code = EXIT_DATABASE_REFUSED
        finally:
            await asyncio.shield(self.shutdown())
        return self.exit_code

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown (idempotent)."""
        if not self.stop_event.is_set():
            logger.info("stop_requested", extra={"reason": reason})
            self.state.stopping = True
            self.stop_event.set()

    # ---- startup ----

    async def startup(self) -> None:
        """Bring the instance up in dependency order."""
        try:
            self._composition = await self._compose(self.settings, self._pool, self.state)
        except Exception as exc:
            raise StartupRefused(str(exc)) from exc
        self._http = HttpServer(build_app(self.state, tuple(self._composition.routes)),
                                port=self.settings.port)
        await self._http.start()
        await self._migrate()
        if self.stop_event.is_set():
            return
        await self._pool.open(wait=False)
        self._always = ServiceGroup([self._heartbeat, *self._composition.always], self.state)
        self._always.start(None)
        freeze_startup_heap()
        logger.info("instance_started", extra={"version": self.state.version,
                                               "bot_mode": self.settings.bot_mode})

    async def _migrate(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=2.0)
        while not self.stop_event.is_set():
            try:
                status = await migrations.apply_pending(
                    self.settings.database_url.get(),
                    connect_timeout_s=self.settings.db_connect_timeout_s,
                    application_name=f"{self.settings.instance_id}:migrate"[:63])
            except migrations.MigrationError as exc:
                raise StartupRefused(str(exc)) from exc
            except (psycopg.Error, OSError) as exc:
                refused = db.refusal(exc)
                if refused is not None:
                    raise refused from exc
                self.state.mark_db_unreachable("migrations", exc)
                await wait_event(self.stop_event, backoff.next_delay())
                continue
            self.state.migrations = status.as_dict()
            self.state.mark_db_ok()
            return

    # ---- main loop ----

    async def main_loop(self) -> None:
        """Alternate candidate and leader until stopped."""
        if self.stop_event.is_set():
            return
        elector = Elector(self.settings, self.state, self._pool)
        leader_services = ServiceGroup(
            [*self._composition.leader_only, InstancePruner(self._pool)], self.state)
        while not self.stop_event.is_set():
            leadership = await elector.campaign(self.stop_event)
            if leadership is None:
                break
            leader_services.start(leadership)
            reason = await elector.hold(leadership, self.stop_event)
            if reason == TransitionReason.STOPPING:
                reason = await self._drain(elector, leadership, leader_services)
                resign = reason == TransitionReason.STOPPING
            else:
                resign = False
                # Stop leader work before anything else: we may no longer be trusted.
                leadership.lost.set()
            self.state.set_role(Role.DEMOTING, term=leadership.term, reason=reason)
            stopped = await leader_services.stop(self.settings.leader_stop_grace_s)
            await asyncio.shield(elector.release(leadership, reason=reason, resign=resign))
            if not stopped:
                logger.critical("leader_service_stuck", extra={"term": leadership.term})
                self.exit_code = EXIT_UNFENCED
                os._exit(EXIT_UNFENCED)  # a stuck task would otherwise run unfenced
            self.state.set_role(Role.FOLLOWER, term=None, reason=reason)

    async def _drain(self, elector: Elector, leadership: Leadership,
                     services: ServiceGroup) -> TransitionReason:
        """Let leader services finish in-flight work while the lease is still renewed."""
        drained = asyncio.Event()
        renewing = asyncio.create_task(elector.hold(leadership, drained), name="drain-renew")
        draining = asyncio.create_task(
            services.drain(leadership, self.settings.shutdown_grace_s), name="drain-services")
        await asyncio.wait({renewing, draining}, return_when=asyncio.FIRST_COMPLETED)
        drained.set()
        reason = await renewing
        if not draining.done():
            leadership.lost.set()
            draining.cancel()
        await asyncio.wait({draining})
        return reason

    # ---- shutdown ----

    async def shutdown(self) -> None:
        """Stop everything in dependency order; safe to call after a partial startup."""
        self.state.stopping = True
        # 1. Stop HTTP intake (in-flight requests finish; webhook bodies are already durable).
        if self._http is not None:
            await self._http.stop()
        # 2. Stop always-on services (heartbeat, composition's own).
        if self._always is not None:
            await self._always.stop(self.settings.leader_stop_grace_s)
        # 3. Tell the cluster we left (if we ever joined), then close composition resources.
        if self._always is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._heartbeat.mark_stopped()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                logger.warning("mark_stopped_failed", extra={"error": str(exc)})
        for close in self._composition.on_close:
            await close()
        # 4. Close the pool last: everything above may still need it.
        await self._pool.close(timeout=2.0)
        logger.info("instance_stopped", extra={"exit_code": self.exit_code})

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning("forced_exit", extra={"signal": sig.name})
            os._exit(EXIT_FORCED)
        self.request_stop(reason=sig.name)
