"""Scheduled maintenance (leader only), run by APScheduler inside the leader's event loop.

Jobs (each one fenced write transaction, so a deposed leader's job changes nothing):
- prune_inbox: delete handled Telegram updates older than INBOX_RETENTION_HOURS.
The scheduler lives exactly as long as the leadership term: started on promotion, shut
down (without waiting for running jobs) on demotion or drain.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg_pool import AsyncConnectionPool

from services.telegram.inbox import InboxStore
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

PRUNE_INBOX_EVERY_S = 600
# A job that misses its time by this much (e.g. during a long GC pause) is skipped, not run late.
MISFIRE_GRACE_S = 60


class Maintenance:
    """Run the periodic jobs while this instance leads."""

    name = "maintenance"

    def __init__(self, pool: AsyncConnectionPool, *, inbox: InboxStore,
                 inbox_retention_hours: int) -> None:
        self._pool = pool
        self._inbox = inbox
        self._retention_hours = inbox_retention_hours

    async def run(self, leadership: Leadership | None) -> None:
        """Schedule the jobs and keep them running until draining or cancelled."""
        assert leadership is not None, "leader-only service"
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(),
                                     job_defaults={"coalesce": True, "max_instances": 1,
                                                   "misfire_grace_time": MISFIRE_GRACE_S})
        scheduler.add_job(self.prune_inbox, "interval", seconds=PRUNE_INBOX_EVERY_S,
                          args=[leadership], id="prune_inbox", next_run_time=datetime.now(UTC))
        scheduler.start()
        try:
            await leadership.draining.wait()
        finally:
            scheduler.shutdown(wait=False)

    async def prune_inbox(self, leadership: Leadership) -> int:
        """Delete handled updates past retention; return how many."""
        async with leadership.fenced(self._pool) as conn:
            pruned = await self._inbox.prune_processed(conn, retention_hours=self._retention_hours)
        if pruned:
            logger.info("inbox_pruned", extra={"count": pruned})
        return pruned
