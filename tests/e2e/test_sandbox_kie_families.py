"""End-to-end tests of the Kie sandbox's family APIs (Veo, 4o Image, Flux Kontext, Runway,
Suno, Midjourney): request fields, status fields and values, callback bodies and id keys.

Requests are built by the project's own client adapters (services.kie.adapters) from catalog
params, so these tests also prove that the client and the stand-in agree."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import pytest

from sandbox.kie import KieSandbox, KieSandboxClient
from services.catalog import get_catalog
from services.kie.adapters import adapter_for
from services.kie.callbacks import task_id_of, verify_callback_signature
from services.kie.state import TaskStatus
from tests.e2e.test_sandbox_kie import (
    HMAC_KEY,
    KEY,
    WAIT_S,
    CallbackReceiver,
    call,
    download,
    expected_signature,
    fast_config,
)

FAMILY_MODELS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "veo": ("google/veo-3.1", {"prompt": "a wave"}),
    "4o-image": ("openai/4o-image", {"prompt": "a cat"}),
    "flux-kontext": ("flux/kontext", {"prompt": "a cat"}),
    "runway": ("runway/gen-4", {"prompt": "a dog", "duration": "5", "resolution": "720p"}),
    "suno": ("suno/v5", {"prompt": "a song about the sea"}),
    "midjourney": ("midjourney/api", {"prompt": "a castle"}),
}
# Where each family's callback carries the task id (kie_api.md §3).
CALLBACK_ID_KEY: Final[dict[str, str]] = {
    "veo": "taskId",
    "4o-image": "taskId",
    "flux-kontext": "taskId",
    "runway": "task_id",
    "suno": "task_id",
    "midjourney": "taskId",
}


@pytest.fixture
async def kie() -> AsyncIterator[KieSandbox]:
    """Run a Kie sandbox with quick tasks and an HMAC key."""
    async with KieSandbox([KEY], config=fast_config(webhook_hmac_key=HMAC_KEY)) as server:
        yield server





async def create_family_task(
    api: aiohttp.ClientSession, family: str, callback_url: str | None
) -> tuple[str, Any]:
    """Create a task of `family`'s catalog model through the client adapter."""
    model_id, params = FAMILY_MODELS[family]
    model = get_catalog()[model_id]
    adapter = adapter_for(model)
    body = adapter.build_request(model, model.validate_params(params), callback_url)
    status, answer = await call(api, "POST", adapter.create_path, json=body)
    assert (status, answer["code"]) == (200, 200), answer
    task_id: str = answer["data"]["taskId"]
    return task_id, adapter


async def status_data(api: aiohttp.ClientSession, adapter: Any, task_id: str) -> dict[str, Any]:
    """Return the family status endpoint's data."""
    status, answer = await call(api, "GET", adapter.status_path, params={"taskId": task_id})
    assert (status, answer["code"]) == (200, 200), answer
    data: dict[str, Any] = answer["data"]
    return data


@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
async def test_each_family_finishes_with_its_own_status_and_signed_callback(
    api: aiohttp.ClientSession,
    control: KieSandboxClient,
    receiver: CallbackReceiver,
    family: str,
) -> None:
    await control.configure(task_duration_s=600.0)
    task_id, adapter = await create_family_task(api, family, receiver.url)
    running = await status_data(api, adapter, task_id)
    assert adapter.parse_status(running).status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    for _ in range(3):
        await control.advance(task_id)
    terminal = 3 if family == "suno" else 1  # Suno: text, first, complete
    await control.wait(callbacks_ok_at_least=terminal, timeout_s=WAIT_S)
    data = await status_data(api, adapter, task_id)
    state = adapter.parse_status(data)
    assert state.status is TaskStatus.SUCCEEDED and state.result_urls
    for url in state.result_urls:
        assert (await download(url))[0] == 200
    last = receiver.received[-1]
    body_data = last.body["data"]
    assert last.body["code"] == 200 and body_data[CALLBACK_ID_KEY[family]] == task_id
    timestamp = last.headers["X-Webhook-Timestamp"]
    signature = last.headers["X-Webhook-Signature"]
    assert signature == expected_signature(task_id, timestamp)
    assert task_id_of(last.body) == task_id
    assert verify_callback_signature(HMAC_KEY, task_id, timestamp, signature, time.time())
    parsed = adapter.parse_callback(last.body)
    assert parsed.status is TaskStatus.SUCCEEDED and parsed.result_urls == state.result_urls


async def test_veo_status_uses_success_flag_and_response_result_urls(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, adapter = await create_family_task(api, "veo", receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    data = await status_data(api, adapter, task_id)
    assert task_id.startswith("veo_task_") and data["successFlag"] == 1
    assert data["response"]["resultUrls"] and data["response"]["resolution"] == "720p"
    assert isinstance(data["paramJson"], str) and data["errorCode"] is None
    assert len(data["createTime"]) == len("2025-06-06 10:30:00")
    body = receiver.received[0].body
    assert body["msg"] == "Veo3.1 video generated successfully."
    assert body["data"]["info"]["resultUrls"] == data["response"]["resultUrls"]
    assert body["data"]["fallbackFlag"] is False
    _, mp4, content_type = await download(data["response"]["resultUrls"][0])
    assert content_type == "video/mp4" and mp4[4:8] == b"ftyp"


async def test_4o_image_reports_status_progress_and_snake_case_callback_urls(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, adapter = await create_family_task(api, "4o-image", receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    data = await status_data(api, adapter, task_id)
    assert (data["status"], data["successFlag"], data["progress"]) == ("SUCCESS", 1, "1.00")
    assert isinstance(data["createTime"], int) and data["response"]["resultUrls"]
    info = receiver.received[0].body["data"]["info"]
    assert info == {"result_urls": data["response"]["resultUrls"]}


async def test_flux_kontext_returns_a_jpeg_by_default_and_keeps_info_on_failure(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, adapter = await create_family_task(api, "flux-kontext", receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    data = await status_data(api, adapter, task_id)
    assert data["successFlag"] == 1 and data["createTime"].endswith("Z")
    url = data["response"]["resultImageUrl"]
    _, jpeg, content_type = await download(url)
    assert content_type == "image/jpeg" and jpeg[:3] == b"\xff\xd8\xff"
    assert receiver.received[0].body["msg"] == "BFL image generated successfully."
    await control.fault("task", model="flux-kontext", fail_next=1, fail_code="501", fail_msg="no")
    failed_id, _ = await create_family_task(api, "flux-kontext", receiver.url)
    await control.wait(callbacks_ok_at_least=2, timeout_s=WAIT_S)
    failed = receiver.received[1].body
    assert failed["code"] == 501 and failed["data"]["taskId"] == failed_id
    assert failed["data"]["info"] == {"originImageUrl": "", "resultImageUrl": ""}
    assert (await status_data(api, adapter, failed_id))["successFlag"] == 3


async def test_runway_uses_uuid_ids_record_detail_states_and_snake_case_callbacks(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.configure(task_duration_s=600.0)
    task_id, adapter = await create_family_task(api, "runway", receiver.url)
    assert len(task_id) == 36 and task_id.count("-") == 4
    states = [(await status_data(api, adapter, task_id))["state"]]
    for _ in range(3):
        await control.advance(task_id)
        states.append((await status_data(api, adapter, task_id))["state"])
    assert states == ["wait", "queueing", "generating", "success"]
    data = await status_data(api, adapter, task_id)
    assert data["videoInfo"]["videoUrl"] and data["videoInfo"]["imageUrl"]
    assert data["expireFlag"] == 0 and data["generateParam"]["prompt"] == "a dog"
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    body = receiver.received[0].body["data"]
    assert set(body) == {"task_id", "video_id", "video_url", "image_url"}
    assert body["video_url"] == data["videoInfo"]["videoUrl"]


async def test_suno_sends_text_first_and_complete_callbacks_with_two_tracks(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, adapter = await create_family_task(api, "suno", receiver.url)
    await control.wait(callbacks_ok_at_least=3, timeout_s=WAIT_S)
    stages = [r.body["data"]["callbackType"] for r in receiver.received]
    assert stages == ["text", "first", "complete"]
    complete = receiver.received[-1].body["data"]
    assert complete["task_id"] == task_id and len(complete["data"]) == 2
    track = complete["data"][0]
    assert track["audio_url"] and track["image_url"] and track["duration"] > 0
    data = await status_data(api, adapter, task_id)
    assert data["status"] == "SUCCESS"
    assert [t["audioUrl"] for t in data["response"]["sunoData"]] == [
        t["audio_url"] for t in complete["data"]
    ]
    _, mp3, content_type = await download(track["audio_url"])
    assert content_type == "audio/mpeg" and mp3[:2] == b"\xff\xfb"


async def test_midjourney_returns_four_images_as_objects_in_status_and_strings_in_callbacks(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, adapter = await create_family_task(api, "midjourney", receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    data = await status_data(api, adapter, task_id)
    assert task_id.startswith("mj_task_") and data["successFlag"] == 1
    objects = data["resultInfoJson"]["resultUrls"]
    assert len(objects) == 4 and all(set(item) == {"resultUrl"} for item in objects)
    assert receiver.received[0].body["data"]["resultUrls"] == [o["resultUrl"] for o in objects]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/veo/generate", {"model": "veo3_fast"}, "prompt"),
        ("/api/v1/veo/generate", {"prompt": "x", "duration": 5}, "duration"),
        ("/api/v1/veo/generate", {"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio"),
        ("/api/v1/gpt4o-image/generate", {"prompt": "x"}, "size"),
        ("/api/v1/gpt4o-image/generate", {"size": "1:1"}, "prompt"),
        ("/api/v1/flux/kontext/generate", {"prompt": "x", "safetyTolerance": 7}, "safetyTolerance"),
        ("/api/v1/flux/kontext/generate", {"prompt": "x", "model": "flux-pro"}, "model"),
        (
            "/api/v1/runway/generate",
            {"prompt": "x", "duration": 5, "resolution": "720p"},
            "resolution",
        ),
        (
            "/api/v1/runway/generate",
            {"prompt": "x", "duration": 10, "quality": "1080p", "aspectRatio": "16:9"},
            "duration",
        ),
        (
            "/api/v1/runway/generate",
            {"prompt": "x", "duration": 5, "quality": "720p"},
            "aspectRatio",
        ),
        (
            "/api/v1/generate",
            {"customMode": False, "instrumental": False, "model": "V5", "prompt": "x"},
            "callBackUrl",
        ),
        (
            "/api/v1/generate",
            {"customMode": True, "instrumental": True, "model": "V5", "callBackUrl": "http://h/c"},
            "style",
        ),
        ("/api/v1/mj/generate", {"prompt": "x"}, "taskType"),
        ("/api/v1/mj/generate", {"taskType": "mj_txt2img", "prompt": "x" * 2001}, "prompt"),
        ("/api/v1/mj/generate", {"taskType": "mj_video", "prompt": "x"}, "fileUrls"),
    ],
)
async def test_family_requests_are_checked_against_their_documented_fields(
    api: aiohttp.ClientSession, path: str, body: dict[str, Any], field: str
) -> None:
    status, answer = await call(api, "POST", path, json=body)
    assert (status, answer["code"], answer["data"]) == (200, 422, None)
    assert answer["msg"].startswith(f"{field}: "), answer["msg"]


async def test_a_task_is_unknown_to_another_familys_status_endpoint(
    api: aiohttp.ClientSession,
) -> None:
    task_id, _ = await create_family_task(api, "veo", None)
    answer = await call(api, "GET", "/api/v1/mj/record-info", params={"taskId": task_id})
    assert answer[1]["code"] == 404
