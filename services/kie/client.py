"""KieClient: one aiohttp session, the Bearer key, the envelope check and the retry loop.

Every answer is read the same way (kie_api.md §1.3): a failure is an HTTP status outside 2xx
OR a body `code` other than 200 (Kie often answers HTTP 200 with the error in the body); an
answer that is not JSON (a proxy's error page) is judged by its HTTP status. The upload host's
envelope adds `success`, checked too.

Retries: a `KieRetryable` is retried with `supervisor.aio.Backoff`, at most `attempts` times
in all. A createTask takes a token from the bucket before every attempt, and is not retried
when the request may have reached Kie before the answer was lost (a timeout or a dropped
connection after sending): a second attempt could start a second, charged task, so the error
goes to the caller, whose job row is still waiting for a callback or a status poll.

The key travels only in the Authorization header of requests to Kie's hosts: never in a
URL, a log line, an error or the repr (Kie's own texts are scrubbed of it, just in case).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from config import Settings
from config.settings import Secret
from services.catalog.loader import Model
from services.kie.adapters import adapter_for
from services.kie.errors import KieFinal, KieRetryable, error_for
from services.kie.ratelimit import TokenBucket
from services.kie.state import TaskState
from supervisor.aio import Backoff

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
# Attempts in all (first try included) for one call.
MAX_ATTEMPTS = 4
BACKOFF_INITIAL_S = 1.0
# Kie's rate window is 10 s: waiting longer than that between attempts gains nothing.
BACKOFF_MAX_S = 8.0
SUCCESS_CODE = 200
CREDIT_PATH = "/api/v1/chat/credit"
MASK = "***"


class KieClient:
    """Talk to Kie's API and upload hosts over one session; raise KieRetryable or KieFinal."""

    def __init__(self, api_key: Secret | str, *, base_url: str = DEFAULT_BASE_URL,
                 upload_base_url: str = DEFAULT_UPLOAD_BASE_URL,
                 timeout_s: float = REQUEST_TIMEOUT_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 bucket: TokenBucket | None = None, attempts: int = MAX_ATTEMPTS) -> None:
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        if not self._key.get():
            raise ValueError("the Kie API key is empty")
        self.base_url = base_url.rstrip("/")
        self.upload_base_url = upload_base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.bucket = bucket or TokenBucket()
        self.attempts = attempts
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KieClient:
        """Return a client configured from the environment's KIE_* keys."""
        return cls(settings.kie_api_key, base_url=settings.kie_base_url,
                   upload_base_url=settings.kie_upload_base_url,
                   timeout_s=settings.kie_request_timeout_s)

    def __repr__(self) -> str:
        return f"KieClient(base_url={self.base_url!r}, upload_base_url={self.upload_base_url!r})"

    async def __aenter__(self) -> KieClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; a later call opens a new one."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the client's session (it sends no credentials by itself)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    # ---- the API ----

    async def create_task(self, model: Model, params: Mapping[str, Any], *,
                          callback_url: str | None,
                          take_token: Callable[[], Awaitable[object]] | None = None) -> str:
        """Submit a generation of model with validated params; return Kie's task id.

        take_token waits for the bucket's token before each attempt (default: the bucket's
        acquire); whatever it raises ends the call before anything is sent.
        """
        adapter = adapter_for(model)
        body = adapter.build_request(model, params, callback_url)
        data = await self.request("POST", adapter.create_path, json=body,
                                  before_attempt=take_token or self.bucket.acquire,
                                  retry_maybe_executed=False)
        task_id = data.get("taskId") if isinstance(data, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise KieFinal(SUCCESS_CODE, "create answer without a task id",
                           path=adapter.create_path)
        logger.info("kie_task_created", extra={"model": model.id, "task_id": task_id,
                                                "family": adapter.family.value})
        return task_id

    async def task_state(self, model: Model, task_id: str) -> TaskState:
        """Return the state of one of model's tasks, from its family's status endpoint."""
        adapter = adapter_for(model)
        data = await self.request("GET", adapter.status_path, params={"taskId": task_id})
        return adapter.parse_status(data)

    async def credits(self) -> float:
        """Return the account's remaining credits (costs nothing; a good key check)."""
        data = await self.request("GET", CREDIT_PATH)
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise KieFinal(SUCCESS_CODE, "credit answer is not a number", path=CREDIT_PATH)
        return float(data)

    # ---- transport ----

    async def request(self, method: str, path: str, *, upload: bool = False,
                      json: Any = None, params: Mapping[str, str] | None = None,
                      form: Callable[[], aiohttp.FormData] | None = None,
                      client_timeout: aiohttp.ClientTimeout | None = None,
                      attempts: int | None = None,
                      before_attempt: Callable[[], Awaitable[object]] | None = None,
                      retry_maybe_executed: bool = True) -> Any:
        """Call path on the API (or upload) host with retries; return the answer's `data`.

        form builds the multipart body of one attempt; before_attempt runs before each one.
        """
        limit = attempts or self.attempts
        backoff = Backoff(initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S)
        attempt = 0
        while True:
            attempt += 1
            if before_attempt is not None:
                await before_attempt()
            try:
                return await self._call(method, path, upload=upload, json=json, params=params,
                                        form=form, client_timeout=client_timeout)
            except KieRetryable as exc:
                if attempt >= limit or (exc.maybe_executed and not retry_maybe_executed):
                    raise
                delay = backoff.next_delay()
                logger.warning("kie_call_failed", extra={
                    "path": path, "code": exc.code, "attempt": attempt,
                    "next_delay_s": round(delay, 2)})
                await asyncio.sleep(delay)

    async def _call(self, method: str, path: str, *, upload: bool, json: Any,
                    params: Mapping[str, str] | None,
                    form: Callable[[], aiohttp.FormData] | None,
                    client_timeout: aiohttp.ClientTimeout | None) -> Any:
        url = (self.upload_base_url if upload else self.base_url) + path
        headers = {"Authorization": f"Bearer {self._key.get()}"}
        # A form is built afresh per attempt: aiohttp consumes it when sending.
        body: Any = form() if form is not None else None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(method, url, params=params, data=body,
                                            headers=headers, timeout=client_timeout or self.timeout,
                                            allow_redirects=False) as answer:
                status, raw = answer.status, await answer.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Never connected: the request cannot have reached Kie.
            raise KieRetryable(0, detail=type(exc).__name__, path=path) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KieRetryable(0, detail=type(exc).__name__, path=path,
                               maybe_executed=True) from None
        return self._read(status, raw, path)

    def _read(self, status: int, raw: bytes, path: str) -> Any:
        """Return the envelope's data, or raise the error the status and body code call for."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(code, int) or isinstance(code, bool):
            if 200 <= status < 300:
                raise KieRetryable(status, "answer is not Kie's JSON", path=path,
                                   maybe_executed=True)
            raise error_for(status, path=path)
        detail = self._scrub(body.get("msg") or body.get("message") or "")
        if code != SUCCESS_CODE:
            raise error_for(code, detail=detail, path=path)
        if not 200 <= status < 300:
            raise error_for(status, detail=detail, path=path)
        if body.get("success") is False:
            raise KieFinal(code, "upload refused", detail=detail, path=path)
        return body.get("data")

    def _scrub(self, text: object) -> str:
        return str(text).replace(self._key.get(), MASK)

