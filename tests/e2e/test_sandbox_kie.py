"""End-to-end tests of the Kie.ai sandbox's market API, auth, errors, callbacks, credits,
rate limit, result media and request log, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.common.media import encode_jpeg, encode_mp3, encode_mp4, encode_png
from sandbox.common.server import SandboxServer
from sandbox.kie import KieSandbox, KieSandboxClient, KieSandboxConfig

KEY: Final[str] = "kie-test-key-0123456789abcdef"
OTHER_KEY: Final[str] = "kie-other-key-fedcba9876543210"
HMAC_KEY: Final[str] = "hmac-test-key-4242"
REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
CREATE: Final[str] = "/api/v1/jobs/createTask"
RECORD: Final[str] = "/api/v1/jobs/recordInfo"
CREDIT: Final[str] = "/api/v1/chat/credit"
WAIT_S: Final[float] = 10.0
MB: Final[int] = 1024 * 1024


def fast_config(**changes: Any) -> KieSandboxConfig:
    """Return settings with quick tasks and quick callback retries."""
    settings: dict[str, Any] = {
        "task_duration_s": 0.05,
        "callback_retry_delay_s": 0.02,
        "callback_timeout_s": 2.0,
        **changes,
    }
    return KieSandboxConfig(**settings)


@dataclass
class Received:
    """One callback the receiver got."""

    headers: dict[str, str]
    body: dict[str, Any]


class CallbackReceiver(SandboxServer):
    """A bot-side callback endpoint: records bodies, answers `statuses` in order, then 200."""

    def __init__(self) -> None:
        """Listen on POST /callback."""
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        super().__init__(app)
        self.received: list[Received] = []
        self.statuses: list[int] = []

    @property
    def url(self) -> str:
        """Return the callback URL."""
        return f"{self.base_url}/callback"

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"code": 200, "msg": "success"}, status=status)


@pytest.fixture
async def kie() -> AsyncIterator[KieSandbox]:
    """Run a Kie sandbox on a free port with quick tasks."""
    async with KieSandbox([KEY, OTHER_KEY], config=fast_config()) as server:
        yield server



async def call(
    session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """Make one request and return (HTTP status, decoded JSON body)."""
    async with session.request(method, path, **kwargs) as resp:
        return resp.status, orjson.loads(await resp.read())


async def create(
    api: aiohttp.ClientSession,
    model: str = "z-image",
    params: dict[str, Any] | None = None,
    callback_url: str | None = None,
) -> str:
    """Create a market task and return its id."""
    body: dict[str, Any] = {
        "model": model,
        "input": params if params is not None else {"prompt": "a cat", "aspect_ratio": "1:1"},
    }
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    status, answer = await call(api, "POST", CREATE, json=body)
    assert (status, answer["code"], answer["msg"]) == (200, 200, "success"), answer
    task_id: str = answer["data"]["taskId"]
    return task_id


async def record(api: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    """Return recordInfo's data of a task."""
    status, answer = await call(api, "GET", RECORD, params={"taskId": task_id})
    assert (status, answer["code"]) == (200, 200), answer
    data: dict[str, Any] = answer["data"]
    return data


async def download(url: str) -> tuple[int, bytes, str]:
    """Fetch a result URL without any key: (status, bytes, content type)."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read(), resp.content_type


def expected_signature(task_id: str, timestamp: str, key: str = HMAC_KEY) -> str:
    """Compute Kie's documented webhook signature."""
    message = f"{task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def png_size(data: bytes) -> tuple[int, int]:
    """Read a PNG's IHDR dimensions."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def mp3_first_frame(data: bytes) -> bytes:
    """Skip an ID3v2 tag and return the first 4 bytes of audio."""
    if data.startswith(b"ID3"):
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | byte
        data = data[10 + size :]
    return data[:4]


# ------------------------------------------------------------------ market API


async def test_a_market_task_moves_to_success_with_result_json_as_a_string(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    task_id = await create(api, params={"prompt": "a cat", "aspect_ratio": "16:9"})
    first = await record(api, task_id)
    assert first["state"] in {"waiting", "queuing", "generating", "success"}
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    data = await record(api, task_id)
    assert data["taskId"] == task_id and data["model"] == "z-image"
    assert data["state"] == "success" and data["failCode"] == "" and data["failMsg"] == ""
    assert orjson.loads(data["param"])["input"] == {"prompt": "a cat", "aspect_ratio": "16:9"}
    assert isinstance(data["resultJson"], str)
    urls = orjson.loads(data["resultJson"])["resultUrls"]
    assert len(urls) == 1
    assert isinstance(data["createTime"], int) and data["createTime"] > 1_600_000_000_000
    assert data["completeTime"] >= data["createTime"] and data["updateTime"] >= data["createTime"]
    assert data["costTime"] == data["completeTime"] - data["createTime"]
    status, png, content_type = await download(urls[0])
    assert status == 200 and content_type == "image/png"
    width, height = png_size(png)
    assert width * 9 == height * 16


async def test_states_go_waiting_queuing_generating_then_success(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.configure(task_duration_s=600.0)
    task_id = await create(api)
    seen = [(await record(api, task_id))["state"]]
    for _ in range(3):
        await control.advance(task_id)
        seen.append((await record(api, task_id))["state"])
    assert seen == ["waiting", "queuing", "generating", "success"]


async def test_record_info_needs_a_task_id_and_knows_only_the_keys_own_tasks(
    kie: KieSandbox, api: aiohttp.ClientSession
) -> None:
    task_id = await create(api)
    assert (await call(api, "GET", RECORD))[1] == {
        "code": 400,
        "msg": "taskId parameter is required",
        "data": None,
    }
    status, body = await call(api, "GET", RECORD, params={"taskId": "nope"})
    assert (status, body["code"], body["msg"], body["data"]) == (200, 404, "Task not found", None)
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    status, body = await call(api, "GET", RECORD, params={"taskId": task_id}, headers=other)
    assert body["code"] == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},
        {"Authorization": f"Basic {KEY}"},
    ],
)
async def test_requests_without_a_valid_bearer_key_get_401_in_a_200_answer(
    kie: KieSandbox, headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession(kie.base_url, headers=headers) as session:
        for method, path in (("POST", CREATE), ("GET", RECORD), ("GET", CREDIT)):
            status, body = await call(session, method, path, json={"model": "z-image"})
            assert status == 200
            assert body == {"code": 401, "msg": "You do not have access permissions", "data": None}


async def test_the_http_status_switch_makes_the_http_status_equal_the_code(
    kie: KieSandbox, api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.configure(http_status_errors=True)
    async with aiohttp.ClientSession(kie.base_url) as anonymous:
        status, body = await call(anonymous, "GET", CREDIT)
    assert (status, body["code"]) == (401, 401)
    status, body = await call(api, "POST", CREATE, json={"model": "nope", "input": {}})
    assert (status, body["code"]) == (422, 422)
    status, body = await call(api, "GET", CREDIT)
    assert (status, body["code"]) == (200, 200)
    for code in (429, 455, 500, 501, 505):
        await control.fault("request", op="credit", code=code)
        status, body = await call(api, "GET", CREDIT)
        assert (status, body["code"], body["data"]) == (code, code, None) and body["msg"]
    await control.set_credits(0)
    body_402 = {"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "1:1"}}
    status, body = await call(api, "POST", CREATE, json=body_402)
    assert (status, body["code"]) == (402, 402)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "no-such-model", "input": {"prompt": "x"}}, "model"),
        ({"input": {"prompt": "x"}}, "model"),
        ({"model": "openai/4o-image", "input": {"prompt": "x"}}, "model"),
        ({"model": "z-image", "input": {"aspect_ratio": "1:1"}}, "input.prompt"),
        ({"model": "z-image", "input": {"prompt": "x"}}, "input.aspect_ratio"),
        (
            {"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "2:1"}},
            "input.aspect_ratio",
        ),
        (
            {"model": "z-image", "input": {"prompt": "x" * 1001, "aspect_ratio": "1:1"}},
            "input.prompt",
        ),
        (
            {"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "1:1", "seed": 1}},
            "input.seed",
        ),
        (
            {"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "1:1"}, "extra": 1},
            "extra",
        ),
        (
            {
                "model": "z-image",
                "input": {"prompt": "x", "aspect_ratio": "1:1"},
                "callBackUrl": "ftp://x",
            },
            "callBackUrl",
        ),
        (
            {
                "model": "kling/v2-5-turbo-text-to-video-pro",
                "input": {"prompt": "x", "duration": "5", "aspect_ratio": "16:9", "cfg_scale": 2.0},
            },
            "input.cfg_scale",
        ),
        (
            {
                "model": "kling-2.6/text-to-video",
                "input": {"prompt": "x", "sound": "yes", "aspect_ratio": "1:1", "duration": "5"},
            },
            "input.sound",
        ),
    ],
)
async def test_create_refuses_what_the_catalog_forbids_with_422_naming_the_field(
    api: aiohttp.ClientSession, control: KieSandboxClient, body: dict[str, Any], field: str
) -> None:
    status, answer = await call(api, "POST", CREATE, json=body)
    assert (status, answer["code"], answer["data"]) == (200, 422, None)
    assert answer["msg"].startswith(f"{field}: "), answer["msg"]
    assert (await control.stats())["tasks_created"] == 0


async def test_a_body_that_is_not_a_json_object_is_a_400(api: aiohttp.ClientSession) -> None:
    for data in (b"{not json", b"[1, 2]"):
        status, answer = await call(
            api, "POST", CREATE, data=data, headers={"Content-Type": "application/json"}
        )
        assert (status, answer["code"]) == (200, 400)


async def test_unknown_paths_answer_kies_404_body(api: aiohttp.ClientSession) -> None:
    status, body = await call(api, "GET", "/api/v1/nothing")
    assert (status, body) == (404, {"code": 404, "msg": "Not Found", "data": None})


# ------------------------------------------------------------------ callbacks


async def test_a_finished_task_posts_the_market_callback_signed_with_the_documented_hmac(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.configure(webhook_hmac_key=HMAC_KEY)
    task_id = await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    (received,) = receiver.received
    body = received.body
    assert body["code"] == 200 and body["msg"] == "Playground task completed successfully."
    data = body["data"]
    assert data["taskId"] == task_id and data["model"] == "z-image" and data["state"] == "success"
    assert isinstance(data["param"], str) and isinstance(data["resultJson"], str)
    assert orjson.loads(data["resultJson"])["resultUrls"]
    assert data["creditsConsumed"] == 1 and isinstance(data["costTime"], int)
    assert "failCode" not in data
    timestamp = received.headers["X-Webhook-Timestamp"]
    assert timestamp.isdigit()
    signature = received.headers["X-Webhook-Signature"]
    assert len(signature) == 44
    assert hmac.compare_digest(signature, expected_signature(task_id, timestamp))


async def test_callbacks_carry_no_signature_without_an_hmac_key(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    headers = receiver.received[0].headers
    assert "X-Webhook-Signature" not in headers and "X-Webhook-Timestamp" not in headers


async def test_a_failed_task_posts_code_501_with_fail_code_and_refunds_its_credits(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("task", model="z-image", fail_next=1, fail_code="422", fail_msg="nsfw")
    task_id = await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    body = receiver.received[0].body
    assert (body["code"], body["msg"]) == (501, "Playground task failed.")
    assert body["data"]["state"] == "fail" and body["data"]["resultJson"] is None
    assert (body["data"]["failCode"], body["data"]["failMsg"]) == ("422", "nsfw")
    assert body["data"]["creditsConsumed"] == 0
    data = await record(api, task_id)
    assert (data["state"], data["failCode"], data["failMsg"], data["resultJson"]) == (
        "fail",
        "422",
        "nsfw",
        "",
    )
    assert (await call(api, "GET", CREDIT))[1]["data"] == KieSandboxConfig().initial_credits


async def test_a_receiver_answering_500_gets_three_retries_and_then_no_more(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    receiver.statuses = [500] * 10
    task_id = await create(api, callback_url=receiver.url)
    counters = await control.wait(callbacks_given_up_at_least=1, timeout_s=WAIT_S)
    assert counters["callbacks_attempts"] == 4 and counters["callbacks_ok"] == 0
    assert len(receiver.received) == 4
    attempts = await control.callbacks(task_id=task_id)
    assert [(a["attempt"], a["status"]) for a in attempts] == [(n, 500) for n in (1, 2, 3, 4)]


async def test_retries_stop_at_the_first_2xx_answer(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    receiver.statuses = [503, 500]
    await create(api, callback_url=receiver.url)
    counters = await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    assert counters["callbacks_attempts"] == 3 and counters["callbacks_pending"] == 0
    assert len(receiver.received) == 3


async def test_an_unreachable_callback_url_is_retried_then_given_up(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    async with CallbackReceiver() as gone:
        url = gone.url
    await create(api, callback_url=url)
    counters = await control.wait(callbacks_given_up_at_least=1, timeout_s=WAIT_S)
    assert counters["callbacks_attempts"] == 4
    assert all(a["status"] is None and a["error"] for a in await control.callbacks())


async def test_a_task_without_callback_url_sends_nothing(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await create(api)
    counters = await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    assert counters["callbacks_attempts"] == 0 and counters["callbacks_pending"] == 0


# ------------------------------------------------------------------ credits, rate limit


async def test_credits_go_down_per_task_and_creates_get_402_at_zero(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.set_credits(2)
    assert (await call(api, "GET", CREDIT))[1] == {"code": 200, "msg": "success", "data": 2}
    await create(api)
    await create(api)
    assert (await call(api, "GET", CREDIT))[1]["data"] == 0
    status, body = await call(
        api,
        "POST",
        CREATE,
        json={"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "1:1"}},
    )
    assert (status, body["code"], body["data"]) == (200, 402, None)
    assert (await control.stats())["tasks_created"] == 2


async def test_the_rate_limit_refuses_the_21st_task_in_10_s_without_queuing_it(
    api: aiohttp.ClientSession, control: KieSandboxClient, kie: KieSandbox
) -> None:
    for _ in range(20):
        await create(api)
    body = {"model": "z-image", "input": {"prompt": "x", "aspect_ratio": "1:1"}}
    status, answer = await call(api, "POST", CREATE, json=body)
    assert (status, answer["code"], answer["msg"]) == (200, 429, "Rate limit exceeded")
    assert (await control.stats())["tasks_created"] == 20
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert (await call(api, "POST", CREATE, json=body, headers=other))[1]["code"] == 200
    await control.configure(rate_limit_enabled=False)
    assert (await call(api, "POST", CREATE, json=body))[1]["code"] == 200


# ------------------------------------------------------------------ media


async def test_image_video_and_audio_results_are_valid_media(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    jpeg_task = await create(
        api, "google/nano-banana", {"prompt": "x", "output_format": "jpeg", "image_size": "9:16"}
    )
    video_task = await create(
        api, "grok-imagine/text-to-video", {"prompt": "x", "aspect_ratio": "3:2"}
    )
    audio_task = await create(api, "elevenlabs/text-to-speech", {"text": "hello"})
    await control.wait(tasks_succeeded_at_least=3, timeout_s=WAIT_S)

    async def result(task_id: str) -> tuple[bytes, str]:
        url = orjson.loads((await record(api, task_id))["resultJson"])["resultUrls"][0]
        status, data, content_type = await download(url)
        assert status == 200
        return data, content_type

    jpeg, content_type = await result(jpeg_task)
    assert (
        content_type == "image/jpeg"
        and jpeg.startswith(b"\xff\xd8\xff")
        and jpeg.endswith(b"\xff\xd9")
    )
    sof = jpeg.index(b"\xff\xc0")
    height, width = struct.unpack(">HH", jpeg[sof + 5 : sof + 9])
    assert width * 16 == height * 9
    mp4, content_type = await result(video_task)
    assert content_type == "video/mp4" and mp4[4:8] == b"ftyp" and b"moov" in mp4 and b"avc1" in mp4
    mp3, content_type = await result(audio_task)
    header = mp3_first_frame(mp3)
    assert content_type == "audio/mpeg" and header[0] == 0xFF and header[1] & 0xE0 == 0xE0


@pytest.mark.parametrize(
    ("key", "size", "model", "params"),
    [
        ("image_bytes", 5 * MB + 1, "z-image", {"prompt": "x", "aspect_ratio": "1:1"}),
        ("image_bytes", 10 * MB + 1, "z-image", {"prompt": "x", "aspect_ratio": "1:1"}),
        ("image_bytes", 20 * MB + 1, "z-image", {"prompt": "x", "aspect_ratio": "1:1"}),
        ("video_bytes", 50 * MB + 1, "grok-imagine/text-to-video", {"prompt": "x"}),
        ("audio_bytes", 60 * MB, "elevenlabs/text-to-speech", {"text": "x"}),
    ],
)
async def test_result_sizes_are_configurable_up_to_60_mb_inside_a_valid_container(
    api: aiohttp.ClientSession,
    control: KieSandboxClient,
    key: str,
    size: int,
    model: str,
    params: dict[str, Any],
) -> None:
    await control.configure(**{key: size})
    task_id = await create(api, model, params)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    url = orjson.loads((await record(api, task_id))["resultJson"])["resultUrls"][0]
    status, data, _ = await download(url)
    assert status == 200 and len(data) == size
    if key == "image_bytes":
        png_size(data)
        assert data.endswith(b"IEND\xaeB`\x82")
    elif key == "video_bytes":
        assert data[4:8] == b"ftyp" and b"mdat" in data[:MB] and b"free" in data[:MB]
    else:
        assert mp3_first_frame(data)[:2] == b"\xff\xfb"


# The smallest padding each container can hold (a chunk, segment, box or tag header).
PADDING_OVERHEAD_BYTES: Final[int] = 12


@settings(max_examples=40, deadline=None)
@given(extra=st.integers(min_value=PADDING_OVERHEAD_BYTES, max_value=300_000))
def test_padding_hits_any_target_size_and_keeps_each_container_valid(extra: int) -> None:
    png = encode_png(7, 5, (1, 2, 3))
    padded = encode_png(7, 5, (1, 2, 3), len(png) + extra)
    assert len(padded) == len(png) + extra and png_size(padded) == (7, 5)
    assert padded.endswith(b"IEND\xaeB`\x82")
    jpeg = encode_jpeg(9, 4, (200, 10, 10))
    padded = encode_jpeg(9, 4, (200, 10, 10), len(jpeg) + extra)
    jfif_end = 20  # SOI + APP0: the comments go right after them
    assert len(padded) == len(jpeg) + extra and padded[:jfif_end] == jpeg[:jfif_end]
    assert padded.endswith(jpeg[jfif_end:])
    mp4 = encode_mp4(32, 16, (0, 0, 0), 1.0)
    padded = encode_mp4(32, 16, (0, 0, 0), 1.0, len(mp4) + extra)
    assert len(padded) == len(mp4) + extra and padded.startswith(mp4)
    mp3 = encode_mp3(0.1)
    padded = encode_mp3(0.1, len(mp3) + extra)
    assert len(padded) == len(mp3) + extra and mp3_first_frame(padded) == mp3[:4]


async def test_the_config_refuses_sizes_above_60_mb_and_unknown_keys(
    control: KieSandboxClient,
) -> None:
    from sandbox.common.control import SandboxError

    for changes in ({"image_bytes": 61 * MB}, {"no_such_key": 1}, {"rate_limit_tasks": 0}):
        with pytest.raises(SandboxError) as caught:
            await control.configure(**changes)
        assert caught.value.status == 400


# ------------------------------------------------------------------ request log


async def test_the_request_log_keeps_bodies_and_headers_but_never_the_authorization(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    leaked = "https://api.telegram.org/file/bot123:ABC/photos/file_1.jpg"
    await create(
        api,
        "google/nano-banana-edit",
        {"prompt": "x", "image_urls": [leaked]},
    )
    entries = await control.requests(contains="/file/bot")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["method"] == "POST" and entry["path"] == CREATE and entry["code"] == 200
    assert entry["body"]["input"]["image_urls"] == [leaked]
    assert "Authorization" not in entry["headers"] and "User-Agent" in entry["headers"]
    assert await control.requests(contains=KEY) == []
    assert len(await control.requests(path_prefix=CREATE)) == 1


# ------------------------------------------------------------------ standalone


async def test_the_standalone_server_prints_its_url_and_never_logs_the_key() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kie",
        "--port",
        "0",
        "--key",
        KEY,
        "--log-level",
        "DEBUG",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WAIT_S)
        started = orjson.loads(line)
        assert started["event"] == "started"
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(started["base_url"], headers=headers) as session:
            assert (await call(session, "GET", CREDIT))[1]["code"] == 200
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode == 0
    assert KEY not in stderr.decode()
    lines = [orjson.loads(raw) for raw in stderr.decode().splitlines() if raw.strip()]
    assert any(entry["event"] == "sandbox started" for entry in lines)
