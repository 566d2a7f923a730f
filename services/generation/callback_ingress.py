"""Kie's callbacks, received on EVERY instance: checked, stored durably, answered.

Route `POST /kie/callback/{job_id}/{token}` (the callBackUrl the submitter gives Kie):

    1. body larger than MAX_BODY_BYTES                 -> 413
    2. not a JSON object naming a task id              -> 400 with the reason
    3. KIE_WEBHOOK_HMAC_KEY set and X-Webhook-Signature not Kie's for the task id and
       X-Webhook-Timestamp (within the tolerance)      -> 401
    4. store_callback: the job's token hashes compared in constant time (an unknown job is
       compared against a dummy hash the same way)     -> 404 unknown job, 401 wrong token
    5. stored once per distinct payload, committed   -> 200 (a duplicate: 200 too,
       nothing changed); the database away            -> 503, so Kie sends it again

Nothing is settled here: the leader's applier (services/generation/applier.py) applies
outcomes in fenced transactions. It is woken in process when it runs here (this instance
leads), else by the store's NOTIFY: PostgreSQL serializes the commits of every notifying
transaction on one lock, so the leader's own callbacks skip it. Should the applier stop
between the check and the store, the next leader's sweep finds the callback. A crash before
the commit loses nothing Kie will not resend (it had no 200); after it, the resend is a
no-op.
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
from services.generation import CallbackUnauthorized, JobNotFound, store_callback
from services.kie import task_id_of, verify_callback_signature
from services.kie.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from supervisor.db import autocommit
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
    """The applier of this process, as the ingress wakes it."""

    @property
    def running(self) -> bool:
        """Whether it applies now (this instance leads)."""

    def wake_user(self, user_id: int) -> None:
        """Wake the partition of the user whose callback was just stored."""


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
            # Autocommit: the token check is a read and the store one statement, each its
            # own transaction (two round trips, not four); the store commits before the 200.
            local = self._applier if self._applier is not None and self._applier.running \
                else None
            async with autocommit(self._pool) as conn:
                stored = await store_callback(conn, job_id, request.match_info["token"], body,
                                              notify=local is None)
            if stored is not None and local is not None:
                local.wake_user(stored.user_id)
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

    def _refuse(self, status: int, reason: str) -> web.Response:
        """Answer a refused callback with its reason, and count it."""
        self._state.count("kie_callbacks_refused")
        logger.info("kie_callback_refused", extra={"status": status, "reason": reason})
        return json_response({"ok": False, "error": reason}, status=status)
