"""The Kie client over real HTTP: envelope, retries, secrets, bucket, families, uploads.

Until the project's Kie sandbox lands, a minimal aiohttp app in this module answers like Kie
(documented shapes only, kie_api.md): HTTP 200 with the error in the body `code` by default.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.catalog.loader import get_catalog
from services.kie import client as client_module
from services.kie.client import MAX_ATTEMPTS, KieClient
from services.kie.errors import (
    FileTooLarge,
    KieFinal,
    KieRetryable,
    TelegramFileUnavailable,
)
from services.kie.ratelimit import TokenBucket
from services.kie.state import TaskStatus
from services.kie.uploads import (
    BASE64_MAX_BYTES,
    BadUploadUrl,
    transfer_telegram_file,
    upload_bytes,
    upload_from_url,
)
from tests.helpers import BOT_TOKEN, KIE_KEY

CALLBACK = "https://bot.example.com/kie/callback/job-1"
RESULT_URL = "https://tempfile.aiquickdraw.com/r/result.png"
CREATE = "/api/v1/jobs/createTask"
RECORD = "/api/v1/jobs/recordInfo"
CATALOG = get_catalog()


@dataclass
class Call:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


@dataclass
class KieStandIn:
    """Kie's API and upload hosts in one app, with scripted faults per path."""

    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    # path -> faults to answer with, first one first: ("code", n) | ("html", status) |
    # ("drop",) | ("hang",) | ("echo_key",)
    faults: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.content_type != "multipart/form-data" else b""
        self.calls.append(Call(request.method, request.path, dict(request.headers),
                               dict(request.query), body))
        pending = self.faults.get(request.path)
        if pending:
            fault = pending.pop(0)
            if fault[0] == "code":
                return envelope(fault[1], None, msg="scripted")
            if fault[0] == "html":
                return web.Response(status=fault[1], text="<html>bad gateway</html>",
                                    content_type="text/html")
            if fault[0] == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if fault[0] == "hang":
                await self.release.wait()
        if request.headers.get("Authorization") != f"Bearer {KIE_KEY}":
            # Some servers echo what they got; the client must not repeat it.
            said = request.headers.get("Authorization", "")
            return envelope(401, None, msg=f"You do not have access permissions ({said})")
        return await ROUTES[(request.method, request.path)](self, request)


def envelope(code: int, data: Any, *, msg: str = "success", status: int = 200,
             upload: bool = False) -> web.Response:
    body: dict[str, Any] = {"code": code, "msg": msg, "data": data}
    if upload:
        body["success"] = code == 200
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


async def create_task(kie: KieStandIn, request: web.Request) -> web.Response:
    return envelope(200, {"taskId": f"task_{len(kie.calls)}"})


async def record_info(kie: KieStandIn, request: web.Request) -> web.Response:
    return envelope(200, {"taskId": request.query["taskId"], "state": "success",
                          "resultJson": orjson.dumps({"resultUrls": [RESULT_URL]}).decode(),
                          "failCode": "", "failMsg": ""})


async def suno_status(kie: KieStandIn, request: web.Request) -> web.Response:
    return envelope(200, {"taskId": request.query["taskId"], "status": "FIRST_SUCCESS",
                          "response": {"sunoData": [{"audioUrl": RESULT_URL}]}})


async def credit(kie: KieStandIn, request: web.Request) -> web.Response:
    return envelope(200, 100)


def upload_answer(kie: KieStandIn, path: str, name: str, content: bytes) -> web.Response:
    key = f"{path}/{name}"
    kie.uploads[key] = content
    return envelope(200, {"fileName": name, "filePath": key,
                          "downloadUrl": f"https://tempfile.redpandaai.co/x/{key}",
                          "fileSize": len(content), "mimeType": "application/octet-stream",
                          "uploadedAt": "2026-12-01T12:00:00.000Z"}, upload=True)


async def stream_upload(kie: KieStandIn, request: web.Request) -> web.Response:
    fields: dict[str, bytes] = {}
    async for part in await request.multipart():
        fields[part.name or ""] = await part.read()  # type: ignore[union-attr]
    if "uploadPath" not in fields:
        return envelope(400, None, msg="Missing required parameter: uploadPath", upload=True)
    return upload_answer(kie, fields["uploadPath"].decode(), fields["fileName"].decode(),
                         fields["file"])


async def base64_upload(kie: KieStandIn, request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return upload_answer(kie, body["uploadPath"], body["fileName"],
                         base64.b64decode(body["base64Data"]))


async def url_upload(kie: KieStandIn, request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return upload_answer(kie, body["uploadPath"], body["fileUrl"].rsplit("/", 1)[1], b"")


ROUTES = {
    ("POST", CREATE): create_task,
    ("GET", RECORD): record_info,
    ("POST", "/api/v1/generate"): create_task,
    ("GET", "/api/v1/generate/record-info"): suno_status,
    ("GET", "/api/v1/chat/credit"): credit,
    ("POST", "/api/file-stream-upload"): stream_upload,
    ("POST", "/api/file-base64-upload"): base64_upload,
    ("POST", "/api/file-url-upload"): url_upload,
}


@pytest.fixture
async def kie() -> AsyncIterator[KieStandIn]:
    stand_in = KieStandIn()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stand_in.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stand_in
    finally:
        stand_in.release.set()
        await runner.cleanup()


@pytest.fixture
async def client(kie: KieStandIn, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KieClient]:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    async with KieClient(KIE_KEY, base_url=kie.base_url, upload_base_url=kie.base_url) as c:
        yield c


# ---- the API and the envelope ----


async def test_a_market_task_is_created_with_the_key_in_the_header_and_its_result_read(
        client: KieClient, kie: KieStandIn) -> None:
    model = CATALOG["z-image"]
    params = model.validate_params({"prompt": "a fox"})
    task_id = await client.create_task(model, params, callback_url=CALLBACK)
    state = await client.task_state(model, task_id)
    assert (state.status, state.task_id, state.result_urls) == (
        TaskStatus.SUCCEEDED, task_id, (RESULT_URL,))
    create, record = kie.calls
    assert create.headers["Authorization"] == f"Bearer {KIE_KEY}"
    assert orjson.loads(create.body) == {"model": "z-image", "input": params,
                                         "callBackUrl": CALLBACK}
    assert record.query == {"taskId": task_id}
    for call in kie.calls:
        assert KIE_KEY not in call.path + str(call.query) + call.body.decode()


async def test_a_family_model_uses_its_own_endpoints_and_body(
        client: KieClient, kie: KieStandIn) -> None:
    model = CATALOG["suno/v5"]
    task_id = await client.create_task(model, {"prompt": "a song"}, callback_url=CALLBACK)
    state = await client.task_state(model, task_id)
    assert state.status is TaskStatus.RUNNING and state.raw_status == "FIRST_SUCCESS"
    assert kie.paths() == ["/api/v1/generate", "/api/v1/generate/record-info"]
    assert orjson.loads(kie.calls[0].body)["model"] == "V5"


async def test_credits_are_read_as_a_number(client: KieClient) -> None:
    assert await client.credits() == 100.0


async def test_a_401_raised_from_a_wrong_key_never_carries_the_key(
        kie: KieStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "wrong-kie-key-but-still-secret-42"
    async with KieClient(wrong_key, base_url=kie.base_url) as c:
        with pytest.raises(KieFinal) as caught:
            await c.credits()
        assert wrong_key not in repr(c)
    error = caught.value
    assert error.code == 401 and error.detail.startswith("You do not have access")
    shown = [str(error), repr(error), *map(str, error.args), error.detail, error.message]
    assert not [s for s in shown if wrong_key in s]
    assert error.__suppress_context__ or error.__context__ is None
    assert wrong_key not in our_log(caplog)
    assert len(kie.calls) == 1  # final: not retried


async def test_an_error_code_in_an_http_200_answer_is_final_and_sent_once(
        client: KieClient, kie: KieStandIn) -> None:
    kie.faults[CREATE] = [("code", 422)]
    with pytest.raises(KieFinal) as caught:
        await client.create_task(CATALOG["z-image"], {"prompt": "x"}, callback_url=None)
    assert caught.value.code == 422 and kie.paths() == [CREATE]


@pytest.mark.parametrize("fault", [("code", 455), ("code", 429), ("code", 500), ("code", 550),
                                   ("html", 502)],
                         ids=["455", "429", "500", "550", "html-502"])
async def test_retryable_answers_are_retried_with_backoff_then_succeed(
        client: KieClient, kie: KieStandIn, caplog: pytest.LogCaptureFixture,
        fault: tuple[Any, ...]) -> None:
    caplog.set_level(logging.WARNING, logger=client_module.__name__)
    kie.faults[CREATE] = [fault]
    task_id = await client.create_task(CATALOG["z-image"], {"prompt": "x"}, callback_url=None)
    assert task_id and kie.paths() == [CREATE, CREATE]
    assert [r.getMessage() for r in caplog.records] == ["kie_call_failed"]


async def test_a_2xx_page_that_is_not_json_is_retried_for_reads_but_not_for_creates(
        client: KieClient, kie: KieStandIn) -> None:
    kie.faults[RECORD] = [("html", 200)]
    assert (await client.task_state(CATALOG["z-image"], "t1")).status is TaskStatus.SUCCEEDED
    kie.faults[CREATE] = [("html", 200)]
    with pytest.raises(KieRetryable) as caught:
        await client.create_task(CATALOG["z-image"], {"prompt": "x"}, callback_url=None)
    assert caught.value.maybe_executed
    assert kie.paths() == [RECORD, RECORD, CREATE]


async def test_retries_stop_after_the_bounded_number_of_attempts(
        client: KieClient, kie: KieStandIn) -> None:
    kie.faults[RECORD] = [("code", 500)] * (MAX_ATTEMPTS + 1)
    with pytest.raises(KieRetryable) as caught:
        await client.task_state(CATALOG["z-image"], "t1")
    assert caught.value.code == 500 and len(kie.calls) == MAX_ATTEMPTS


async def test_a_create_whose_connection_broke_after_sending_is_not_retried(
        client: KieClient, kie: KieStandIn) -> None:
    kie.faults[CREATE] = [("drop",)]
    with pytest.raises(KieRetryable) as caught:
        await client.create_task(CATALOG["z-image"], {"prompt": "x"}, callback_url=None)
    assert caught.value.maybe_executed and caught.value.code == 0
    assert kie.paths() == [CREATE]


async def test_a_status_read_whose_connection_broke_is_retried(
        client: KieClient, kie: KieStandIn) -> None:
    kie.faults[RECORD] = [("drop",)]
    state = await client.task_state(CATALOG["z-image"], "t1")
    assert state.status is TaskStatus.SUCCEEDED and kie.paths() == [RECORD, RECORD]


async def test_an_answer_slower_than_the_timeout_is_a_retryable_no_answer(
        kie: KieStandIn) -> None:
    kie.faults[RECORD] = [("hang",)]
    async with KieClient(KIE_KEY, base_url=kie.base_url, timeout_s=0.2, attempts=1) as c:
        with pytest.raises(KieRetryable) as caught:
            await c.task_state(CATALOG["z-image"], "t1")
    assert caught.value.code == 0 and caught.value.maybe_executed


async def test_a_refused_connection_is_retryable_and_known_not_to_have_reached_kie(
        unused_tcp_port: int) -> None:
    async with KieClient(KIE_KEY, base_url=f"http://127.0.0.1:{unused_tcp_port}",
                         attempts=1) as c:
        with pytest.raises(KieRetryable) as caught:
            await c.credits()
    assert caught.value.code == 0 and not caught.value.maybe_executed


class StallClock:
    """A bucket clock that stands still; a sleep on it signals and then waits for good."""

    def __init__(self) -> None:
        self.sleeping = asyncio.Event()

    def now(self) -> float:
        return 0.0

    async def sleep(self, delay_s: float) -> None:
        self.sleeping.set()
        await asyncio.Event().wait()


async def test_every_create_attempt_takes_a_token_from_the_bucket(
        kie: KieStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    clock = StallClock()
    kie.faults[CREATE] = [("code", 429)]
    async with KieClient(KIE_KEY, base_url=kie.base_url,
                         bucket=TokenBucket(capacity=2, clock=clock)) as c:
        await c.create_task(CATALOG["z-image"], {"prompt": "x"}, callback_url=None)
        # Both tokens are spent (the 429 took one): a third create waits instead of sending.
        third = asyncio.create_task(
            c.create_task(CATALOG["z-image"], {"prompt": "y"}, callback_url=None))
        await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
        assert kie.paths() == [CREATE, CREATE]
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)


# ---- uploads ----


async def test_small_bytes_go_by_base64_and_large_ones_by_stream(
        client: KieClient, kie: KieStandIn) -> None:
    small, large = b"png" * 10, bytes(range(256)) * (BASE64_MAX_BYTES // 256 + 1)
    small_url = await upload_bytes(client, small, file_name="a.png", upload_path="in/u1")
    large_url = await upload_bytes(client, large, file_name="b.bin", upload_path="in/u1")
    assert kie.paths() == ["/api/file-base64-upload", "/api/file-stream-upload"]
    assert kie.uploads == {"in/u1/a.png": small, "in/u1/b.bin": large}
    assert small_url.endswith("in/u1/a.png") and large_url.endswith("in/u1/b.bin")


async def test_a_public_https_url_is_uploaded_by_url(client: KieClient, kie: KieStandIn) -> None:
    url = await upload_from_url(client, "https://example.com/cat.jpg", upload_path="in")
    assert url.endswith("in/cat.jpg")
    assert orjson.loads(kie.calls[0].body) == {"fileUrl": "https://example.com/cat.jpg",
                                               "uploadPath": "in"}


@pytest.mark.parametrize("url", ["http://example.com/a.png", "https://127.0.0.1/a.png",
                                 "https://10.1.2.3/a.png", "https://localhost/a.png",
                                 "https://user:pw@example.com/a.png", "ftp://example.com/a"])
async def test_a_url_that_is_not_public_https_is_refused_before_any_request(
        client: KieClient, kie: KieStandIn, url: str) -> None:
    with pytest.raises(BadUploadUrl):
        await upload_from_url(client, url)
    assert kie.calls == []


async def test_an_upload_refused_by_kie_raises_its_code(client: KieClient,
                                                        kie: KieStandIn) -> None:
    kie.faults["/api/file-base64-upload"] = [("code", 400)]
    with pytest.raises(KieFinal) as caught:
        await upload_bytes(client, b"x", file_name="a.txt")
    assert caught.value.code == 400


# ---- Telegram files to Kie ----


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramSandbox]:
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sb:
        yield sb


def bot_at(base_url: str) -> Bot:
    return Bot(BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))


async def photo_file_id(telegram: TelegramSandbox) -> str:
    """Have a user send a photo; return the file id of its largest size."""
    async with SandboxClient(telegram.base_url) as control:
        await control.inject_photo(77, caption="edit this")
    bot = bot_at(telegram.base_url)
    try:
        updates = await bot.get_updates()
    finally:
        await bot.session.close()
    assert updates[0].message is not None and updates[0].message.photo
    return updates[0].message.photo[-1].file_id


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    """Return what the client side logged (the stand-in servers' access logs left out)."""
    servers = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "sandbox")
    return "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records
                     if not r.name.startswith(servers))


def assert_token_never_sent_to_kie(kie: KieStandIn) -> None:
    for call in kie.calls:
        seen = call.path + str(call.query) + str(call.headers) + call.body.decode(errors="ignore")
        assert BOT_TOKEN not in seen and "/file/bot" not in seen


async def test_a_telegram_photo_is_streamed_to_kie_without_its_url(
        client: KieClient, kie: KieStandIn, telegram: TelegramSandbox,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file_id = await photo_file_id(telegram)
    bot = bot_at(telegram.base_url)
    try:
        url = await transfer_telegram_file(bot, file_id, client=client, upload_path="tg/77")
        original = await bot.download(file_id)
    finally:
        await bot.session.close()
    assert original is not None
    (stored_key, stored), = kie.uploads.items()
    assert stored == original.read() and url.endswith(stored_key)
    assert kie.paths() == ["/api/file-stream-upload"]
    assert_token_never_sent_to_kie(kie)
    assert BOT_TOKEN not in our_log(caplog)


async def test_a_telegram_file_above_the_limit_is_refused_before_downloading(
        client: KieClient, kie: KieStandIn, telegram: TelegramSandbox) -> None:
    file_id = await photo_file_id(telegram)
    bot = bot_at(telegram.base_url)
    try:
        with pytest.raises(FileTooLarge) as caught:
            await transfer_telegram_file(bot, file_id, client=client, max_bytes=10)
    finally:
        await bot.session.close()
    assert kie.calls == [] and BOT_TOKEN not in str(caught.value)


@contextlib.asynccontextmanager
async def telegram_front(telegram: TelegramSandbox, *, break_downloads: bool) -> AsyncIterator[str]:
    """Serve a Telegram front that passes Bot API calls with getFile's file_size removed,
    and either passes file downloads or breaks every one midway."""

    async def api(request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as http, http.post(
                telegram.base_url + request.path, data=await request.read(),
                headers={"Content-Type": request.content_type}) as answer:
            body = orjson.loads(await answer.read())
        if request.path.endswith("/getFile") and body.get("ok"):
            body["result"].pop("file_size", None)
        return web.json_response(body, dumps=lambda v: orjson.dumps(v).decode())

    async def file(request: web.Request) -> web.StreamResponse:
        if not break_downloads:
            async with aiohttp.ClientSession() as http, http.get(
                    telegram.base_url + request.path) as answer:
                return web.Response(body=await answer.read(), status=answer.status)
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"\x89PNG" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/bot{tail:.*}", api)
    app.router.add_get("/file/{tail:.*}", file)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_telegram_file_of_unknown_size_is_cut_off_at_the_limit_while_streaming(
        client: KieClient, kie: KieStandIn, telegram: TelegramSandbox) -> None:
    file_id = await photo_file_id(telegram)
    async with telegram_front(telegram, break_downloads=False) as front:
        bot = bot_at(front)
        try:
            assert (await bot.get_file(file_id)).file_size is None
            with pytest.raises(FileTooLarge):
                await transfer_telegram_file(bot, file_id, client=client, max_bytes=10)
            url = await transfer_telegram_file(bot, file_id, client=client)
        finally:
            await bot.session.close()
    (stored_key, _), = kie.uploads.items()  # only the second transfer was stored
    assert url.endswith(stored_key)


async def test_a_broken_telegram_download_raises_without_the_file_url(
        client: KieClient, kie: KieStandIn, telegram: TelegramSandbox,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file_id = await photo_file_id(telegram)
    async with telegram_front(telegram, break_downloads=True) as front:
        bot = bot_at(front)
        try:
            with pytest.raises(TelegramFileUnavailable) as caught:
                await transfer_telegram_file(bot, file_id, client=client)
        finally:
            await bot.session.close()
    error = caught.value
    shown = [str(error), repr(error), *map(str, error.args), error.detail]
    assert not [s for s in shown if BOT_TOKEN in s or "/file/bot" in s]
    assert error.__cause__ is None and error.__suppress_context__
    assert BOT_TOKEN not in our_log(caplog)
    assert kie.uploads == {}
    assert_token_never_sent_to_kie(kie)
