"""The leader's delivery worker: finished jobs -> Telegram -> file_ids recorded.

Overview (a supervisor.worker.Worker over DeliveryQueue)
    claim     `claim_deliveries_with_languages`: finished, undelivered jobs under a lease
              on delivering_at (the claim numbered by delivery_attempts, the guard of the
              record), each with its user's language (no extra query per delivery); after
              each turn the submitter is nudged (its backpressure waits for claims). Woken
              in process (`wake`) by whoever finished jobs on this leader (the applier, the
              poller's expiry, the submitter's failures), else every POLL_INTERVAL_S.
              The applier claims the jobs it finished the same way inside its own
              transaction (`claim_finished`, up to the free slots) and hands them over
              once committed (`adopt`): those skip the wake-up and the claim turn
    handle    succeeded: the result files through services.delivery's sender (by URL,
              upload, document or link by size; albums), caption = the model's title;
              failed or expired: one message with the user-safe reason (ru/en, from
              services.kie's failure texts) and that the hold was released;
              each with its buttons (services.telegram.results: Repeat, Change parameters,
              Another model, Menu; a failure Repeat and Menu);
              then `record_delivered` (one self-fencing statement in autocommit) with
              Telegram's file_ids and message ids,
              and only then the job's status message is queued to show the final stage
              (never awaited: a status edit never delays a delivery)
    settle    a failed attempt frees its claim with a retry time (`release_delivery`: the
              worker's Backoff, 2 s doubling up to 60 s), so a transient failure is retried
              in seconds, not after the 300 s lease (which stays the backstop for a crash);
              a dead-lettered job (MAX_DELIVERY_ATTEMPTS spent) is closed with
              `record_unavailable`, which refunds a charged result in the same fenced
              transaction; the dead-letter hook then tells the user, best effort

Outcomes of a send
    sent          -> record_delivered(file_ids, message_ids)
    blocked (403) -> record_undeliverable("blocked"): the user blocked the bot; no retry.
                     Still charged: Kie made the result and it exists.
    rejected      -> record_undeliverable("rejected: ..."): Telegram refuses the chat
                     (still charged, as blocked)
    unavailable   -> raise: retried (Kie's CDN may lag) until MAX_DELIVERY_ATTEMPTS (about
                     3 minutes of backoff), then dead-lettered: refunded once (the key of
                     the operators' refund, so never twice) and the user told they were not
                     charged. A Telegram outage outlasting the attempts ends the same way.

Crash analysis: a crash after sending and before the record leaves the job claimed; the
next leader's worker frees every claim no task of its own holds when it starts (the worker's
`release_claims` at the start of a run), so the job is claimed again at once and sent again
(at-least-once: a result may arrive twice, never zero times; the chaos test counts these and
checks each lies in a SIGKILL window). The lease is the backstop for a leader that lives on
but lost the job (reaped after handler_timeout_s + margin). After the record the job is never
claimed again. A deposed leader's record is fenced and guarded by the claim's attempt. A
crash between a failed attempt and its release leaves the lease (the retry comes later,
nothing is lost). The dead letter's record and refund are one transaction; the hook runs
only after it committed (a crash in between: the user is not told, but is refunded).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import aiohttp
import orjson
import psycopg
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup
from psycopg_pool import AsyncConnectionPool

import supervisor.worker as worker
from services.catalog import Catalog
from services.catalog.loader import Model
from services.delivery.files import ResultFile, ResultKind
from services.delivery.sender import MAX_TEXT_UTF16, Delivery, Outcome, ResultSender, clip
from services.generation import (
    Job,
    JobStatus,
    claim_deliveries_with_languages,
    record_delivered,
    record_unavailable,
    record_undeliverable,
    release_delivery,
)
from services.generation.applier import read_answer
from services.generation.loops import LoopStore
from services.generation.store import JobStore
from services.kie import FailureReason, failure_reason
from services.kie.failures import reason_text
from services.telegram import texts as bot_texts
from services.telegram.results import next_text, result_keyboard
from services.telegram.texts import language_of
from supervisor.db import autocommit
from supervisor.election import Leadership, fencing_errors
from supervisor.runtime_state import RuntimeState

if TYPE_CHECKING:
    from services.generation.status_messages import JobStatusMessages

logger = logging.getLogger(__name__)

# Sending a 50 MB video can take minutes; a shorter lease would let a second claim resend.
DELIVERY_LEASE_S: Final[float] = 300.0
HANDLER_TIMEOUT_S: Final[float] = 240.0
# A failed attempt is retried after 2, 4, 8, 16, 32, 60, 60 s (about 3 minutes in all, for
# a lagging CDN or a Telegram outage) before the result is given up on and refunded.
MAX_DELIVERY_ATTEMPTS: Final[int] = 8
RETRY_INITIAL_S: Final[float] = 2.0
RETRY_MAX_S: Final[float] = 60.0
CONCURRENCY: Final[int] = 16
POLL_INTERVAL_S: Final[float] = 1.0
BLOCKED_REASON: Final[str] = "blocked"
# A job whose every delivery attempt died with its process (no handler ever returned).
RELEASED_SPENT_REASON: Final[str] = "delivery attempts used up (the process died each time)"
EXTENSION_KINDS: Final[dict[str, ResultKind]] = {
    **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif"), ResultKind.IMAGE),
    **dict.fromkeys(("mp4", "mov", "webm"), ResultKind.VIDEO),
    **dict.fromkeys(("mp3", "wav", "m4a", "ogg", "flac", "aac"), ResultKind.AUDIO),
}
CATEGORY_KINDS: Final[dict[str, ResultKind]] = {
    "image": ResultKind.IMAGE, "video": ResultKind.VIDEO, "audio": ResultKind.AUDIO,
}
EXPIRED_CODE: Final[str] = "deadline_passed"


class ResultsUnavailable(Exception):
    """None of a job's result files could be read (retried, then dead-lettered)."""


def result_kind(url: str, model: Model | None) -> ResultKind:
    """Return how to send a result: by its URL's extension, else by the model's category."""
    path = urlsplit(url).path
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if extension in EXTENSION_KINDS:
        return EXTENSION_KINDS[extension]
    if model is None:
        return ResultKind.OTHER
    if model.category == "upscale":
        return ResultKind.VIDEO if "video" in model.model_type else ResultKind.IMAGE
    return CATEGORY_KINDS.get(model.category, ResultKind.OTHER)


def failure_of(job: Job) -> FailureReason:
    """Return the user-level reason a job failed or expired."""
    if job.status is JobStatus.EXPIRED or job.fail_code == EXPIRED_CODE:
        return FailureReason.TIMEOUT
    return failure_reason(job.fail_code, job.fail_message)


class DeliveryQueue:
    """Finished, undelivered jobs as the worker's queue (claims are delivering_at leases)."""

    def __init__(self, instance_id: str, lease_s: float) -> None:
        self._instance_id = instance_id
        self._lease_s = lease_s
        # The claimed jobs' users' languages, read by the claim, taken by the handler.
        self.languages: dict[int, str | None] = {}

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """No channel: every settler runs on the leader and wakes the worker in process."""

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int, limit: int,
                    job_ids: Sequence[int] | None = None) -> list[worker.Job[Job]]:
        """Claim up to limit finished jobs to deliver (of job_ids only, if given)."""
        claimed = await claim_deliveries_with_languages(
            conn, instance_id=self._instance_id, limit=limit, lease_s=self._lease_s,
            job_ids=job_ids)
        self.languages.update((job.id, language) for job, language in claimed)
        return [worker.Job(key=job.id, attempts=job.delivery_attempts, payload=job)
                for job, _ in claimed]

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[worker.Settlement[Job]]) -> None:
        """Free failed attempts' claims until their retry time; close dead-lettered
        deliveries (refunding charged results); delivered ones were recorded."""
        # Users in order: two settlers that lock wallets in one order cannot deadlock.
        for settlement in sorted(settlements, key=lambda s: s.job.payload.user_id):
            job = settlement.job.payload
            if settlement.outcome is worker.Outcome.DEAD:
                await record_unavailable(conn, job, error=settlement.error or "dead letter")
            elif settlement.outcome is worker.Outcome.RETRY:
                await release_delivery(conn, job, delay_s=settlement.retry_in_s)

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable],
                             older_than_s: float,
                             max_attempts: int) -> list[worker.Released[Job]]:
        """Free the claims no task of ours holds (at start: a dead leader's, at once);
        record undeliverable the jobs whose delivery attempts are used up."""
        freed = await JobStore(conn).release_deliveries(
            held=[key for key in held if isinstance(key, int)], older_than_s=older_than_s)
        released = []
        for job in freed:
            spent = job.delivery_attempts >= max_attempts
            if spent:
                # Closed like any spent delivery: refunded, since the user may have nothing.
                await record_unavailable(conn, job, error=RELEASED_SPENT_REASON)
            released.append(worker.Released(worker.Job(key=job.id, attempts=job.delivery_attempts,
                                                       payload=job), dead_lettered=spent))
        return released


class DeliveryWorker:
    """Deliver finished jobs to their chats while this instance leads."""

    name = "kie-delivery"

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, catalog: Catalog,
                 state: RuntimeState, *, instance_id: str,
                 lease_s: float = DELIVERY_LEASE_S,
                 max_attempts: int = MAX_DELIVERY_ATTEMPTS,
                 status: JobStatusMessages | None = None,
                 retry_initial_s: float = RETRY_INITIAL_S,
                 retry_max_s: float = RETRY_MAX_S,
                 on_progress: Callable[[], None] | None = None) -> None:
        """Send with bot; claims carry instance_id and last lease_s; a failed attempt is
        retried after retry_initial_s, doubling up to retry_max_s; on_progress is called
        after each turn of the worker (claims taken: the submitter's backpressure waits
        for them)."""
        self._pool = pool
        self._status = status
        self._bot = bot
        self._catalog = catalog
        self._state = state
        self._sender: ResultSender | None = None
        self._on_progress = on_progress
        self._queue = DeliveryQueue(instance_id, lease_s)
        self.worker = worker.Worker(
            worker.WorkerConfig(name=self.name, concurrency=CONCURRENCY,
                                max_attempts=max_attempts, handler_timeout_s=HANDLER_TIMEOUT_S,
                                poll_interval_s=POLL_INTERVAL_S,
                                retry_initial_s=retry_initial_s, retry_max_s=retry_max_s,
                                pipeline=True),
            pool=pool, queue=self._queue, handle=self.deliver,
            on_dead_letter=self._tell_undeliverable,
            on_turn=self._turned)

    async def claim_finished(self, conn: psycopg.AsyncConnection, job_ids: Sequence[int],
                             leadership: Leadership) -> list[worker.Job[Job]]:
        """Claim jobs just finished in the caller's fenced transaction (the applier's), as
        many as the worker has free slots; give them to `adopt` once that committed. The
        rest wait for the worker's own claim (woken by their NOTIFY)."""
        limit = self.worker.free_slots(leadership)
        if not job_ids or limit <= 0:
            return []
        return await self._queue.claim(conn, term=leadership.term, limit=limit,
                                       job_ids=job_ids)

    def adopt(self, claimed: Sequence[worker.Job[Job]], leadership: Leadership) -> None:
        """Deliver jobs claimed by `claim_finished` (committed) now, without a claim turn."""
        self.worker.adopt(claimed, leadership)

    def wake(self) -> None:
        """Claim now: jobs were just finished (committed) in this process and not handed over
        (the applier had no free slot, the poller expired them, the submitter failed them)."""
        self.worker.wake()

    def _turned(self, settled: Sequence[worker.Settlement[Job]]) -> None:
        if self._on_progress is not None:
            self._on_progress()

    async def run(self, leadership: Leadership | None) -> None:
        """Run the worker (with one HTTP session for result files) until draining."""
        self._queue.languages.clear()  # a cancelled run's leftovers
        async with aiohttp.ClientSession() as http:
            self._sender = ResultSender(self._bot, http)
            try:
                await self.worker.run(leadership)
            finally:
                self._sender = None

    async def deliver(self, claimed: worker.Job[Job], leadership: Leadership) -> None:
        """Deliver one finished job and record what Telegram gave back."""
        job = claimed.payload
        lang: str
        if job.id in self._queue.languages:
            lang = language_of(self._queue.languages.pop(job.id))
        else:  # claimed by an earlier run of the worker (a claim's language is taken once)
            lang = await self._language(job.user_id)
        model = self._catalog.get(job.model_id)
        title = model.title.get(lang) if model is not None else job.model_id
        succeeded = job.status is JobStatus.SUCCEEDED
        buttons = result_keyboard(lang, job.id, succeeded=succeeded)
        if succeeded:
            delivery = await self._send_results(job, model, title, lang, buttons)
        else:
            delivery = await self._send_failure(job, lang, title, buttons)
        reason = None if delivery.outcome is Outcome.SENT else _reason(delivery)
        # One self-fencing statement in autocommit: one round trip, not BEGIN/fence/COMMIT.
        fence = leadership.fence_params()
        with fencing_errors():
            async with autocommit(self._pool) as conn:
                if reason is None:
                    await record_delivered(
                        conn, job, file_ids=[file_id or "" for file_id in
                                             delivery.file_ids(len(job.result_urls or []))],
                        message_ids=delivery.message_ids, fence=fence)
                else:
                    await record_undeliverable(conn, job, reason=reason, fence=fence)
        self._state.count(f"deliveries_{delivery.outcome}")
        if self._status is not None:
            self._status.finished(job, leadership, language=lang, undeliverable_reason=reason)

    async def _send_results(self, job: Job, model: Model | None, title: str, lang: str,
                            buttons: InlineKeyboardMarkup) -> Delivery:
        """Send a succeeded job's files; raise ResultsUnavailable when none can be read."""
        assert self._sender is not None
        if not job.result_urls:
            return await self._send_text_result(job, model, title, buttons)
        files = [ResultFile(result_kind(url, model), url) for url in job.result_urls]
        delivery = await self._sender.send(
            job.chat_id, files, caption=title, reply_markup=buttons,
            markup_text=next_text(lang, title))
        if delivery.outcome is Outcome.UNAVAILABLE:
            raise ResultsUnavailable(f"job {job.id}: no result file could be read")
        return delivery

    async def _send_text_result(self, job: Job, model: Model | None, title: str,
                                buttons: InlineKeyboardMarkup) -> Delivery:
        """Send a result that is text (speech to text), read from the job's Kie answer."""
        text = ""
        if model is not None:
            async with self._pool.connection() as conn:
                answers = await LoopStore(conn).job_answers(job.id)
            for source, payload in answers:
                state = read_answer(model, source, payload)
                if state is not None and state.result_object:
                    found = state.result_object.get("text")
                    text = found if isinstance(found, str) else orjson.dumps(
                        state.result_object).decode()
                    break
        message = await self._send_text(job.chat_id, clip(f"{title}\n\n{text}".strip(),
                                                          MAX_TEXT_UTF16), buttons)
        if message is None:
            return Delivery(Outcome.BLOCKED, detail=BLOCKED_REASON)
        return Delivery(Outcome.SENT, message_ids=[message])

    async def _send_text(self, chat_id: int, text: str,
                         buttons: InlineKeyboardMarkup | None = None) -> int | None:
        """Send a text message; return its id, None when the user blocked the bot."""
        try:
            message = await self._bot.send_message(chat_id, text, reply_markup=buttons)
        except TelegramForbiddenError:
            return None
        return message.message_id

    async def _send_failure(self, job: Job, lang: str, title: str,
                            buttons: InlineKeyboardMarkup) -> Delivery:
        """Tell the user why a job failed or expired (and that nothing was charged)."""
        reason = reason_text(failure_of(job), lang)
        text = bot_texts.get(lang, "delivery-failed", model=title, reason=reason)
        message = await self._send_text(job.chat_id, text, buttons)
        if message is None:
            return Delivery(Outcome.BLOCKED, detail=BLOCKED_REASON)
        return Delivery(Outcome.SENT, message_ids=[message])

    async def _tell_undeliverable(self, job: Job) -> None:
        """Tell the user a result could not be delivered and was not charged (best effort)."""
        lang = await self._language(job.user_id)
        model = self._catalog.get(job.model_id)
        title = model.title.get(lang) if model is not None else job.model_id
        if job.status is not JobStatus.SUCCEEDED:
            # Its hold was released at the failure.
            await self._send_failure(job, lang, title,
                                     result_keyboard(lang, job.id, succeeded=False))
            return
        refunded = bot_texts.rubles(job.price_kop) if job.price_kop > 0 else "none"
        await self._send_text(job.chat_id, bot_texts.get(lang, "result-undeliverable",
                                                          model=title, refunded=refunded))

    async def _language(self, user_id: int) -> str:
        """Return the language delivery speaks to a user in (ru or en)."""
        async with self._pool.connection() as conn:
            return language_of(await LoopStore(conn).user_language(user_id))


def _reason(delivery: Delivery) -> str:
    """Return the undeliverable reason kept on the job."""
    if delivery.outcome is Outcome.BLOCKED:
        return BLOCKED_REASON
    return f"{delivery.outcome}: {delivery.detail or ''}"[:300]
