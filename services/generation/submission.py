"""Submission bookkeeping for the submitter and the status poller (the loops are elsewhere).

The submitter's steps for one job, each its own fenced transaction but the HTTP call:

1. `claim_pending`: pending jobs in fair order, each claimed under a lease
   (`submit_claimed_at`, `lease_s`) so a dead submitter's jobs are claimed again later;
2. `begin_submit`: count an attempt and store the sha256 of a fresh random token (the hashes
   of earlier attempts stay valid); after `max_attempts` the job fails and its hold is
   released instead;
3. createTask at Kie with callBackUrl = .../kie/callback/<job id>/<token> (not here: HTTP);
4. `record_submitted`: store the task id, guarded by status `pending`; or, when Kie refused
   the attempt with a retryable answer (5xx, 429, 455: no task was made), `release_submit`:
   free the claim and set `submit_retry_at`, so the next attempt comes after a backoff of
   seconds instead of the lease.

Crash analysis:
- before 2 commits: nothing changed but the claim; the job is claimed again after the lease.
- between 2 and 3 (token stored, Kie never called): the lease passes, the job is claimed
  again, a new attempt and token are made; the unused token is harmless.
- between 3 and 4 (Kie accepted, task id lost): the job stays `pending`, but the callback URL
  names the job and carries the attempt's token, so Kie's callback alone completes it (it is
  stored, and settlement accepts a `pending` job). Until then the lease may pass and the job
  be submitted again (a second Kie task; the user still pays once: settlement is once per
  job); a job with a stored callback is never claimed again.
- after 4: the job is `submitted`; the poller asks Kie about it if no callback comes.

The poller's `claim_for_poll` picks submitted jobs whose `next_poll_at` is due and pushes it
back (base_s doubling per poll, at most max_s), in the same statement: a crash after the
claim only delays that job's next poll.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from services.generation.settlement import Failed, apply_outcome
from services.generation.store import Job, JobStatus, JobStore
from supervisor.election import NO_FENCE

logger = logging.getLogger(__name__)

# 32 random bytes: a callback token cannot be guessed.
CALLBACK_TOKEN_BYTES = 32
# The code a job fails with when every submission attempt was used.
ATTEMPTS_EXHAUSTED_CODE = "submit_attempts_exhausted"
# Kie usually calls back within a minute; poll only jobs it has been quiet about.
FIRST_POLL_AFTER_S = 60.0
POLL_BASE_INTERVAL_S = 30.0
POLL_MAX_INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class SubmitTicket:
    """One submission attempt: its number and the token to put in the callback URL."""

    attempt: int
    token: str


def token_hash(token: str) -> bytes:
    """Return the sha256 of a callback token (only the hash is stored)."""
    return hashlib.sha256(token.encode()).digest()


async def claim_pending(conn: psycopg.AsyncConnection, *, limit: int,
                        lease_s: float) -> list[Job]:
    """Claim up to limit pending jobs to submit, fair across users, under a lease of lease_s."""
    return await JobStore(conn).claim_pending(limit=limit, lease_s=lease_s)


async def begin_submit(conn: psycopg.AsyncConnection, job_id: int, *,
                       max_attempts: int) -> SubmitTicket | None:
    """Start a submission attempt: return its fresh token, or None if the job is not pending.

    When max_attempts were already made, fail the job (releasing its hold) and return None.
    """
    jobs = JobStore(conn)
    token = secrets.token_urlsafe(CALLBACK_TOKEN_BYTES)
    attempt = await jobs.begin_submit(job_id, token_hash=token_hash(token),
                                      max_attempts=max_attempts)
    if attempt is not None:
        logger.info("job_submit_started", extra={"job_id": job_id, "attempt": attempt})
        return SubmitTicket(attempt=attempt, token=token)
    job = await jobs.job(job_id)
    if job is not None and job.status is JobStatus.PENDING:
        # Pending but refused: the attempts are used up.
        await apply_outcome(conn, job_id, Failed(code=ATTEMPTS_EXHAUSTED_CODE,
                                                 message=f"{max_attempts} attempts failed"))
    return None


async def release_submit(conn: psycopg.AsyncConnection, job_id: int, *, attempt: int,
                         delay_s: float) -> bool:
    """Free a refused attempt's claim; the next attempt comes after delay_s (False: not ours)."""
    return await JobStore(conn).release_submit(job_id, attempt=attempt, delay_s=delay_s)


async def record_submitted(conn: psycopg.AsyncConnection, job_id: int, task_id: str, *,
                           first_poll_s: float = FIRST_POLL_AFTER_S,
                           fence: Mapping[str, object] = NO_FENCE) -> Job | None:
    """Store Kie's task id on the pending job; None if it was no longer pending.

    One statement: in a fenced transaction as it is, or alone in autocommit with
    fence=`Leadership.fence_params()` (the submitter: the job's row is locked only while it
    runs, so a callback stored for the job meanwhile hardly waits). Orphan callbacks that
    already arrived for this task id (rare) are moved to the job by a second statement; a
    crash in between leaves them to the applier's sweep.
    """
    jobs = JobStore(conn)
    recorded = await jobs.record_submitted(job_id, task_id=task_id, first_poll_s=first_poll_s,
                                           fence=fence)
    if recorded is None:
        return None
    job, has_orphans = recorded
    if has_orphans:
        await jobs.reconcile_orphans(task_id)
    logger.info("job_submitted", extra={"job_id": job_id, "task_id": task_id})
    return job


async def claim_for_poll(conn: psycopg.AsyncConnection, *, limit: int,
                         base_s: float = POLL_BASE_INTERVAL_S,
                         max_s: float = POLL_MAX_INTERVAL_S) -> list[Job]:
    """Claim submitted jobs with no news whose poll is due, backing their next poll off."""
    return await JobStore(conn).claim_poll(limit=limit, base_s=base_s, max_s=max_s)
