"""The callback inbox: Kie's answers kept durably on any instance, applied by the leader.

Kie calls back on ANY instance (the balancer picks one), so `store_callback` needs no fence:
a follower runs it in a transaction of its own, the leader inside the fenced transaction
that also settles the job (callback_ingress.py). In one round trip it stores the raw payload
once (unique on the job and the payload's sha256: a duplicate delivery changes nothing) and
reads the sha256 of every submission attempt's token, then checks the URL's token against
them with `hmac.compare_digest` (an unknown job is checked against a dummy hash the same
way, so both refusals cost the same) and rolls the store back if it is refused; it
NOTIFYs `job_callbacks` unless the caller settles it itself (the leader's ingress:
PostgreSQL serializes the commits of all notifying transactions on one lock, which a burst
of callbacks would queue on). The route answers 200 only after the commit: Kie retries a
callback that got no 200, and the retry is a no-op once stored.

Payloads that name a Kie task but no job (a task-id-only path) are kept in
`orphan_callbacks` by `store_task_callback`, and moved to their job when its task id is
recorded (`record_submitted`) or by the leader's periodic `reconcile_orphans` (which covers
an orphan stored while the task id was being recorded).

The leader reads `pending_callbacks` in a fenced transaction, turns each payload into an
outcome (the Kie client's job) and calls `apply_callbacks`, which settles the batch's jobs
and marks its callbacks applied in that same transaction.

Crash analysis: storing is one statement (insert + notify), committed before the 200 (a
refused token's insert is rolled back, never committed); a crash before it loses nothing
Kie will not resend. A lost wake-up (a NOTIFY, or an in-process wake of an applier that
stopped leading at that moment) only delays the leader until its next sweep
(POLL_INTERVAL_S). Applying is one fenced transaction: a crash before its commit
leaves the callback unapplied and the job unsettled, so the next leader applies it; after
the commit both are done, and settlement is once per job anyway.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence

import psycopg

from services.generation.errors import CallbackUnauthorized, JobNotFound
from services.generation.settlement import Outcome, Settlement, apply_outcomes
from services.generation.store import CallbackSource, JobStore, NewCallback, StoredCallback
from services.generation.submission import token_hash

logger = logging.getLogger(__name__)

# Compared against when the job is unknown, so an unknown job costs what a wrong token costs.
_DUMMY_HASH = bytes(32)


async def store_callback(conn: psycopg.AsyncConnection, job_id: int, token: str,
                         payload: Mapping[str, object], *,
                         notify: bool = True) -> NewCallback | None:
    """Verify the job's token and store the payload once; return it, None if a duplicate.
    notify=False when the caller settles it itself (the leader's ingress).

    Raise JobNotFound for an unknown job and CallbackUnauthorized for a wrong token; both
    leave nothing stored. One round trip: the payload is stored with the read of the job's
    token hashes, inside a transaction of its own (a savepoint within the caller's) that a
    refusal rolls back.
    """
    async with conn.transaction():
        checked = await JobStore(conn).store_checked_callback(
            job_id, source=CallbackSource.CALLBACK, payload=payload, notify=notify)
        given = token_hash(token)
        matched = False
        for known in (checked.token_hashes if checked else None) or [_DUMMY_HASH]:
            matched |= hmac.compare_digest(given, known)  # no early exit: same cost per hash
        if checked is None:
            raise JobNotFound(f"no job {job_id}")
        if not matched:
            raise CallbackUnauthorized(f"callback token refused for job {job_id}")
    stored = checked.stored
    logger.info("callback_stored", extra={"job_id": job_id,
                                          "callback_id": stored.id if stored else None,
                                          "duplicate": stored is None})
    return stored


async def store_poll_result(conn: psycopg.AsyncConnection, job_id: int,
                            payload: Mapping[str, object], *,
                            notify: bool = True) -> NewCallback | None:
    """Store the status poller's answer for a job like a callback; None if a duplicate."""
    return await JobStore(conn).store_callback(job_id, source=CallbackSource.POLL,
                                               payload=payload, notify=notify)


async def store_task_callback(conn: psycopg.AsyncConnection, task_id: str,
                              payload: Mapping[str, object]) -> int | None:
    """Store an authenticated payload that names only a Kie task id.

    It goes to the job with that task id, or is kept as an orphan until the job has it.
    Return the stored callback's id when it matched a job, else None.
    """
    jobs = JobStore(conn)
    job_id = await jobs.job_id_by_task(task_id)
    if job_id is None:
        orphan_id = await jobs.store_orphan(task_id, payload)
        logger.info("callback_orphaned", extra={"task_id": task_id, "orphan_id": orphan_id})
        return None
    stored = await jobs.store_callback(job_id, source=CallbackSource.CALLBACK, payload=payload)
    return stored.id if stored else None


async def reconcile_orphans(conn: psycopg.AsyncConnection) -> int:
    """Move every orphan callback whose task id now names a job to it; return how many."""
    moved = await JobStore(conn).reconcile_orphans()
    if moved:
        logger.info("orphans_reconciled", extra={"moved": moved})
    return moved


async def pending_callbacks(conn: psycopg.AsyncConnection, *,
                            limit: int) -> list[StoredCallback]:
    """Return callbacks not applied yet, oldest first, locked for this transaction."""
    return await JobStore(conn).pending_callbacks(limit=limit)


async def apply_callbacks(conn: psycopg.AsyncConnection,
                          answers: Sequence[tuple[StoredCallback, Outcome | None]]
                          ) -> list[Settlement | None]:
    """Settle each callback's job with its outcome (None: not final yet, nothing to settle)
    and mark every callback applied, in order and in one transaction (two round trips for
    the settlements, the mark riding with them); return each one's settlement."""
    final = [(callback.job_id, outcome) for callback, outcome in answers if outcome]
    await JobStore(conn).mark_callbacks_applied([callback.id for callback, _ in answers])
    settled = iter(await apply_outcomes(conn, final))
    return [next(settled) if outcome else None for _, outcome in answers]
