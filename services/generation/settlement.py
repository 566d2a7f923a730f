"""Settle a job's money exactly once: success commits its hold, failure and expiry release it.

`apply_outcome` runs in the leader's fenced transaction and does two things in it: move the
job to its final status (guarded in WHERE by an unfinished status, so only the first outcome
of a job wins; a replay or a duplicate callback finds it finished and changes nothing), then,
for a priced job, write the ledger's `commit` or `release` entry keyed `job:<id>:settle`
(and unique per job in the database). The user is never charged for a failure: only
`succeeded` commits, and a succeeded job whose result could not be delivered is refunded
(`refund_charge`, once per job, with the key the operators' refund uses).

Crash analysis: the status change and the ledger entry are one transaction. A crash before
its commit leaves the job unfinished and the hold open; the callback is still in the inbox
(not marked applied) or the job is still overdue, so the next leader applies it again. After
the commit, the re-application finds the job finished and does nothing.

Batches: `apply_outcomes` (the applier's batch of callbacks) and `expire_overdue` settle
several jobs in one transaction and two round trips: every finish first (psycopg's
executemany, pipelined), then every ledger entry.

Lock order: a settlement locks its job rows first, then (through the ledger trigger) the
users' wallets, in user order. Two settlers (callbacks and expiry) thus never wait on each
other's wallets in a cycle; expiry takes its job rows with SKIP LOCKED. Should PostgreSQL
still find a deadlock, it aborts one transaction (nothing is half-written; its loop retries).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from config import Settings
from services.billing.ledger import Entry, EntryKind, Move, apply_entries, apply_entry
from services.generation.errors import JobNotFound
from services.generation.store import Finish, Job, JobStatus, JobStore

logger = logging.getLogger(__name__)

# The code an expired job carries.
EXPIRED_CODE = "deadline_passed"


@dataclass(frozen=True, slots=True)
class Succeeded:
    """Kie made the results."""

    result_urls: Sequence[str]


@dataclass(frozen=True, slots=True)
class Failed:
    """Kie (or we) gave up on the job."""

    code: str
    message: str


Outcome = Succeeded | Failed


@dataclass(frozen=True, slots=True)
class Settlement:
    """The job after an outcome; applied is False when it had been finished before."""

    job: Job
    applied: bool


def expiry_deadlines(settings: Settings) -> dict[str, float]:
    """Return the seconds a job of each catalog category may take (JOB_EXPIRY_*)."""
    return {"image": settings.job_expiry_image_s, "video": settings.job_expiry_video_s,
            "audio": settings.job_expiry_audio_s, "upscale": settings.job_expiry_upscale_s}


def settle_key(job_id: int) -> str:
    """Return the idempotency key of the job's one commit or release entry."""
    return f"job:{job_id}:settle"


def refund_key(job_id: int) -> str:
    """Return the idempotency key of the one refund of a job's charge.

    The operators' refund (services/admin) and the automatic one of an undeliverable result
    use this same key, so a job is refunded at most once whichever comes first.
    """
    return f"admin:refund:job:{job_id}"


async def refund_charge(conn: psycopg.AsyncConnection, job: Job, *, note: str) -> bool:
    """Credit a succeeded, priced job's committed price back once; return True if now.

    An `adjustment` of +price naming the job, keyed by `refund_key`: a replay, or an operator's
    earlier refund, changes nothing. Other jobs were never charged: nothing to refund.
    """
    if job.status is not JobStatus.SUCCEEDED or job.price_kop <= 0:
        return False
    applied = await apply_entry(conn, user_id=job.user_id, kind=EntryKind.ADJUSTMENT,
                                balance_delta_kop=job.price_kop, hold_delta_kop=0,
                                idempotency_key=refund_key(job.id), job_id=job.id,
                                note=note[:500])
    logger.info("job_refunded", extra={"job_id": job.id, "price_kop": job.price_kop,
                                       "applied": applied})
    return applied


async def apply_outcome(conn: psycopg.AsyncConnection, job_id: int,
                        outcome: Outcome) -> Settlement:
    """Finish the job with outcome and settle its hold, once; raise JobNotFound if unknown."""
    [settlement] = await apply_outcomes(conn, [(job_id, outcome)])
    return settlement


async def apply_outcomes(conn: psycopg.AsyncConnection,
                         outcomes: Sequence[tuple[int, Outcome]]) -> list[Settlement]:
    """Finish each job with its outcome and settle its hold, once, as apply_outcome does, in
    two round trips for the lot (the finishes, then the ledger entries); in order, so a job
    named twice is settled by its first outcome. Raise JobNotFound if a job is unknown."""
    return await _settle(conn, [_finish(job_id, outcome) for job_id, outcome in outcomes])


async def expire_overdue(conn: psycopg.AsyncConnection, now: datetime,
                         deadlines_by_category: Mapping[str, float]) -> list[Job]:
    """Expire unfinished jobs older than their category's deadline (seconds) at now.

    Each expired job's hold is released; return the jobs expired by this call.
    """
    overdue = await JobStore(conn).overdue_jobs(now=now, deadlines_s=deadlines_by_category)
    settlements = await _settle(conn, [
        Finish(job_id, JobStatus.EXPIRED, fail_code=EXPIRED_CODE,
               fail_message="no result before the deadline") for job_id in overdue])
    return [settlement.job for settlement in settlements if settlement.applied]


def _finish(job_id: int, outcome: Outcome) -> Finish:
    if isinstance(outcome, Succeeded):
        return Finish(job_id, JobStatus.SUCCEEDED, result_urls=outcome.result_urls)
    return Finish(job_id, JobStatus.FAILED, fail_code=outcome.code,
                  fail_message=outcome.message)


async def _settle(conn: psycopg.AsyncConnection, finishes: Sequence[Finish]) -> list[Settlement]:
    """Record the finishes, then the ledger entry of each priced job finished now, in the
    users' order (two settlers lock wallets in one order: they cannot deadlock on them)."""
    if not finishes:
        return []
    jobs = JobStore(conn)
    finished = await jobs.finish_jobs(finishes)
    priced = sorted((job for job in finished if job is not None and job.price_kop > 0),
                    key=lambda job: (job.user_id, job.id))
    await apply_entries(conn, [_settle_move(job) for job in priced])
    settlements = []
    for finish, job in zip(finishes, finished, strict=True):
        if job is None:  # finished before (a duplicate, a late answer): nothing moves
            current = await jobs.job(finish.job_id)
            if current is None:
                raise JobNotFound(f"no job {finish.job_id}")
            settlements.append(Settlement(job=current, applied=False))
            continue
        logger.info("job_settled", extra={"job_id": job.id, "status": str(job.status),
                                          "price_kop": job.price_kop})
        settlements.append(Settlement(job=job, applied=True))
    return settlements


def _settle_move(job: Job) -> Move:
    """Return a finished, priced job's one ledger entry: commit on success, else release."""
    if job.status is JobStatus.SUCCEEDED:
        kind, balance_delta = EntryKind.COMMIT, 0
    else:
        kind, balance_delta = EntryKind.RELEASE, job.price_kop
    return Move(Entry(user_id=job.user_id, kind=kind, balance_delta_kop=balance_delta,
                      hold_delta_kop=-job.price_kop, job_id=job.id),
                settle_key(job.id), note=f"{job.status} job {job.id}")
