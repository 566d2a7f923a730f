"""Delivery bookkeeping for the leader's delivery worker (the sending loop is elsewhere).

The worker claims finished, undelivered jobs (`claim_deliveries`: SKIP LOCKED, a lease on
`delivering_at` of `lease_s`, the claim numbered by `delivery_attempts`), sends the results
to Telegram, then records what Telegram gave back (`record_delivered`: the file_ids, so
history can re-send a result after Kie's URLs expire) or that it cannot be delivered
(`record_undeliverable`, e.g. the user blocked the bot). A failed attempt frees its claim
with a retry time (`release_delivery`: the next attempt comes after a backoff of seconds,
not after the lease); once the attempts are spent, `record_unavailable` closes the delivery
and refunds a charged result in the same transaction. All are guarded by the claim's
attempt number: a worker whose lease passed and whose job was claimed again records nothing.

Money: a result the user never got is not charged. `record_unavailable` (attempts spent: the
file could not be read, or Telegram kept failing) refunds the committed price once
(`settlement.refund_charge`, the operators' refund key). A user who blocked the bot (403)
or whose chat Telegram refuses stays charged: Kie made the result and it exists; the
obstacle is on the user's side.

Crash analysis: a crash after the claim and before the record (or the release) leaves the
job claimed; the next leader's worker frees it when it starts (`release_deliveries`), else
the lease expires; the job is claimed again and sent again (at-least-once: the user may get
the result twice, never zero times). After the record the job is never claimed again. The
undeliverable record and its refund are one transaction: both or neither, and a replay
finds the delivery closed (and the refund key used) and changes nothing.

`read_job` and `user_history` read jobs for status messages and history re-sends by file_id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg

from services.generation.settlement import refund_charge
from services.generation.store import Job, JobStore
from supervisor.election import NO_FENCE

# Sending a video can take a while; a lease shorter than that would double-send.
DELIVERY_LEASE_S = 300.0
# One screen of history.
HISTORY_LIMIT = 10
# The reason a delivery whose attempts were spent starts with (the audit looks for its
# refund: sql/invariants.sql matches this prefix).
UNAVAILABLE_REASON = "result_unavailable"


async def read_job(conn: psycopg.AsyncConnection, job_id: int) -> Job | None:
    """Return the job (for its status message or a re-send), or None."""
    return await JobStore(conn).job(job_id)


async def user_history(conn: psycopg.AsyncConnection, user_id: int, *,
                       limit: int = HISTORY_LIMIT) -> list[Job]:
    """Return the user's latest jobs, newest first; delivered ones keep their file_ids."""
    return await JobStore(conn).recent_jobs(user_id, limit=limit)


async def claim_deliveries(conn: psycopg.AsyncConnection, *, instance_id: str, limit: int,
                           lease_s: float = DELIVERY_LEASE_S) -> list[Job]:
    """Claim up to limit finished undelivered jobs, oldest first, under a delivery lease."""
    return [job for job, _ in await claim_deliveries_with_languages(
        conn, instance_id=instance_id, limit=limit, lease_s=lease_s)]


async def claim_deliveries_with_languages(
        conn: psycopg.AsyncConnection, *, instance_id: str, limit: int,
        lease_s: float = DELIVERY_LEASE_S,
        job_ids: Sequence[int] | None = None) -> list[tuple[Job, str | None]]:
    """Claim as `claim_deliveries` (of job_ids only, if given), each job with its user's
    language (None: unknown)."""
    return await JobStore(conn).claim_deliveries(instance_id=instance_id, limit=limit,
                                                 lease_s=lease_s, job_ids=job_ids)


async def record_delivered(conn: psycopg.AsyncConnection, job: Job, *,
                           file_ids: Sequence[str], message_ids: Sequence[int],
                           fence: Mapping[str, object] = NO_FENCE) -> bool:
    """Record a claimed job delivered with Telegram's file_ids; False if the claim was lost.

    One statement: in a fenced transaction as it is, or alone in autocommit with
    fence=`Leadership.fence_params()` (it checks the term itself).
    """
    return await JobStore(conn).record_delivered(job.id, attempt=job.delivery_attempts,
                                                 file_ids=file_ids, message_ids=message_ids,
                                                 fence=fence)


async def record_undeliverable(conn: psycopg.AsyncConnection, job: Job, *, reason: str,
                               fence: Mapping[str, object] = NO_FENCE) -> bool:
    """Record that a claimed job cannot be delivered; False if the claim was lost.
    fence: as record_delivered's."""
    return await JobStore(conn).record_undeliverable(job.id, attempt=job.delivery_attempts,
                                                     reason=reason, fence=fence)


async def release_delivery(conn: psycopg.AsyncConnection, job: Job, *, delay_s: float) -> bool:
    """Free a failed attempt's claim; the next attempt comes after delay_s (False: not ours)."""
    return await JobStore(conn).release_delivery(job.id, attempt=job.delivery_attempts,
                                                 delay_s=delay_s)


async def record_unavailable(conn: psycopg.AsyncConnection, job: Job, *, error: str) -> bool:
    """Close a claimed delivery whose attempts are spent, refunding a charged result once.

    Return False (and change nothing) when the claim was lost.
    """
    if not await record_undeliverable(conn, job, reason=f"{UNAVAILABLE_REASON}: {error}"[:300]):
        return False
    await refund_charge(conn, job, note=f"result of job {job.id} could not be delivered")
    return True
