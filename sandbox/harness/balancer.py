"""A small round-robin HTTP load balancer, standing in for Render's in front of the instances.

`python -m sandbox.harness.balancer --port 0 --backend http://127.0.0.1:P1 --backend ...` prints one
JSON line with its `base_url`, then forwards every request to the next backend. A backend that
refuses the connection is skipped (as Render routes around a dead instance); if none accepts,
the answer is 502 and the caller (Telegram) retries later.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys

import aiohttp
from aiohttp import web

from sandbox.harness.serving import serve_until_signalled

logger = logging.getLogger(__name__)

FORWARD_TIMEOUT_S = 30.0
# Hop-by-hop headers are the proxy's own business, never forwarded.
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "host",
                         "content-length"})
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)


def build_app(backends: list[str]) -> web.Application:
    """Return the balancer app forwarding to backends in turn."""
    turn = itertools.cycle(range(len(backends)))
    app = web.Application(client_max_size=8 * 1024 * 1024)

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        first = next(turn)
        for offset in range(len(backends)):
            backend = backends[(first + offset) % len(backends)]
            try:
                async with app[SESSION_KEY].request(
                        request.method, backend + request.path_qs, data=body,
                        headers=headers) as upstream:
                    payload = await upstream.read()
                    return web.Response(body=payload, status=upstream.status,
                                        content_type=upstream.content_type)
            except aiohttp.ClientConnectionError:
                continue  # dead backend: try the next, as a health-checked balancer would
        return web.json_response({"ok": False, "error": "no backend available"}, status=502)

    async def open_session(app: web.Application) -> None:
        app[SESSION_KEY] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S))

    async def close_session(app: web.Application) -> None:
        await app[SESSION_KEY].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description="round-robin HTTP balancer for the sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", action="append", required=True)
    args = parser.parse_args()
    backends = [b.rstrip("/") for b in args.backend]
    asyncio.run(serve_until_signalled(build_app(backends), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
