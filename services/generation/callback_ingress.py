"""Kie's callbacks, received on EVERY instance: checked, stored durably, answered.

Route `POST /kie/callback/{job_id}/{token}` (the callBackUrl the submitter gives Kie):

    1. body larger than MAX_BODY_BYTES                 -> 413
    2. not a JSON object naming a task id              -> 400 with the reason
    3. KIE_WEBHOOK_HMAC_KEY set and X-Webhook-Signature not Kie's for the task id and
       X-Webhook-Timestamp (within the tolerance)      -> 401
    4. store_callback: stored once per distinct payload in the statement that reads the
       job's token hashes, compared in constant time (an unknown job against a dummy hash
       the same way); a refused one is rolled back  -> 404 unknown job, 401 wrong token
    5. committed                                      -> 200 (a duplicate: 200 too,
       nothing changed); the database away            -> 503, so Kie sends it again

Where it is settled:
    on the leader (this process's applier runs under a live term), the store and the
    settlement are ONE fenced transaction: the token check, the store, the job's finish and
    its ledger entry, and the claim that hands the result to this process's delivery worker
    (`CallbackApplier.settle_stored`), committed before the 200. No wake-up, no applier
    turn, no second transaction on a result's way out (bench/generation.py: 2.5 fewer
    transactions per job, and the burst's callback -> sent tail shorter).
    on a follower, or when the leader's term ended or the database refused the settlement
    (a deadlock, a fence): only stored, with a NOTIFY naming the job's user that wakes the
    leader's applier, which settles it in its own fenced transaction.

Crash analysis: a crash before the commit loses nothing Kie will not resend (it had no
200): nothing was stored or settled. After it, the resend is a no-op (the payload is kept
once; settlement is once per job). A crash after the commit, before the hand-over, leaves
the result claimed by this term: the next leader's delivery worker frees every claim of a
dead leader at its start and sends it. Should the applier stop between the check and the
store, the next leader's sweep finds the callback.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final, Protocol

import orjson
import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from config.settings import Secret
from services.billing.ledger import BillingError
from services.generation import CallbackUnauthorized, JobNotFound, store_callback
from services.generation.applier import Settled
from services.generation.store import CallbackSource, NewCallback, StoredCallback
from services.kie import task_id_of, verify_callback_signature
from services.kie.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from supervisor.db import autocommit
from supervisor.election import FencedError, Leadership
from supervisor.http import json_response
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

CALLBACK_PREFIX: Final[str] = "/kie/callback"
CALLBACK_ROUTE: Final[str] = CALLBACK_PREFIX + r"/{job_id:\d{1,18}}/{token:[A-Za-z0-9_-]{1,128}}"
# Kie's largest callbacks (Suno's tracks with lyrics) are a few tens of kB.
MAX_BODY_BYTES: Final[int] = 1024 * 1024
OK_BODY: Final[bytes] = b'{"ok":true}'
DB_ERRORS = (psycopg.Error, PoolTimeout, OSError)


def callback_url(base_url: str, job_id: int, token: str) -> str:
    """Return the callBackUrl of one submission attempt of a job."""
    return f"{base_url.rstrip('/')}{CALLBACK_PREFIX}/{job_id}/{token}"


class BadCallback(ValueError):
    """A callback body that is not Kie's (the reason is safe to answer with)."""


def parse_callback_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """Return the body as a JSON object and its task id, or raise BadCallback."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadCallback("body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadCallback("body is not a JSON object")
    task_id = task_id_of(body)
    if task_id is None:
        raise BadCallback("body names no task id (data.taskId or data.task_id)")
    return body, task_id


class LocalApplier(Protocol):
    """The applier of this process, as the ingress settles through it."""

    @property
    def leading(self) -> Leadership | None:
        """The live term it applies for (this instance leads), else None."""

    async def settle_stored(self, conn: psycopg.AsyncConnection, callback: StoredCallback,
                            model_id: str, leadership: Leadership) -> Settled:
        """Settle a callback just stored in conn's fenced transaction."""

    def hand_over(self, settled: Settled, leadership: Leadership) -> None:
        """Deliver what the committed settlement claimed."""


class CallbackIngress:
    """Accept Kie's callbacks durably on any instance."""

    def __init__(self, pool: AsyncConnectionPool, state: RuntimeState, *,
                 hmac_key: Secret | None, applier: LocalApplier | None = None) -> None:
        """Store through pool; check signatures when hmac_key is set; wake `applier` (this
        process's) directly while it runs, else NOTIFY the leader's."""
        self._pool = pool
        self._state = state
        self._hmac_key = hmac_key
        self._applier = applier

    def install(self, app: web.Application) -> None:
        """Add the callback route to the HTTP app."""
        app.router.add_post(CALLBACK_ROUTE, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Store one callback, answering 200 only once it is durable."""
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return self._refuse(413, "body larger than 1 MB")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "body larger than 1 MB")
        if len(raw) > MAX_BODY_BYTES:
            return self._refuse(413, "body larger than 1 MB")
        try:
            body, task_id = parse_callback_body(raw)
        except BadCallback as exc:
            return self._refuse(400, str(exc))
        if self._hmac_key is not None and not verify_callback_signature(
                self._hmac_key.get(), task_id, request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER), time.time()):
            return self._refuse(401, "signature missing or wrong")
        job_id = int(request.match_info["job_id"])
        try:
            stored = await self._store(job_id, request.match_info["token"], body)
        except JobNotFound:
            return self._refuse(404, "no such job")
        except CallbackUnauthorized:
            return self._refuse(401, "wrong callback token")
        except DB_ERRORS as exc:
            self._state.record_error("kie_callback", exc)
            logger.error("kie_callback_store_failed", extra={"job_id": job_id,
                                                             "error": str(exc)[:200]})
            return self._refuse(503, "storage unavailable, retry later")
        self._state.count("kie_callbacks_stored" if stored else "kie_callbacks_duplicate")
        return web.Response(body=OK_BODY, content_type="application/json")

    async def _store(self, job_id: int, token: str,
                     body: dict[str, Any]) -> NewCallback | None:
        """Store a callback once, and settle its job at once while this instance leads;
        return what was stored, None for a duplicate."""
        leadership = self._applier.leading if self._applier is not None else None
        if leadership is not None:
            try:
                return await self._store_and_settle(job_id, token, body, leadership)
            except (FencedError, BillingError, *DB_ERRORS) as exc:
                # The term ended or the settlement was refused (by the database or the
                # ledger): store it as a follower does; an applier (the next leader's, if
                # this one is gone) settles it, and Kie gets its 200 once it is kept.
                logger.warning("kie_callback_settle_failed", extra={
                    "job_id": job_id, "error": str(exc)[:200]})
        # Pipelined: BEGIN travels with the store (and the token read), COMMIT alone: two
        # round trips; committed before the 200.
        async with autocommit(self._pool) as conn, conn.pipeline():
            return await store_callback(conn, job_id, token, body)

    async def _store_and_settle(self, job_id: int, token: str, body: dict[str, Any],
                                leadership: Leadership) -> NewCallback | None:
        """Store the callback and settle its job in ONE fenced transaction (no wake-up, no
        applier turn, no second transaction on a result's way out), then hand the result
        to delivery."""
        assert self._applier is not None
        async with leadership.fenced(self._pool, pipeline=True) as conn:
            stored = await store_callback(conn, job_id, token, body, notify=False)
            settled = None if stored is None else await self._applier.settle_stored(
                conn, StoredCallback(id=stored.id, job_id=job_id,
                                     source=CallbackSource.CALLBACK, payload=body),
                stored.model_id, leadership)
        if settled is not None:
            self._applier.hand_over(settled, leadership)
        return stored

    def _refuse(self, status: int, reason: str) -> web.Response:
        """Answer a refused callback with its reason, and count it."""
        self._state.count("kie_callbacks_refused")
        logger.info("kie_callback_refused", extra={"status": status, "reason": reason})
        return json_response({"ok": False, "error": reason}, status=status)
