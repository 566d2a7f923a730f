"""The Kie.ai sandbox server: Kie's API host and upload host on one aiohttp app and port."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

from sandbox.common.responses import json_response
from sandbox.common.server import SandboxServer
from sandbox.common.waiters import Waiters
from sandbox.kie.accounts import Accounts
from sandbox.kie.api import KieApi, record_code
from sandbox.kie.callbacks import CallbackSender
from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.control_api import ControlApi
from sandbox.kie.engine import Engine
from sandbox.kie.envelope import MSG_NOT_FOUND, envelope
from sandbox.kie.families.registry import FAMILIES
from sandbox.kie.faults import KieFaults
from sandbox.kie.files import FILES_PREFIX, FileStore
from sandbox.kie.requestlog import RequestLog, middleware
from sandbox.kie.uploads import Uploads
from services.catalog import Catalog, get_catalog

# Base64 of a 60 MB file is 80 MB.
CLIENT_MAX_BYTES: Final[int] = 100 * 1024 * 1024
COUNTED_CODES: Final[tuple[int, ...]] = (400, 401, 402, 404, 422, 429)

log = logging.getLogger(__name__)


class KieSandbox(SandboxServer):
    """Serve a local Kie.ai (API + upload host) for `api_keys`, plus a /_sandbox control API."""

    def __init__(
        self,
        api_keys: Sequence[str],
        *,
        config: KieSandboxConfig | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        """Accept `api_keys` as Bearer keys; validate market inputs against `catalog`."""
        self.config = config or KieSandboxConfig()
        self._initial_config = self.config.copy()
        self.catalog = catalog or get_catalog()
        self.accounts = Accounts(api_keys, self.config)
        self.faults = KieFaults(self.config.fault_seed)
        self.files = FileStore()
        self.waiters = Waiters()
        self.callbacks = CallbackSender(self.config, self.notify)
        self.engine = Engine(
            self.config, self.accounts, self.faults, self.files, self.callbacks, self.notify
        )
        self.requests = RequestLog(self.config.max_request_log_items)
        self.uploads = Uploads(self)
        self.answers: Counter[int] = Counter()
        self._http: aiohttp.ClientSession | None = None
        super().__init__(self._build_app())

    @property
    def upload_base_url(self) -> str:
        """Return the upload host's base URL (the same server)."""
        return self.base_url

    @property
    def http(self) -> aiohttp.ClientSession:
        """Return the session for URL uploads."""
        if self._http is None:
            raise RuntimeError("the sandbox is not started")
        return self._http

    def log_fields(self) -> dict[str, Any]:
        """Add the number of keys to the start line (never the keys)."""
        return {"api_keys": len(list(self.accounts))}

    async def on_started(self) -> None:
        """Start callback delivery; result URLs point at the bound address."""
        self.files.base_url = self.base_url
        self._http = aiohttp.ClientSession()
        self.callbacks.start()

    async def on_stopping(self) -> None:
        """Stop task timers and callbacks, release waiters."""
        self.engine.stop()
        self.waiters.release_all()
        await self.callbacks.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def notify(self) -> None:
        """Let /wait re-check its conditions."""
        if self.waiters:
            self.waiters.notify()

    def count_answer(self, request: web.Request, code: int) -> None:
        """Count an answer's body code and note it in the request log."""
        self.answers[code] += 1
        record_code(request, code)
        self.notify()

    def update_config(self, changes: dict[str, Any]) -> None:
        """Apply configuration changes at run time."""
        self.config.update(changes)
        if "max_request_log_items" in changes:
            self.requests.resize(self.config.max_request_log_items)
        if "max_callback_log_items" in changes:
            self.callbacks.resize_log(self.config.max_callback_log_items)

    def reset(self, *, config: bool = False) -> None:
        """Forget tasks, files, callbacks log, requests, faults, counters; refill credits."""
        if config:
            self.config.assign(self._initial_config)
            self.requests.resize(self.config.max_request_log_items)
        self.engine.reset()
        self.files.clear()
        self.callbacks.reset()
        self.requests.clear()
        self.faults.clear(self.config.fault_seed)
        self.accounts.reset()
        self.answers.clear()
        self.uploads.count = 0
        self.notify()
        log.info("sandbox_reset", extra={"config": config})

    def counters(self) -> dict[str, int]:
        """Return the counters of /_sandbox/wait and /_sandbox/stats."""
        stats = self.engine.stats
        callbacks = self.callbacks.stats
        answers = self.answers
        counters = {
            "tasks_created": stats.created,
            "tasks_succeeded": stats.succeeded,
            "tasks_failed": stats.failed,
            "tasks_active": self.engine.active,
            "callbacks_attempts": callbacks.attempts,
            "callbacks_ok": callbacks.ok,
            "callbacks_failed": callbacks.failed,
            "callbacks_given_up": callbacks.given_up,
            "callbacks_lost": callbacks.lost,
            "callbacks_pending": callbacks.pending,
            "requests": self.requests.last_seq,
            "uploads": self.uploads.count,
            "downloads": self.files.downloads,
            "answers_ok": answers[200],
            "answers_5xx": sum(n for code, n in answers.items() if code >= 500),
        }
        for code in COUNTED_CODES:
            counters[f"answers_{code}"] = answers[code]
        return counters

    def _build_app(self) -> web.Application:
        """Create the application: Kie routes, files, control API, a Kie-style 404."""
        app = web.Application(
            client_max_size=CLIENT_MAX_BYTES, middlewares=[middleware(self.requests)]
        )
        app.add_routes(ControlApi(self).routes())
        app.add_routes(KieApi(self).routes(list(FAMILIES)))
        app.add_routes(self.uploads.routes())
        app.router.add_get(FILES_PREFIX + "{path:.+}", self.files.handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def _not_found(self, request: web.Request) -> web.Response:
        """Answer an unknown path with Kie's 404 body."""
        return json_response(orjson.dumps(envelope(None, code=404, msg=MSG_NOT_FOUND)), 404)
