"""The Kie client over real HTTP against the project's Kie sandbox (sandbox.kie).

Envelope and errors, retries and their bound, the lost-answer rule for creates, secrets,
the bucket, every family's create/status/callback, uploads and Telegram transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from sandbox.common.server import SandboxServer
from sandbox.kie import KieSandbox, KieSandboxClient, KieSandboxConfig
from sandbox.telegram import SandboxClient, SandboxConfig, TelegramSandbox
from services.catalog.loader import get_catalog
from services.kie import client as client_module
from services.kie import uploads as uploads_module
from services.kie.adapters import adapter_for
from services.kie.callbacks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    task_id_of,
    verify_callback_signature,
)
from services.kie.client import MAX_ATTEMPTS, KieClient
from services.kie.errors import FileTooLarge, KieFinal, KieRetryable, TelegramFileUnavailable
from services.kie.failures import FailureReason, failure_reason
from services.kie.ratelimit import TokenBucket
from services.kie.state import TaskState, TaskStatus
from services.kie.uploads import (
    BASE64_MAX_BYTES,
    BadUploadUrl,
    transfer_telegram_file,
    upload_bytes,
    upload_from_url,
)
from tests.helpers import BOT_TOKEN, KIE_KEY, eventually

HMAC_KEY = "hmac-test-key-0123456789"
CREATE = "/api/v1/jobs/createTask"
RECORD = "/api/v1/jobs/recordInfo"
CATALOG = get_catalog()
# One catalog model per family, with first valid params.
FAMILY_CASES = {
    "market": ("z-image", {"prompt": "a fox"}),
    "veo": ("google/veo-3.1", {"prompt": "a wave"}),
    "4o-image": ("openai/4o-image", {"prompt": "a cat"}),
    "flux-kontext": ("flux/kontext", {"prompt": "a logo"}),
    "runway": ("runway/gen-4", {"prompt": "a dog"}),
    "suno": ("suno/v5", {"prompt": "a song about the sea"}),
    "midjourney": ("midjourney/api", {"prompt": "a castle"}),
}


@dataclass
class Received:
    """One callback as the bot's endpoint got it."""

    headers: dict[str, str]
    body: Any


class CallbackReceiver(SandboxServer):
    """The bot's side of Kie callbacks: records every POST and answers 200."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/kie/callback", self._handle)
        super().__init__(app)
        self.received: list[Received] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/kie/callback"

    def of(self, task_id: str) -> list[Received]:
        return [r for r in self.received if task_id_of(r.body) == task_id]

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.json()))
        return web.json_response({"code": 200, "msg": "success"})


@pytest.fixture
async def kie() -> AsyncIterator[KieSandbox]:
    config = KieSandboxConfig(task_duration_s=0.05, callback_retry_delay_s=0.02,
                              webhook_hmac_key=HMAC_KEY)
    async with KieSandbox([KIE_KEY], config=config) as server:
        yield server


@pytest.fixture
async def control(kie: KieSandbox) -> AsyncIterator[KieSandboxClient]:
    async with KieSandboxClient(kie.base_url) as c:
        yield c


@pytest.fixture
async def client(kie: KieSandbox, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KieClient]:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    async with KieClient(KIE_KEY, base_url=kie.base_url,
                         upload_base_url=kie.upload_base_url) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as server:
        yield server


async def paths(control: KieSandboxClient, prefix: str = "/api") -> list[str]:
    return [r["path"] for r in await control.requests(path_prefix=prefix)]


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    """Return what the client side logged (servers' access logs left out)."""
    servers = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "sandbox")
    return "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records
                     if not r.name.startswith(servers))


async def create(client: KieClient, model_id: str, params: dict[str, Any],
                 callback_url: str | None = None) -> str:
    model = CATALOG[model_id]
    return await client.create_task(model, model.validate_params(params),
                                    callback_url=callback_url)


# ---- families: create, status, callback ----


@pytest.mark.parametrize("family", list(FAMILY_CASES))
async def test_each_family_creates_reports_and_calls_back_with_the_same_result(
        client: KieClient, control: KieSandboxClient, receiver: CallbackReceiver,
        family: str) -> None:
    model_id, params = FAMILY_CASES[family]
    model = CATALOG[model_id]
    adapter = adapter_for(model)
    task_id = await create(client, model_id, params, receiver.url)

    def terminal() -> list[TaskState]:
        states = [adapter.parse_callback(r.body) for r in receiver.of(task_id)]
        return [s for s in states if s.terminal]

    await eventually(lambda: bool(terminal()), what=f"the {family} callback")
    done = terminal()[0]
    assert done.status is TaskStatus.SUCCEEDED and done.task_id == task_id
    assert done.result_urls
    polled = await client.task_state(model, task_id)
    assert (polled.status, polled.result_urls) == (TaskStatus.SUCCEEDED, done.result_urls)
    async with aiohttp.ClientSession() as http, http.get(done.result_urls[0]) as answer:
        assert answer.status == 200 and len(await answer.read()) > 0
    for callback in receiver.of(task_id):
        assert verify_callback_signature(HMAC_KEY, task_id, callback.headers[TIMESTAMP_HEADER],
                                         callback.headers[SIGNATURE_HEADER], time.time())


async def test_suno_stage_callbacks_are_running_until_complete(
        client: KieClient, receiver: CallbackReceiver) -> None:
    task_id = await create(client, "suno/v5", {"prompt": "a song"}, receiver.url)
    adapter = adapter_for(CATALOG["suno/v5"])

    def stages() -> list[str]:
        return [r.body["data"]["callbackType"] for r in receiver.of(task_id)]

    await eventually(lambda: "complete" in stages(), what="the complete callback")
    states = {r.body["data"]["callbackType"]: adapter.parse_callback(r.body).status
              for r in receiver.of(task_id)}
    assert states == {"text": TaskStatus.RUNNING, "first": TaskStatus.RUNNING,
                      "complete": TaskStatus.SUCCEEDED}


async def test_a_task_failing_on_content_policy_reads_as_failed_with_its_reason(
        client: KieClient, control: KieSandboxClient, receiver: CallbackReceiver) -> None:
    await control.fault("task", model="veo", fail_next=1, fail_code="400",
                        fail_msg="Your prompt was flagged as violating content policies")
    task_id = await create(client, "google/veo-3.1", {"prompt": "x"}, receiver.url)
    await eventually(lambda: bool(receiver.of(task_id)), what="the failure callback")
    adapter = adapter_for(CATALOG["google/veo-3.1"])
    by_callback = adapter.parse_callback(receiver.of(task_id)[0].body)
    by_status = await client.task_state(CATALOG["google/veo-3.1"], task_id)
    for state in (by_callback, by_status):
        assert (state.status, state.fail_code) == (TaskStatus.FAILED, "400")
        assert failure_reason(state.fail_code, state.fail_message) is \
            FailureReason.CONTENT_POLICY


async def test_a_pending_market_task_reads_as_not_terminal(
        client: KieClient, control: KieSandboxClient) -> None:
    await control.fault("task", model="z-image", duration_ms=600_000)
    task_id = await create(client, "z-image", {"prompt": "slow"})
    state = await client.task_state(CATALOG["z-image"], task_id)
    assert state.status in (TaskStatus.PENDING, TaskStatus.RUNNING) and not state.terminal


async def test_credits_are_read_as_a_number(client: KieClient,
                                            control: KieSandboxClient) -> None:
    await control.set_credits(42)
    assert await client.credits() == 42.0


# ---- envelope, errors, secrets ----


@pytest.mark.parametrize("http_status_errors", [False, True], ids=["body-code", "http-status"])
async def test_a_401_raised_from_a_wrong_key_never_carries_the_key(
        kie: KieSandbox, control: KieSandboxClient, caplog: pytest.LogCaptureFixture,
        http_status_errors: bool) -> None:
    caplog.set_level(logging.DEBUG)
    await control.configure(http_status_errors=http_status_errors)
    wrong_key = "wrong-kie-key-but-still-secret-42"
    async with KieClient(wrong_key, base_url=kie.base_url) as c:
        with pytest.raises(KieFinal) as caught:
            await c.credits()
        assert wrong_key not in repr(c)
    error = caught.value
    assert error.code == 401
    shown = [str(error), repr(error), *map(str, error.args), error.detail, error.message]
    assert not [s for s in shown if wrong_key in s]
    assert error.__suppress_context__ or error.__context__ is None
    assert wrong_key not in our_log(caplog)
    assert await paths(control) == ["/api/v1/chat/credit"]  # final: not retried


async def test_the_key_travels_only_in_the_authorization_header(
        client: KieClient, control: KieSandboxClient) -> None:
    await create(client, "z-image", {"prompt": "a fox"}, "https://bot.example.com/kie/cb")
    assert await control.requests(contains=KIE_KEY) == []
    (request,) = await control.requests(path_prefix=CREATE)
    assert request["code"] == 200


async def test_a_validation_error_in_an_http_200_answer_is_final_and_sent_once(
        client: KieClient, control: KieSandboxClient) -> None:
    with pytest.raises(KieFinal) as caught:
        await client.create_task(CATALOG["z-image"], {"prompt": "x", "aspect_ratio": "2:1"},
                                 callback_url=None)
    assert caught.value.code == 422 and "aspect_ratio" in caught.value.detail
    assert await paths(control) == [CREATE]


@pytest.mark.parametrize("code", [455, 429, 500, 550])
async def test_retryable_codes_are_retried_with_backoff_then_succeed(
        client: KieClient, control: KieSandboxClient, caplog: pytest.LogCaptureFixture,
        code: int) -> None:
    caplog.set_level(logging.WARNING, logger=client_module.__name__)
    await control.fault("request", op="create", code=code)
    assert await create(client, "z-image", {"prompt": "x"})
    assert await paths(control) == [CREATE, CREATE]
    assert (await control.stats())["tasks_created"] == 1
    assert [r.getMessage() for r in caplog.records] == ["kie_call_failed"]


async def test_retries_stop_after_the_bounded_number_of_attempts(
        client: KieClient, control: KieSandboxClient) -> None:
    task_id = await create(client, "z-image", {"prompt": "x"})
    await control.fault("request", op="status", code=500, fail_next=MAX_ATTEMPTS + 1)
    with pytest.raises(KieRetryable) as caught:
        await client.task_state(CATALOG["z-image"], task_id)
    assert caught.value.code == 500 and len(await paths(control, RECORD)) == MAX_ATTEMPTS


@contextlib.asynccontextmanager
async def faulty_front(upstream: str, *, drop_connection: bool) -> AsyncIterator[str]:
    """Serve a front proxy to Kie whose first request fails: its connection dropped after the
    request arrived (drop_connection), else an HTML 502 page; later ones pass through."""
    faulted: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        if not faulted:
            faulted.append(request.path)
            if drop_connection:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return web.Response(status=502, text="<html>502 Bad Gateway</html>",
                                content_type="text/html")
        headers = {k: v for k, v in request.headers.items()
                   if k in ("Authorization", "Content-Type")}
        async with aiohttp.ClientSession() as http, http.request(
                request.method, upstream + request.path_qs, data=await request.read(),
                headers=headers) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_an_error_page_from_a_proxy_is_retried_and_the_task_created_once(
        kie: KieSandbox, control: KieSandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    async with faulty_front(kie.base_url, drop_connection=False) as proxy, \
            KieClient(KIE_KEY, base_url=proxy) as c:
        await create(c, "z-image", {"prompt": "x"})
    assert (await control.stats())["tasks_created"] == 1


async def test_a_create_whose_connection_broke_after_sending_is_not_retried(
        kie: KieSandbox, control: KieSandboxClient) -> None:
    async with faulty_front(kie.base_url, drop_connection=True) as proxy, \
            KieClient(KIE_KEY, base_url=proxy) as c:
        with pytest.raises(KieRetryable) as caught:
            await create(c, "z-image", {"prompt": "x"})
    assert caught.value.maybe_executed and caught.value.code == 0
    assert (await control.stats())["tasks_created"] == 0


async def test_a_create_whose_answer_is_lost_after_kie_made_the_task_is_not_retried(
        kie: KieSandbox, control: KieSandboxClient) -> None:
    await control.fault("request", op="create", hang_ms=5000, created=True)
    async with KieClient(KIE_KEY, base_url=kie.base_url, timeout_s=0.3) as c:
        with pytest.raises(KieRetryable) as caught:
            await create(c, "z-image", {"prompt": "x"})
    assert caught.value.maybe_executed
    assert await paths(control) == [CREATE]
    assert (await control.stats())["tasks_created"] == 1  # the caller's poll will find it


async def test_a_status_read_slower_than_the_timeout_is_retried(
        kie: KieSandbox, control: KieSandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    async with KieClient(KIE_KEY, base_url=kie.base_url) as setup:
        task_id = await create(setup, "z-image", {"prompt": "x"})
    await control.wait(tasks_succeeded_at_least=1)
    await control.fault("request", op="status", hang_ms=5000)
    async with KieClient(KIE_KEY, base_url=kie.base_url, timeout_s=0.3) as c:
        state = await c.task_state(CATALOG["z-image"], task_id)
    assert state.status is TaskStatus.SUCCEEDED
    assert await paths(control, RECORD) == [RECORD, RECORD]


async def test_a_refused_connection_is_retryable_and_known_not_to_have_reached_kie(
        unused_tcp_port: int) -> None:
    async with KieClient(KIE_KEY, base_url=f"http://127.0.0.1:{unused_tcp_port}",
                         attempts=1) as c:
        with pytest.raises(KieRetryable) as caught:
            await c.credits()
    assert caught.value.code == 0 and not caught.value.maybe_executed


# ---- the bucket ----


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
        kie: KieSandbox, control: KieSandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_S", 0.01)
    clock = StallClock()
    await control.fault("request", op="create", code=429)
    async with KieClient(KIE_KEY, base_url=kie.base_url,
                         bucket=TokenBucket(capacity=2, clock=clock)) as c:
        await create(c, "z-image", {"prompt": "x"})
        # Both tokens are spent (the 429 took one): a third create waits instead of sending.
        third = asyncio.create_task(create(c, "z-image", {"prompt": "y"}))
        await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
        assert await paths(control) == [CREATE, CREATE]
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)


# ---- uploads ----


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status == 200
        return await answer.read()


async def test_small_bytes_go_by_base64_and_large_ones_by_stream(
        client: KieClient, control: KieSandboxClient) -> None:
    small, large = b"png" * 10, bytes(range(256)) * (BASE64_MAX_BYTES // 256 + 1)
    small_url = await upload_bytes(client, small, file_name="a.png", upload_path="in/u1")
    large_url = await upload_bytes(client, large, file_name="b.bin", upload_path="in/u1")
    assert await paths(control) == ["/api/file-base64-upload", "/api/file-stream-upload"]
    assert await fetch(small_url) == small and await fetch(large_url) == large


async def test_an_upload_failing_with_a_server_error_is_retried(
        client: KieClient, control: KieSandboxClient) -> None:
    await control.fault("request", op="upload", code=500)
    url = await upload_bytes(client, b"retried", file_name="r.txt")
    assert await fetch(url) == b"retried"
    assert await paths(control) == ["/api/file-base64-upload"] * 2


async def test_an_upload_refused_by_kie_raises_its_code(
        client: KieClient, control: KieSandboxClient) -> None:
    await control.fault("request", op="upload", code=400)
    with pytest.raises(KieFinal) as caught:
        await upload_bytes(client, b"x", file_name="a.txt")
    assert caught.value.code == 400 and len(await paths(control)) == 1


async def test_a_url_upload_returns_kie_s_copy_of_the_file(
        client: KieClient, control: KieSandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    original = await upload_bytes(client, b"public bytes", file_name="pub.txt")
    # The sandbox serves over http on loopback, which the public-https rule refuses.
    monkeypatch.setattr(uploads_module, "_check_public_https", lambda url: None)
    copy = await upload_from_url(client, original, upload_path="copies", file_name="c.txt")
    assert copy != original and await fetch(copy) == b"public bytes"
    (request,) = await control.requests(path_prefix="/api/file-url-upload")
    assert request["body"] == {"fileUrl": original, "uploadPath": "copies", "fileName": "c.txt"}


@pytest.mark.parametrize("url", ["http://example.com/a.png", "https://127.0.0.1/a.png",
                                 "https://10.1.2.3/a.png", "https://localhost/a.png",
                                 "https://user:pw@example.com/a.png", "ftp://example.com/a"])
async def test_a_url_that_is_not_public_https_is_refused_before_any_request(
        client: KieClient, control: KieSandboxClient, url: str) -> None:
    with pytest.raises(BadUploadUrl):
        await upload_from_url(client, url)
    assert await control.requests() == []


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
    async with SandboxClient(telegram.base_url) as tg_control:
        await tg_control.inject_photo(77, caption="edit this")
    bot = bot_at(telegram.base_url)
    try:
        updates = await bot.get_updates()
    finally:
        await bot.session.close()
    assert updates[0].message is not None and updates[0].message.photo
    return updates[0].message.photo[-1].file_id


async def assert_nothing_of_telegram_reached_kie(control: KieSandboxClient) -> None:
    assert await control.requests(contains="/file/bot") == []
    assert await control.requests(contains=BOT_TOKEN) == []
    assert await control.requests(contains=BOT_TOKEN.split(":")[1]) == []


async def test_a_telegram_photo_is_streamed_to_kie_without_its_url(
        client: KieClient, control: KieSandboxClient, telegram: TelegramSandbox,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file_id = await photo_file_id(telegram)
    bot = bot_at(telegram.base_url)
    try:
        url = await transfer_telegram_file(bot, file_id, client=client, upload_path="tg/77")
        original = await bot.download(file_id)
    finally:
        await bot.session.close()
    assert original is not None and await fetch(url) == original.read()
    assert await paths(control) == ["/api/file-stream-upload"]
    await assert_nothing_of_telegram_reached_kie(control)
    assert BOT_TOKEN not in our_log(caplog)


async def test_a_telegram_file_above_the_limit_is_refused_before_downloading(
        client: KieClient, control: KieSandboxClient, telegram: TelegramSandbox) -> None:
    file_id = await photo_file_id(telegram)
    bot = bot_at(telegram.base_url)
    try:
        with pytest.raises(FileTooLarge) as caught:
            await transfer_telegram_file(bot, file_id, client=client, max_bytes=10)
    finally:
        await bot.session.close()
    assert await control.requests() == [] and BOT_TOKEN not in str(caught.value)


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
        client: KieClient, control: KieSandboxClient, telegram: TelegramSandbox) -> None:
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
    assert await fetch(url)
    assert (await control.stats())["uploads"] == 1  # only the second transfer was stored


async def test_a_broken_telegram_download_raises_without_the_file_url(
        client: KieClient, control: KieSandboxClient, telegram: TelegramSandbox,
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
    assert (await control.stats())["uploads"] == 0
    await assert_nothing_of_telegram_reached_kie(control)
