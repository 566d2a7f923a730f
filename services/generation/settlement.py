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

Lock order: a settlement locks the job row, then (through the ledger trigger) the user's
wallet. Settle one job per transaction where two settlers may meet (callbacks and expiry):
a transaction that settles several jobs of one user can deadlock with another settler, and
PostgreSQL then aborts one of them (nothing is half-written; the loop retries).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from config import Settings
from services.billing.ledger import EntryKind, apply_entry
from services.generation.errors import JobNotFound
from services.generation.store import Job, JobStatus, JobStore

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
    jobs = JobStore(conn)
    if isinstance(outcome, Succeeded):
        job = await jobs.finish_job(job_id, status=JobStatus.SUCCEEDED,
                                    result_urls=outcome.result_urls)
    else:
        job = await jobs.finish_job(job_id, status=JobStatus.FAILED, fail_code=outcome.code,
                                    fail_message=outcome.message)
    return await _settle(conn, jobs, job_id, job)


async def expire_overdue(conn: psycopg.AsyncConnection, now: datetime,
                         deadlines_by_category: Mapping[str, float]) -> list[Job]:
    """Expire unfinished jobs older than their category's deadline (seconds) at now.

    Each expired job's hold is released; return the jobs expired by this call.
    """
    jobs = JobStore(conn)
    expired = []
    for job_id in await jobs.overdue_jobs(now=now, deadlines_s=deadlines_by_category):
        job = await jobs.finish_job(job_id, status=JobStatus.EXPIRED, fail_code=EXPIRED_CODE,
                                    fail_message="no result before the deadline")
        settlement = await _settle(conn, jobs, job_id, job)
        if settlement.applied:
            expired.append(settlement.job)
    return expired


async def _settle(conn: psycopg.AsyncConnection, jobs: JobStore, job_id: int,
                  finished: Job | None) -> Settlement:
    if finished is None:
        current = await jobs.job(job_id)
        if current is None:
            raise JobNotFound(f"no job {job_id}")
        return Settlement(job=current, applied=False)
    if finished.price_kop > 0:
        price = finished.price_kop
        if finished.status is JobStatus.SUCCEEDED:
            kind, balance_delta = EntryKind.COMMIT, 0
        else:
            kind, balance_delta = EntryKind.RELEASE, price
        await apply_entry(conn, user_id=finished.user_id, kind=kind,
                          balance_delta_kop=balance_delta, hold_delta_kop=-price,
                          idempotency_key=settle_key(job_id), job_id=job_id,
                          note=f"{finished.status} job {job_id}")
    logger.info("job_settled", extra={"job_id": job_id, "status": str(finished.status),
                                      "price_kop": finished.price_kop})
    return Settlement(job=finished, applied=True)
