"""Scheduled maintenance (leader only): the periodic jobs areas contribute, run by APScheduler
inside the leader's event loop.

Each area hands the composition root its `ScheduledJob`s (a name, an interval, and
`run(leadership)`); Maintenance only schedules what it is given and knows no area's tables or
queries. A job's `run` makes its own fenced unit of work, so a deposed leader's job changes
nothing. Every job runs once on promotion, then every `every_s`; runs of one job never
overlap, and a run that misses its time by MISFIRE_GRACE_S is skipped, not run late.
The scheduler lives exactly as long as the leadership term: started on promotion, shut down
(without waiting for running jobs) on demotion or drain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from supervisor.election import Leadership

# A job that misses its time by this much (e.g. during a long GC pause) is skipped, not run late.
MISFIRE_GRACE_S = 60


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A periodic leader job: its name, its interval in seconds, and the work of one run."""

    name: str
    every_s: float
    run: Callable[[Leadership], Awaitable[object]]


class Maintenance:
    """Run the areas' periodic jobs while this instance leads."""

    name = "maintenance"

    def __init__(self, jobs: Sequence[ScheduledJob]) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"scheduled job names must be unique: {names}")
        self._jobs = list(jobs)

    async def run(self, leadership: Leadership | None) -> None:
        """Schedule the jobs and keep them running until draining or cancelled."""
        assert leadership is not None, "leader-only service"
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(),
                                     job_defaults={"coalesce": True, "max_instances": 1,
                                                   "misfire_grace_time": MISFIRE_GRACE_S})
        for job in self._jobs:
            scheduler.add_job(job.run, "interval", seconds=job.every_s, args=[leadership],
                              id=job.name, name=job.name, next_run_time=datetime.now(UTC))
        scheduler.start()
        try:
            await leadership.draining.wait()
        finally:
            scheduler.shutdown(wait=False)
