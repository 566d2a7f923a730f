"""Shared test helpers: a valid environment, and awaiting conditions without sleeping blindly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from sandbox.harness.env import BOT_TOKEN, KIE_KEY, make_env
from sandbox.telegram.media import make_png
from services.telegram.inbox import InboxStore, parse_update
from supervisor.election import Leadership

# The environment maker lives in the harness (benchmarks share it); the tests import it here.
__all__ = ["BOT_TOKEN", "KIE_KEY", "ResultFiles", "eventually", "faulty_first_request", "lead",
           "make_env", "message_update", "serve_result_files", "set_term"]

TEST_LEASE = "test-lease"
SET_TERM_SQL = b"""
INSERT INTO leader_lease (name, term) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET term = EXCLUDED.term
"""


async def eventually(condition: Callable[[], Awaitable[bool] | bool], *, timeout_s: float = 10.0,
                     interval_s: float = 0.02, what: str = "condition") -> None:
    """Wait until condition() is true; fail the test with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def message_update(update_id: int, chat_id: int = 42, text: str = "hi",
                   language: str = "en") -> dict[str, Any]:
    """Return a private-chat text message update as Telegram sends it."""
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_700_000_000, "text": text,
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ann",
                 "language_code": language}}}


async def set_term(pool: AsyncConnectionPool, term: int) -> None:
    """Make `term` the current term of TEST_LEASE (a newer one deposes older leaderships)."""
    async with pool.connection() as conn:
        await conn.execute(SET_TERM_SQL, (TEST_LEASE, term))


async def lead(pool: AsyncConnectionPool, term: int = 1, *,
               trusted: Callable[[], bool] = lambda: True) -> Leadership:
    """Return a leadership of `term`, made current, for running leader-only services."""
    await set_term(pool, term)
    return Leadership(term=term, instance_id="test", lease_name=TEST_LEASE, trusted=trusted)


@contextlib.asynccontextmanager
async def faulty_first_request(upstream: str, *, drop_connection: bool) -> AsyncIterator[str]:
    """Serve a proxy to `upstream` whose first request fails: its connection dropped
    unanswered (drop_connection), else an HTML 502 page as a broken front proxy sends."""
    faulted: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        if not faulted:
            faulted.append(request.path)
            if drop_connection:
                assert request.transport is not None
                request.transport.close()  # the client sees the connection break mid-call
                return web.Response()
            return web.Response(status=502, text="<html>502 Bad Gateway</html>",
                                content_type="text/html")
        async with aiohttp.ClientSession() as http, http.post(
                upstream + request.path, data=await request.read(),
                headers={"Content-Type": request.content_type}) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    # A long poll may still be passing through: do not wait for it on the way out.
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


RESULT_CHUNK_BYTES = 256 * 1024
RESULT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "mp4": "video/mp4", "mp3": "audio/mpeg",
                "wav": "audio/wav", "zip": "application/zip"}


class ResultFiles:
    """A file server standing in for Kie's result CDN: any size, generated as it streams."""

    def __init__(self) -> None:
        self.base_url = ""
        self.heads = 0
        self.bytes_sent = 0

    def url(self, name: str, size: int, *, declare_length: bool = True) -> str:
        """Return the URL of a file `name` of `size` bytes (with or without Content-Length)."""
        mode = "sized" if declare_length else "chunked"
        return f"{self.base_url}/{mode}/{size}/{name}"

    def missing_url(self, name: str) -> str:
        """Return a URL that answers 404, like an expired Kie result."""
        return f"{self.base_url}/missing/0/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode, size, name = (request.match_info[k] for k in ("mode", "size", "name"))
        if mode == "missing":
            return web.Response(status=404, text="not found")
        total = int(size)
        response = web.StreamResponse(headers={
            "Content-Type": RESULT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")})
        if mode == "sized":
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method == "HEAD":
            self.heads += 1
            return response
        head = make_png(4, 4, (10, 20, 30))[:total]
        await response.write(head)
        self.bytes_sent += len(head)
        remaining = total - len(head)
        filler = bytes(RESULT_CHUNK_BYTES)
        while remaining > 0:
            chunk = filler[:remaining]
            try:
                await response.write(chunk)
            except ConnectionResetError:
                return response  # the client stopped reading (a size cap): fine
            self.bytes_sent += len(chunk)
            remaining -= len(chunk)
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def serve_loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve app on a free loopback port for the block; yield its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_result_files() -> AsyncIterator[ResultFiles]:
    """Serve generated result files on a loopback port for the test's duration."""
    files = ResultFiles()
    app = web.Application()
    app.router.add_get("/{mode}/{size}/{name}", files.handle)
    async with serve_loopback(app) as base_url:
        files.base_url = base_url
        yield files


BOT_ID = 123456789  # the numeric prefix of BOT_TOKEN


def inbox_store(bot_id: int = BOT_ID) -> InboxStore:
    """Return the inbox store of a test bot."""
    return InboxStore(bot_id, instance_id="test")


async def store_updates(pool: AsyncConnectionPool, *updates: dict[str, Any],
                        bot_id: int = BOT_ID) -> int:
    """Store updates in a bot's inbox as the webhook would; return how many were new."""
    incoming = [parse_update(orjson.dumps(u)) for u in updates]
    async with pool.connection() as conn, conn.transaction():
        return await inbox_store(bot_id).insert_updates(conn, incoming)


async def lead_lease(pool: AsyncConnectionPool, lease_name: str, term: int = 1) -> Leadership:
    """Return a leadership of `term` of lease_name (another bot's election), made current."""
    async with pool.connection() as conn:
        await conn.execute(SET_TERM_SQL, (lease_name, term))
    return Leadership(term=term, instance_id="test", lease_name=lease_name,
                      trusted=lambda: True)
