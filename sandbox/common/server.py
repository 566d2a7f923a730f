"""Server base of the sandboxes: an aiohttp app on a (free) port, async context manager."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

DEFAULT_HOST: Final[str] = "127.0.0.1"
SHUTDOWN_TIMEOUT_S: Final[float] = 2.0
LISTEN_BACKLOG: Final[int] = 1_024

log = logging.getLogger(__name__)


class SandboxServer:
    """Serve `self.app`; subclasses build the app and hook into start and stop."""

    def __init__(self, app: web.Application) -> None:
        """Wrap an application that is not listening yet."""
        self._app = app
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def app(self) -> web.Application:
        """Return the aiohttp application (mountable in an existing runner)."""
        return self._app

    @property
    def base_url(self) -> str:
        """Return `http://host:port` once started."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not started")
        return self._base_url

    @property
    def started(self) -> bool:
        """Tell whether the server listens."""
        return self._runner is not None

    def log_fields(self) -> dict[str, Any]:
        """Return fields added to the start and stop log lines."""
        return {}

    async def on_started(self) -> None:
        """Run after the listener is up (base URL known)."""

    async def on_stopping(self) -> None:
        """Run before the listener closes: release waiters, stop background work."""

    async def start(self, host: str = DEFAULT_HOST, port: int = 0) -> str:
        """Listen on host:port (0 picks a free port) and return the base URL."""
        if self._runner is not None:
            return self.base_url
        runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        bound_port = int(runner.addresses[0][1])
        url_host = f"[{host}]" if ":" in host else host
        self._runner = runner
        self._base_url = f"http://{url_host}:{bound_port}"
        await self.on_started()
        log.info("sandbox started", extra={"base_url": self._base_url, **self.log_fields()})
        return self._base_url

    async def stop(self) -> None:
        """Stop background work, then close the listener (idempotent)."""
        await self.on_stopping()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("sandbox stopped", extra={"base_url": self._base_url})
        self._base_url = None

    async def __aenter__(self) -> Self:
        """Start on a free loopback port."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()
