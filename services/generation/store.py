"""Generation jobs as stored: the status enum, the row type, and the one store of their SQL.

Every query of this area lives in `sql/jobs.sql` and is run only by `JobStore`, one method per
query. The functions of the other modules (request, submission, callbacks, settlement,
delivery) compose these methods inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.generation.errors import JobNotFound
from supervisor.election import NO_FENCE
from supervisor.sqlstore import QueryStore, Sent, first_rows, send_one

QUERIES = QueryStore(Path(__file__).with_name("sql") / "jobs.sql")
# The channel store_callback and reconcile_orphans notify; the leader's applier listens on it.
CALLBACKS_CHANNEL = "job_callbacks"


class JobStatus(StrEnum):
    """Statuses of a generation job, mirrored by the CHECK on generation_jobs.status."""

    PENDING = "pending"      # hold placed (if priced), not yet accepted by Kie
    SUBMITTED = "submitted"  # Kie returned a task id
    SUCCEEDED = "succeeded"  # Kie reported success; hold committed; results known
    FAILED = "failed"        # Kie or we gave up; hold released
    EXPIRED = "expired"      # no result within the category's deadline; hold released


class CallbackSource(StrEnum):
    """Where a stored callback came from, mirrored by the CHECK on job_callbacks.source."""

    CALLBACK = "callback"  # Kie called the job's URL with a valid token
    POLL = "poll"          # the status poller's answer from Kie
    ORPHAN = "orphan"      # arrived by task id before the job had it; matched later


class StatusShown(StrEnum):
    """What a job's status message last showed, mirrored by the CHECK on
    generation_jobs.status_shown (NULL: the job has no status message)."""

    QUEUED = "queued"          # the confirm card, edited by the handler that made the job
    GENERATING = "generating"  # Kie took the task (elapsed time refreshed while running)
    DONE = "done"              # final: the result was delivered below it
    FAILED = "failed"          # final: the reason, and that nothing was charged
    EXPIRED = "expired"        # final: no result in time, nothing charged
    GONE = "gone"              # deleted by the user, or the bot blocked: never edited again

    @property
    def final(self) -> bool:
        """Tell whether the message is never edited after showing this."""
        return self not in (StatusShown.QUEUED, StatusShown.GENERATING)


@dataclass(frozen=True, slots=True)
class Job:
    """One generation job row."""

    id: int
    user_id: int
    chat_id: int
    model_id: str
    params: dict[str, Any]
    price_kop: int
    free: bool
    category: str
    status: JobStatus
    idempotency_key: str
    kie_task_id: str | None
    submit_attempts: int
    poll_attempts: int
    result_urls: list[str] | None
    fail_code: str | None
    fail_message: str | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    next_poll_at: datetime | None
    delivering_at: datetime | None
    delivery_attempts: int
    delivered_at: datetime | None
    delivered_file_ids: list[str] | None
    undeliverable_reason: str | None
    status_message_id: int | None
    status_shown: StatusShown | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """Build a job from a generation_jobs row (extra columns are ignored)."""
        values = {f.name: row[f.name] for f in fields(cls)}
        values["status"] = JobStatus(values["status"])
        if values["status_shown"] is not None:
            values["status_shown"] = StatusShown(values["status_shown"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class StoredCallback:
    """A callback (or poll answer) kept in the inbox, waiting for the leader."""

    id: int
    job_id: int
    source: CallbackSource
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserLoad:
    """What a user has running now and has used of today's free quota."""

    active: int
    free_today: int


@dataclass(frozen=True, slots=True)
class OpenStatus:
    """A status message not showing its final stage yet, with what it needs to be shown."""

    job: Job
    language: str | None  # the user's chosen language, else Telegram's code


@dataclass(frozen=True, slots=True)
class NewCallback:
    """A callback just stored, with its job's model (whose adapter reads it)."""

    id: int
    model_id: str


@dataclass(frozen=True, slots=True)
class CheckedCallback:
    """A callback stored before its token was checked: the job's token hashes, and what was
    stored (None: the same payload was stored before)."""

    token_hashes: list[bytes]
    stored: NewCallback | None


@dataclass(frozen=True, slots=True)
class Finish:
    """A job's final status to record (`JobStore.finish_jobs`)."""

    job_id: int
    status: JobStatus
    result_urls: Sequence[str] | None = None
    fail_code: str | None = None
    fail_message: str | None = None


class JobStore:
    """The generation area's queries (sql/jobs.sql) on one connection, one method per query."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def job(self, job_id: int) -> Job | None:
        """Return the job, or None."""
        return await self._one_job("job", {"job_id": job_id})

    async def send_job_by_key(self, idempotency_key: str) -> Sent[Job | None]:
        """Send job_by_key (the job created under this idempotency key, or None), its result
        read later (pipelined: `sqlstore.send_one`)."""
        return await send_one(self._conn, QUERIES["job_by_key"],
                              {"idempotency_key": idempotency_key}, _job_or_none)

    async def recent_jobs(self, user_id: int, *, limit: int) -> list[Job]:
        """Return the user's latest jobs, newest first."""
        rows = await self._all("recent_jobs", {"user_id": user_id, "limit": limit})
        return [Job.from_row(r) for r in rows]

    async def send_user_load(self, user_id: int) -> Sent[UserLoad]:
        """Send user_load (the user's active jobs and today's free jobs), read later."""
        return await send_one(self._conn, QUERIES["user_load"], {"user_id": user_id},
                              _user_load)

    async def send_next_job_id(self) -> Sent[int]:
        """Send next_job_id (a new job's id, taken before its insert), read later."""
        return await send_one(self._conn, QUERIES["next_job_id"], {}, _job_id)

    async def send_insert_job(self, *, job_id: int, user_id: int, chat_id: int,
                              model_id: str, params: Mapping[str, object], price_kop: int,
                              category: str, free: bool, idempotency_key: str,
                              kie_cost_kop: int,
                              status_message_id: int | None = None) -> Sent[Job]:
        """Send insert_job (a pending job, showing `queued` on its status message if any),
        the inserted job read later."""
        return await send_one(self._conn, QUERIES["insert_job"], {
            "job_id": job_id, "user_id": user_id, "chat_id": chat_id, "model_id": model_id,
            "params": Jsonb(dict(params)), "price_kop": price_kop, "category": category,
            "free": free, "idempotency_key": idempotency_key, "kie_cost_kop": kie_cost_kop,
            "status_message_id": status_message_id}, _inserted_job)

    async def listen_callbacks(self) -> None:
        """Subscribe this (autocommit) session to stored callbacks and poll answers."""
        await self._conn.execute(QUERIES["listen_callbacks"])

    async def claim_pending(self, *, limit: int, lease_s: float) -> list[Job]:
        """Claim pending jobs for submission, in fair order."""
        rows = await self._all("claim_pending", {"limit": limit, "lease_s": lease_s})
        rows.sort(key=lambda r: (r["slot"], r["created_at"], r["id"]))
        return [Job.from_row(r) for r in rows]

    async def release_submissions(self, *, held: Collection[int],
                                  older_than_s: float) -> list[Job]:
        """Free pending jobs' submission claims not in held and at least older_than_s old."""
        rows = await self._all("release_submissions", {"held": list(held),
                                                       "older_than_s": older_than_s})
        return sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)

    async def recent_submissions(self, *, window_s: float, limit: int) -> list[float]:
        """Return how many seconds ago each of the last attempts (within window_s) began."""
        rows = await self._all("recent_submissions", {"window_s": window_s, "limit": limit})
        return [float(r["age_s"]) for r in rows]

    async def downstream_backlog(self, *, bound: int) -> int:
        """Return unapplied callbacks plus undelivered finished jobs ready to claim, counting
        each part up to bound."""
        row = await self._one("downstream_backlog", {"bound": bound})
        assert row is not None  # an aggregate always returns its row
        return int(row["n"])

    async def begin_submit(self, job_id: int, *, token_hash: bytes,
                           max_attempts: int) -> int | None:
        """Count an attempt and store its token hash; return the attempt number or None."""
        row = await self._one("begin_submit", {"job_id": job_id, "token_hash": token_hash,
                                               "max_attempts": max_attempts})
        return int(row["attempt"]) if row else None

    async def release_submit(self, job_id: int, *, attempt: int, delay_s: float) -> bool:
        """Free a refused attempt's claim, next attempt after delay_s; False if not ours."""
        row = await self._one("release_submit", {"job_id": job_id, "attempt": attempt,
                                                 "delay_s": delay_s})
        return row is not None

    async def record_submitted(self, job_id: int, *, task_id: str, first_poll_s: float,
                               fence: Mapping[str, object] = NO_FENCE
                               ) -> tuple[Job, bool] | None:
        """Mark a pending job submitted with its task id; return it and whether orphan
        callbacks wait for the task id, None if it was not pending. fence: as
        record_delivered's."""
        row = await self._one("record_submitted", {
            "job_id": job_id, "task_id": task_id, "first_poll_s": first_poll_s, **fence})
        return (Job.from_row(row), bool(row["has_orphans"])) if row else None

    async def claim_poll(self, *, limit: int, base_s: float, max_s: float) -> list[Job]:
        """Claim submitted jobs due for a status poll and back their next poll off."""
        rows = await self._all("claim_poll", {"limit": limit, "base_s": base_s, "max_s": max_s})
        return sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)

    async def store_checked_callback(self, job_id: int, *, source: CallbackSource,
                                     payload: Mapping[str, object],
                                     notify: bool) -> CheckedCallback | None:
        """Store a payload for the job once (and NOTIFY the applier if notify), before any
        token is checked (the caller rolls back a refused one); return it with the job's
        token hashes, None when there is no such job."""
        row = await self._one("store_callback", {"job_id": job_id, "source": str(source),
                                                 "payload": Jsonb(dict(payload)),
                                                 "notify": notify})
        if row is None:
            return None
        stored = None if row["id"] is None else NewCallback(id=int(row["id"]),
                                                            model_id=str(row["model_id"]))
        return CheckedCallback(token_hashes=[bytes(h) for h in row["hashes"]], stored=stored)

    async def store_callback(self, job_id: int, *, source: CallbackSource,
                             payload: Mapping[str, object],
                             notify: bool = True) -> NewCallback | None:
        """Store a payload for the job once (and NOTIFY the applier if notify); return it,
        None if a duplicate. Raise JobNotFound if there is no such job."""
        checked = await self.store_checked_callback(job_id, source=source, payload=payload,
                                                    notify=notify)
        if checked is None:
            raise JobNotFound(f"no job {job_id}")
        return checked.stored

    async def job_id_by_task(self, task_id: str) -> int | None:
        """Return the id of the job with this Kie task id, or None."""
        row = await self._one("job_id_by_task", {"task_id": task_id})
        return int(row["id"]) if row else None

    async def store_orphan(self, task_id: str, payload: Mapping[str, object]) -> int | None:
        """Keep an unmatched callback once; return its id, None if a duplicate."""
        row = await self._one("store_orphan", {"task_id": task_id,
                                               "payload": Jsonb(dict(payload))})
        return int(row["id"]) if row else None

    async def reconcile_orphans(self, task_id: str | None = None) -> int:
        """Move orphans that now match a job (of task_id only, if given) into its callbacks;
        return how many."""
        row = await self._one("reconcile_orphans", {"task_id": task_id})
        return int(row["n"]) if row else 0

    async def pending_callbacks(self, *, limit: int) -> list[StoredCallback]:
        """Return (locked) callbacks not applied yet, oldest first."""
        rows = await self._all("pending_callbacks", {"limit": limit})
        return [StoredCallback(id=r["id"], job_id=r["job_id"],
                               source=CallbackSource(r["source"]), payload=r["payload"])
                for r in rows]

    async def pending_callbacks_of_users(self, *, part: int, parts: int,
                                         limit: int) -> list[tuple[StoredCallback, str]]:
        """Return (locked) unapplied callbacks of one user partition with their job's model."""
        rows = await self._all("pending_callbacks_of_users",
                               {"part": part, "parts": parts, "limit": limit})
        return [(StoredCallback(id=r["id"], job_id=r["job_id"],
                                source=CallbackSource(r["source"]), payload=r["payload"]),
                 r["model_id"]) for r in rows]

    async def mark_callbacks_applied(self, callback_ids: Sequence[int]) -> None:
        """Record that stored callbacks were applied (its result is not read: in a pipeline
        the statement travels with the next one)."""
        await self._conn.execute(QUERIES["mark_callbacks_applied"],
                                 {"callback_ids": list(callback_ids)})

    async def finish_jobs(self, finishes: Sequence[Finish]) -> list[Job | None]:
        """Move unfinished jobs to their final status, in order and in one round trip; for
        each, the job, or None if it was already finished."""
        params = [{"job_id": f.job_id, "status": str(f.status),
                   "result_urls": Jsonb(list(f.result_urls)) if f.result_urls is not None
                   else None, "fail_code": f.fail_code, "fail_message": f.fail_message}
                  for f in finishes]
        return [_job_or_none(row)
                for row in await first_rows(self._conn, QUERIES["finish_job"], params)]

    async def overdue_jobs(self, *, now: datetime,
                           deadlines_s: Mapping[str, float]) -> list[int]:
        """Return (locked) ids of unfinished jobs past their category's deadline at now."""
        rows = await self._all("overdue_jobs", {
            "now": now, "categories": list(deadlines_s),
            "deadlines_s": [float(v) for v in deadlines_s.values()]})
        return [int(r["id"]) for r in rows]

    async def claim_deliveries(self, *, instance_id: str, limit: int, lease_s: float,
                               job_ids: Sequence[int] | None = None
                               ) -> list[tuple[Job, str | None]]:
        """Claim finished undelivered jobs (of job_ids only, if given) under a delivery
        lease, each with its user's language (None when unknown)."""
        rows = await self._all("claim_deliveries", {
            "instance_id": instance_id, "limit": limit, "lease_s": lease_s,
            "job_ids": None if job_ids is None else list(job_ids)})
        rows.sort(key=lambda r: (r["finished_at"], r["id"]))
        return [(Job.from_row(r), r["language"]) for r in rows]

    async def release_deliveries(self, *, held: Collection[int],
                                 older_than_s: float) -> list[Job]:
        """Free undelivered jobs' delivery claims not in held and at least older_than_s old."""
        rows = await self._all("release_deliveries", {"held": list(held),
                                                      "older_than_s": older_than_s})
        return sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)

    async def record_delivered(self, job_id: int, *, attempt: int, file_ids: Sequence[str],
                               message_ids: Sequence[int],
                               fence: Mapping[str, object] = NO_FENCE) -> bool:
        """Close the delivery of this claim; False if the claim was lost or it was closed.
        fence: `Leadership.fence_params()` when run alone in autocommit."""
        row = await self._one("record_delivered", {
            "job_id": job_id, "attempt": attempt, "file_ids": Jsonb(list(file_ids)),
            "message_ids": Jsonb(list(message_ids)), **fence})
        return row is not None

    async def release_delivery(self, job_id: int, *, attempt: int, delay_s: float) -> bool:
        """Free a failed delivery's claim, next attempt after delay_s; False if not ours."""
        row = await self._one("release_delivery", {"job_id": job_id, "attempt": attempt,
                                                   "delay_s": delay_s})
        return row is not None

    async def record_undeliverable(self, job_id: int, *, attempt: int, reason: str,
                                   fence: Mapping[str, object] = NO_FENCE) -> bool:
        """Close the delivery of this claim as impossible; False if the claim was lost.
        fence: as record_delivered's."""
        row = await self._one("record_undeliverable", {"job_id": job_id, "attempt": attempt,
                                                       "reason": reason, **fence})
        return row is not None

    async def record_status_shown(self, job_id: int, shown: StatusShown) -> bool:
        """Record what the job's status message shows now; False once it showed a final
        stage (or has no status message)."""
        row = await self._one("record_status_shown", {"job_id": job_id, "shown": str(shown)})
        return row is not None

    async def open_statuses(self, *, limit: int) -> list[OpenStatus]:
        """Return jobs whose status message shows a stage before the final one, oldest first."""
        rows = await self._all("open_statuses", {"limit": limit})
        return [OpenStatus(Job.from_row(r), r["language"]) for r in rows]

    async def user_jobs(self, user_id: int, *, offset: int, limit: int) -> tuple[list[Job], int]:
        """Return one page of the user's jobs, newest first, and their number in all."""
        rows = await self._all("user_jobs", {"user_id": user_id, "offset": offset,
                                             "limit": limit})
        return [Job.from_row(r) for r in rows], int(rows[0]["total"]) if rows else 0

    async def user_job(self, user_id: int, job_id: int) -> Job | None:
        """Return the user's job, or None (also for another user's job)."""
        return await self._one_job("user_job", {"user_id": user_id, "job_id": job_id})

    async def last_model(self, user_id: int) -> str | None:
        """Return the model id of the user's latest job, or None."""
        row = await self._one("last_model", {"user_id": user_id})
        return str(row["model_id"]) if row else None

    async def _one(self, query: str, params: Mapping[str, object]) -> dict[str, Any] | None:
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[query], params)
        return await cur.fetchone()

    async def _all(self, query: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[query], params)
        return await cur.fetchall()

    async def _one_job(self, query: str, params: Mapping[str, object]) -> Job | None:
        return _job_or_none(await self._one(query, params))


def _job_or_none(row: dict[str, Any] | None) -> Job | None:
    return Job.from_row(row) if row else None


def _inserted_job(row: dict[str, Any] | None) -> Job:
    assert row is not None  # INSERT ... RETURNING
    return Job.from_row(row)


def _user_load(row: dict[str, Any] | None) -> UserLoad:
    assert row is not None  # an aggregate always returns its row
    return UserLoad(active=row["active"], free_today=row["free_today"])


def _job_id(row: dict[str, Any] | None) -> int:
    assert row is not None  # nextval returns its row
    return int(row["id"])
