"""Each job's status message: the stage it shows, edited through the StatusBoard, recorded.

The confirm card the user pressed becomes the job's status message: its id is stored with the
job in the transaction that creates it (`status_shown = queued`) and the confirm handler edits
the card to "queued". From then on the leader's loops move it:

    queued      the confirm handler's edit (noted on the board, so the throttle counts from it)
    generating  the submitter, after record_submitted; the refresher adds the elapsed time
                every REFRESH_INTERVAL_S while Kie works
    done | failed | expired
                the delivery worker, once the result (always a NEW message: an edit does not
                notify) or the failure notice was sent and recorded; a result that could not be
                delivered shows `failed` with its own text
    gone        Telegram refused an edit (message deleted, bot blocked): never edited again

Priority: status edits are the lowest traffic. They go out from the board's own tasks
(`StatusBoard.queue`, at most one edit per message every 3 s), never awaited by a loop; the
final edit is queued only after the result was sent; the refresher edits at most
REFRESH_EDITS_PER_ROUND messages a round, taking turns when more jobs run.

Recorded: once Telegram showed a new stage, `record_status_shown` (fenced; a final stage is
never replaced). The refresher reads `open_statuses` (jobs whose message shows a stage before
the final one) and catches up what a dead leader left.

Crash analysis: the board's state (pending texts, throttle times) is in the leader's memory
and lost on failover; that is fine, the new leader continues from the columns. An edit made
but not recorded is made again (the same text is "not modified", counted as shown); a running
job's next refresh shows `generating` with its time; a final edit pending at the crash is made
by the new leader's refresher, since the job is delivered and its stage still open. A status
edit never fails a job or its delivery: every refusal only forgets the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from psycopg_pool import AsyncConnectionPool

from services.catalog import Catalog
from services.delivery.status import OnShown, StatusBoard
from services.generation.delivery_worker import BLOCKED_REASON, failure_of
from services.generation.loops import LoopStore
from services.generation.store import Job, JobStatus, JobStore, StatusShown
from services.kie.failures import reason_text
from services.telegram import texts
from services.telegram.results import status_keyboard
from services.telegram.texts import language_of
from supervisor.aio import wait_event
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

# Elapsed time on a running job's message moves in steps this long (edits stay rare).
REFRESH_INTERVAL_S: Final[float] = 5.0
# Edits a refresh round may queue: ~4 per second at most, far below Telegram's 30 per second,
# so deliveries never queue behind progress.
REFRESH_EDITS_PER_ROUND: Final[int] = 20
# Open status messages read per round (running jobs and unfinished final edits).
REFRESH_SCAN_LIMIT: Final[int] = 500


def elapsed_text(seconds: float) -> str:
    """Return a duration as m:ss (h:mm:ss past an hour)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def final_stage(job: Job) -> StatusShown:
    """Return the final stage of a finished, delivered job."""
    if job.status is JobStatus.EXPIRED:
        return StatusShown.EXPIRED
    if job.status is JobStatus.SUCCEEDED and job.undeliverable_reason is None:
        return StatusShown.DONE
    return StatusShown.FAILED


class JobStatusMessages:
    """Show each job's stage on its status message, and record what was shown."""

    def __init__(self, pool: AsyncConnectionPool, board: StatusBoard, catalog: Catalog, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self.board = board
        self._catalog = catalog
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn = 0  # the job id the next refresh round starts after

    def running(self, job: Job, leadership: Leadership) -> None:
        """Show that Kie took the job (the submitter calls this after record_submitted)."""
        if job.status_message_id is not None:
            self._spawn(self._show_running(job, leadership), f"status-running-{job.id}")

    def finished(self, job: Job, leadership: Leadership, *, language: str | None,
                 undeliverable_reason: str | None = None) -> None:
        """Show a delivered job's final stage (the delivery worker calls this after recording
        the delivery; undeliverable_reason is what it recorded, if it could not deliver)."""
        if job.status_message_id is None:
            return
        if undeliverable_reason is not None:
            job = replace(job, undeliverable_reason=undeliverable_reason)
        if job.undeliverable_reason == BLOCKED_REASON:
            # No edit can reach a user who blocked the bot.
            self._spawn(self._record(job.id, StatusShown.GONE, leadership), f"status-gone-{job.id}")
            return
        stage, lang = final_stage(job), language_of(language)
        self._queue(job, lang, self._final_text(job, stage, lang), stage, leadership, final=True)

    async def refresh(self, leadership: Leadership) -> None:
        """Refresh running jobs' elapsed time; make final edits a dead leader never made."""
        async with self._pool.connection() as conn:
            opens = await JobStore(conn).open_statuses(limit=REFRESH_SCAN_LIMIT)
        # Take turns: start after the job refreshed last, so every running job gets its edits.
        opens.sort(key=lambda o: (o.job.id <= self._turn, o.job.id))
        budget = REFRESH_EDITS_PER_ROUND
        now = self._clock()
        for open_status in opens:
            job, language = open_status.job, open_status.language
            lang = language_of(language)
            if job.delivered_at is not None:
                self.finished(job, leadership, language=language)
            elif job.status is JobStatus.SUBMITTED and job.submitted_at is not None and budget:
                budget -= 1
                self._turn = job.id
                text = self._text(lang, "status-generating-for", job,
                                  elapsed=elapsed_text((now - job.submitted_at).total_seconds()))
                self._queue(job, lang, text, StatusShown.GENERATING, leadership,
                            record=job.status_shown is not StatusShown.GENERATING)

    async def close(self) -> None:
        """Stop the pending work: the board's edits and this layer's tasks."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self.board.close()

    async def _show_running(self, job: Job, leadership: Leadership) -> None:
        async with self._pool.connection() as conn:
            language = await LoopStore(conn).user_language(job.user_id)
        lang = language_of(language)
        self._queue(job, lang, self._text(lang, "status-generating", job),
                    StatusShown.GENERATING, leadership)

    def _queue(self, job: Job, language: str, text: str, stage: StatusShown,
               leadership: Leadership, *,
               final: bool = False, record: bool = True) -> None:
        assert job.status_message_id is not None
        self.board.queue(job.chat_id, job.status_message_id, text, final=final,
                         on_shown=self._on_shown(job.id, stage, leadership) if record else None,
                         reply_markup=status_keyboard(language, job.id))

    def _on_shown(self, job_id: int, stage: StatusShown, leadership: Leadership) -> OnShown:
        async def shown(showing: bool) -> None:
            await self._record(job_id, stage if showing else StatusShown.GONE, leadership)
        return shown

    async def _record(self, job_id: int, stage: StatusShown, leadership: Leadership) -> None:
        async with leadership.fenced(self._pool) as conn:
            await JobStore(conn).record_status_shown(job_id, stage)

    def _final_text(self, job: Job, stage: StatusShown, language: str) -> str:
        if stage is StatusShown.DONE:
            took = (job.finished_at or self._clock()) - job.created_at
            return self._text(language, "status-done", job,
                              elapsed=elapsed_text(took.total_seconds()))
        if stage is StatusShown.EXPIRED:
            return self._text(language, "status-expired", job)
        if job.status is JobStatus.SUCCEEDED:
            return self._text(language, "status-undelivered", job)
        return self._text(language, "status-failed", job,
                          reason=reason_text(failure_of(job), language))

    def _text(self, language: str, key: str, job: Job, **values: object) -> str:
        model = self._catalog.get(job.model_id)
        title = model.title.get(language) if model is not None else job.model_id
        return texts.get(language, key, model=title, **values)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._guarded(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception:  # a task's top level: a status message never fails anything else
            logger.exception("status_message_failed")


class StatusRefresher:
    """Refresh running jobs' status messages while this instance leads (a light loop)."""

    name = "job-status"

    def __init__(self, messages: JobStatusMessages, *, interval_s: float | None = None) -> None:
        """Refresh every interval_s (default REFRESH_INTERVAL_S, read now so tests can
        change it)."""
        self._messages = messages
        self._interval_s = REFRESH_INTERVAL_S if interval_s is None else interval_s

    async def run(self, leadership: Leadership | None) -> None:
        """Refresh every interval_s until draining; then drop what is pending."""
        assert leadership is not None, "leader-only service"
        try:
            while not leadership.draining.is_set():
                try:
                    await self._messages.refresh(leadership)
                except Exception:  # the loop's top level: the next round tries again
                    logger.exception("status_refresh_failed")
                await wait_event(leadership.draining, self._interval_s)
        finally:
            await self._messages.close()

