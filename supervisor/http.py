"""The instance's HTTP server: /health, /ready, /metrics, plus routes the services add.

Handlers read only `RuntimeState`, never the database, so they answer in microseconds
even while PostgreSQL is down.

/health is the check Render polls before it routes to (and keeps) an instance. It answers
503, with the same JSON body, while this instance cannot serve (`RuntimeState.problems()`):
- migrations not applied (pending, failed, or not yet run),
- the database has not answered for DB_DOWN_GRACE_S (15 s),
- a leader past its trust window;
and 200 otherwise: a follower that serves is healthy. A deploy with a broken DATABASE_URL
therefore never passes the health check and never replaces healthy instances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

STATE_KEY = web.AppKey("runtime_state", RuntimeState)
# Bodies above this are refused before they are read (webhook updates are far smaller).
CLIENT_MAX_SIZE_BYTES = 1024 * 1024
RouteInstaller = Callable[[web.Application], None]


def json_response(body: object, *, status: int = 200) -> web.Response:
    """Return a JSON response serialized with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = state.health()
    return json_response(body, status=503 if body["problems"] else 200)


async def ready(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    problems = []
    if not state.migrations.get("ok"):
        problems.append("migrations not applied")
    if not state.db_fresh():
        problems.append("database has not answered recently")
    if state.stopping:
        problems.append("shutting down")
    return json_response({"ready": not problems, "problems": problems},
                         status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[STATE_KEY].metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(state: RuntimeState, installers: tuple[RouteInstaller, ...] = ()) -> web.Application:
    """Build the aiohttp application with the built-in and the service routes."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE_BYTES)
    app[STATE_KEY] = state
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    for install in installers:
        install(app)
    return app


class HttpServer:
    """Run the aiohttp app on a port until stopped."""

    def __init__(self, app: web.Application, *, host: str = "0.0.0.0", port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.bound_port: int | None = None
        self.started = asyncio.Event()

    async def start(self) -> None:
        """Bind and start serving."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        self.bound_port = int(self._runner.addresses[0][1])  # the real port when PORT=0
        self.started.set()
        logger.info("http_started", extra={"port": self.bound_port})

    async def stop(self) -> None:
        """Stop accepting connections and finish in-flight requests."""
        await self._runner.cleanup()
        logger.info("http_stopped")
