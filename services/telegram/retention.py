"""The inbox's scheduled job (leader only): delete handled updates past their retention.

One fenced unit of work per run: a deposed leader's run deletes nothing. A crash mid-run rolls
the delete back; the next run (or the next leader's first run) deletes the same rows.
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from services.maintenance import ScheduledJob
from services.telegram.inbox import InboxStore
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

# Handled rows are few KB each; pruning every ten minutes keeps the table near its retention.
PRUNE_INBOX_EVERY_S = 600


def inbox_jobs(pool: AsyncConnectionPool, inbox: InboxStore, *,
               retention_hours: int) -> list[ScheduledJob]:
    """Return the inbox area's scheduled jobs (for inbox's bot)."""

    async def prune_inbox(leadership: Leadership) -> int:
        """Delete handled updates older than retention_hours; return how many."""
        async with leadership.fenced(pool) as conn:
            pruned = await inbox.prune_processed(conn, retention_hours=retention_hours)
        if pruned:
            logger.info("inbox_pruned", extra={"count": pruned})
        return pruned

    return [ScheduledJob("prune_inbox", PRUNE_INBOX_EVERY_S, prune_inbox)]
