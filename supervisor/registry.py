"""The instances registry: every process heartbeats its row; the leader prunes dead ones.

Crash analysis: a heartbeat is one upsert (a crash loses at most that beat; the row ages and
drops off the live view after LIVE_WINDOW_S); a prune is one fenced DELETE (a crash before its
commit deletes nothing, and a deposed leader's prune is refused by the fence).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import psycopg
from psycopg_pool import AsyncConnectionPool

from supervisor.aio import wait_event
from supervisor.election import Leadership
from supervisor.runtime_state import Role, RuntimeState
from supervisor.stores import InstanceStore

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# Instances seen within this window make up the cluster view on /health.
LIVE_WINDOW_S = 10.0
PRUNE_INTERVAL_S = 60.0
# Rows older than this belong to instances that are gone (Render deploys bring new ids).
STALE_AFTER_S = 600.0


class InstanceHeartbeat:
    """Keep this instance's row fresh and mirror the cluster into RuntimeState."""

    name = "instance-heartbeat"

    def __init__(self, pool: AsyncConnectionPool, state: RuntimeState) -> None:
        self._pool = pool
        self._state = state

    async def run(self, leadership: Leadership | None) -> None:
        """Heartbeat every HEARTBEAT_INTERVAL_S until cancelled."""
        while True:
            try:
                await self.beat()
            except (psycopg.Error, OSError) as exc:
                # The DB being away is not a crash of this service: /health reports it.
                self._state.mark_db_unreachable(self.name, exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    async def beat(self) -> None:
        """Write our row once and refresh the cluster view."""
        state = self._state
        async with self._pool.connection() as conn:
            store = InstanceStore(conn)
            await store.heartbeat(
                instance_id=state.instance_id, host=socket.gethostname(), pid=os.getpid(),
                version=state.version, started_at=state.started_at, role=state.role,
                term=state.term)
            live = await store.live(live_s=LIVE_WINDOW_S)
            state.cluster = [r for r in live if r["role"] != Role.STOPPED]
        state.mark_db_ok()

    async def mark_stopped(self) -> None:
        """Tell the cluster we left (best effort, on clean exit)."""
        async with self._pool.connection() as conn:
            await InstanceStore(conn).mark_stopped(instance_id=self._state.instance_id)


class InstancePruner:
    """Delete instance rows not seen for STALE_AFTER_S (leader only, fenced)."""

    name = "instance-pruner"

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def run(self, leadership: Leadership | None) -> None:
        """Prune every PRUNE_INTERVAL_S while leading."""
        assert leadership is not None, "leader-only service"
        while not leadership.draining.is_set():
            async with leadership.fenced(self._pool) as conn:
                pruned = await InstanceStore(conn).prune(stale_s=STALE_AFTER_S)
            if pruned:
                logger.info("instances_pruned", extra={"count": pruned})
            await wait_event(leadership.draining, PRUNE_INTERVAL_S)
