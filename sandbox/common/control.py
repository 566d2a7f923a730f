"""Base of the control API clients: one aiohttp session, JSON in and out, typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import orjson

DEFAULT_CLIENT_TIMEOUT_S: Final[float] = 30.0
# A long-poll wait is answered by the server at its timeout; give the answer time to arrive.
WAIT_SLACK_S: Final[float] = 5.0
HTTP_REQUEST_TIMEOUT: Final[int] = 408


class SandboxError(Exception):
    """Report a non-2xx answer of a control API."""

    def __init__(self, status: int, payload: Any) -> None:
        """Store the HTTP status and the decoded body."""
        message = payload.get("error") if isinstance(payload, dict) else payload
        super().__init__(f"sandbox control API returned {status}: {message}")
        self.status = status
        self.payload = payload


class SandboxTimeout(SandboxError):
    """Report that a /_sandbox/wait condition did not hold before its timeout."""


class ControlClient:
    """Call `{base_url}/_sandbox/...`; pass `session` to reuse an aiohttp session."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S,
    ) -> None:
        """Target the sandbox at `base_url` (as returned by its start())."""
        self._base = base_url.rstrip("/") + "/_sandbox"
        self._session = session
        self._owns_session = session is None
        self._timeout_s = timeout_s

    async def __aenter__(self) -> Self:
        """Return self; the session is created lazily."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the session if this client created it."""
        await self.close()

    async def close(self) -> None:
        """Close the owned aiohttp session."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        """Return the session, creating an owned one on first use."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _default_params(self) -> dict[str, str]:
        """Return query parameters added to every call (e.g. which bot)."""
        return {}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        payload: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Call one endpoint and decode its JSON answer, raising SandboxError on failure."""
        query = {key: str(value) for key, value in (params or {}).items() if value is not None}
        query.update(self._default_params())
        data = orjson.dumps(payload) if payload is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        async with self._get_session().request(
            method,
            self._base + path,
            params=query,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s or self._timeout_s),
        ) as resp:
            body = await resp.read()
            decoded = orjson.loads(body) if body else None
            if resp.status == HTTP_REQUEST_TIMEOUT:
                raise SandboxTimeout(resp.status, decoded)
            if resp.status >= 300:
                raise SandboxError(resp.status, decoded)
            return decoded

    async def _wait(self, params: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Long-poll /wait until the conditions in `params` hold; SandboxTimeout otherwise."""
        query = {**params, "timeout": timeout_s}
        result: dict[str, Any] = await self._request(
            "GET", "/wait", params=query, timeout_s=timeout_s + WAIT_SLACK_S
        )
        return result


def compact(item: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values from a payload."""
    return {key: value for key, value in item.items() if value is not None}
