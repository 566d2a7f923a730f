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
from services.telegram.inbox import InboxStore, parse_update
from supervisor.election import Leadership

# The environment maker lives in the harness (benchmarks share it); the tests import it here.
__all__ = ["BOT_TOKEN", "KIE_KEY", "eventually", "faulty_first_request", "lead", "make_env",
           "message_update", "set_term"]

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
