"""The webhook route stores each good update once, durably, and refuses bad input unchanged."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from services.telegram import webhook as webhook_module
from services.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH, WebhookIngress
from supervisor.http import build_app
from supervisor.runtime_state import RuntimeState
from tests.helpers import inbox_store, message_update
from tests.pg import free_port

SECRET = "s3cret-webhook-token"
GOOD = {SECRET_HEADER: SECRET}
# Bounds the raw exchanges below: on failure the test ends instead of hanging with the server.
RAW_ANSWER_WAIT_S = 10.0


async def raw_exchange(client: TestClient, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """Send a hand-made request (bytes aiohttp's client would refuse); return the answer's
    head and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(RAW_ANSWER_WAIT_S):
            answer_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: (\d+)", answer_head)
            assert length is not None, answer_head
            return answer_head, await reader.readexactly(int(length[1]))
    finally:
        writer.close()


async def client_for(pool: AsyncConnectionPool) -> TestClient:
    state = RuntimeState(instance_id="t", bot_mode="webhook", version="test")
    ingress = WebhookIngress(pool, state, secret=SECRET, inbox=inbox_store())
    client = TestClient(TestServer(build_app(state, (ingress.install,))))
    await client.start_server()
    return client


@pytest.fixture
async def client(pool: AsyncConnectionPool) -> AsyncIterator[TestClient]:
    c = await client_for(pool)
    try:
        yield c
    finally:
        await c.close()


async def stored(pool: AsyncConnectionPool) -> list[tuple[int, int | None]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            b"SELECT update_id, chat_id FROM telegram_updates ORDER BY update_id")
        return [(int(r[0]), r[1]) for r in await cur.fetchall()]


async def test_a_good_update_is_stored_once_even_when_telegram_sends_it_again(
        client: TestClient, pool: AsyncConnectionPool) -> None:
    body = orjson.dumps(message_update(7, chat_id=99))
    for _ in range(3):
        response = await client.post(WEBHOOK_PATH, data=body, headers=GOOD)
        assert response.status == 200
    assert await stored(pool) == [(7, 99)]


@pytest.mark.parametrize(("headers", "body", "status", "reason"), [
    ({}, orjson.dumps(message_update(1)), 401, "secret"),
    ({SECRET_HEADER: "wrong"}, orjson.dumps(message_update(1)), 401, "secret"),
    (GOOD, b"{not json", 400, "not JSON"),
    (GOOD, b"[1, 2, 3]", 400, "not a JSON object"),
    (GOOD, orjson.dumps({"message": {}}), 400, "update_id"),
    (GOOD, orjson.dumps({"update_id": "12"}), 400, "update_id"),
    (GOOD, orjson.dumps({"update_id": -5}), 400, "update_id"),
    (GOOD, orjson.dumps({"update_id": True}), 400, "update_id"),
    (GOOD, orjson.dumps({"update_id": 2**63}), 400, "update_id"),
    (GOOD, orjson.dumps(message_update(1, chat_id=2**63)), 400, "chat id"),
    (GOOD, orjson.dumps({"update_id": 1, "callback_query": {
        "id": "q", "chat_instance": "c", "from": {"id": 2**64 - 1}}}), 400, "chat id"),
])
async def test_bad_input_gets_a_reason_and_stores_nothing(
        client: TestClient, pool: AsyncConnectionPool, headers: dict[str, str], body: bytes,
        status: int, reason: str) -> None:
    response = await client.post(WEBHOOK_PATH, data=body, headers=headers)
    assert response.status == status
    assert reason in (await response.json())["error"]
    assert await stored(pool) == []


async def test_a_secret_header_that_is_not_utf8_is_refused_with_401(
        client: TestClient, pool: AsyncConnectionPool) -> None:
    body = orjson.dumps(message_update(1))
    head = (f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode()
    answer, reason = await raw_exchange(
        client, head + SECRET_HEADER.encode() + b": s3cret-\xff\xfe-token\r\n\r\n", body)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"secret" in reason
    assert await stored(pool) == []


async def test_a_stalled_body_is_answered_408_and_the_connection_closed(
        client: TestClient, pool: AsyncConnectionPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook_module, "BODY_READ_TIMEOUT_S", 0.2)
    head = (f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: t\r\n{SECRET_HEADER}: {SECRET}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    answer, reason = await raw_exchange(client, head, b'{"update_id":')
    assert answer.startswith(b"HTTP/1.1 408 ")
    # aiohttp closes it after the answer (past a short linger for the rest of the body).
    assert b"Connection: close" in answer
    assert b"body not received" in reason
    assert await stored(pool) == []


async def test_a_body_over_one_megabyte_is_refused_with_413_and_stores_nothing(
        client: TestClient, pool: AsyncConnectionPool) -> None:
    huge = orjson.dumps(message_update(1, text="x" * (1024 * 1024 + 10)))
    response = await client.post(WEBHOOK_PATH, data=huge, headers=GOOD)
    assert response.status == 413
    assert await stored(pool) == []


async def test_concurrent_deliveries_are_all_stored_through_group_commit(
        client: TestClient, pool: AsyncConnectionPool) -> None:
    bodies = [orjson.dumps(message_update(i, chat_id=i % 17)) for i in range(1, 301)]
    responses = await asyncio.gather(
        *(client.post(WEBHOOK_PATH, data=b, headers=GOOD) for b in bodies))
    assert [r.status for r in responses] == [200] * 300
    assert [u for u, _ in await stored(pool)] == list(range(1, 301))


async def test_a_nul_character_is_stored_as_a_replacement_instead_of_failing_the_batch(
        client: TestClient, pool: AsyncConnectionPool) -> None:
    poisoned = orjson.dumps(message_update(5, text="a\u0000b"))
    responses = await asyncio.gather(
        client.post(WEBHOOK_PATH, data=poisoned, headers=GOOD),
        client.post(WEBHOOK_PATH, data=orjson.dumps(message_update(6)), headers=GOOD))
    assert [r.status for r in responses] == [200, 200]
    async with pool.connection() as conn:
        cur = await conn.execute(
            b"SELECT payload->'message'->>'text' FROM telegram_updates WHERE update_id = 5")
        row = await cur.fetchone()
    assert row == ("a\ufffdb",)


async def test_the_webhook_answers_503_when_the_database_is_unavailable() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    async with AsyncConnectionPool(dead, min_size=1, open=False, timeout=0.5,
                                   kwargs={"connect_timeout": 1}) as pool:
        client = await client_for(pool)
        try:
            response = await client.post(WEBHOOK_PATH, data=orjson.dumps(message_update(1)),
                                         headers=GOOD)
            assert response.status == 503
            assert "retry" in (await response.json())["error"]
        finally:
            await client.close()
