"""End-to-end tests of every fault switch of the Kie sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import pytest

from sandbox.common.control import SandboxError
from sandbox.kie import KieSandbox, KieSandboxClient
from tests.e2e.test_sandbox_kie import (
    CREATE,
    CREDIT,
    HMAC_KEY,
    KEY,
    RECORD,
    WAIT_S,
    CallbackReceiver,
    call,
    create,
    download,
    expected_signature,
    fast_config,
)

Z_IMAGE: Final[dict[str, Any]] = {
    "model": "z-image",
    "input": {"prompt": "x", "aspect_ratio": "1:1"},
}
SUNO: Final[dict[str, Any]] = {
    "customMode": False,
    "instrumental": False,
    "model": "V5",
    "prompt": "a song",
}


@pytest.fixture
async def kie() -> AsyncIterator[KieSandbox]:
    """Run a Kie sandbox with quick tasks and an HMAC key."""
    async with KieSandbox([KEY], config=fast_config(webhook_hmac_key=HMAC_KEY)) as server:
        yield server





# ------------------------------------------------------------------ request faults


@pytest.mark.parametrize("code", [429, 455, 500, 501, 505])
async def test_a_create_fault_answers_its_code_for_the_next_calls_only(
    api: aiohttp.ClientSession, control: KieSandboxClient, code: int
) -> None:
    await control.fault("request", op="create", fail_next=2, code=code)
    for _ in range(2):
        status, body = await call(api, "POST", CREATE, json=Z_IMAGE)
        assert (status, body["code"], body["data"]) == (200, code, None) and body["msg"]
    assert (await call(api, "POST", CREATE, json=Z_IMAGE))[1]["code"] == 200
    assert (await control.stats())["tasks_created"] == 1
    assert await control.faults() == []


async def test_a_create_fault_with_created_loses_only_the_answer(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("request", op="create", code=500, created=True)
    body = {**Z_IMAGE, "callBackUrl": receiver.url}
    assert (await call(api, "POST", CREATE, json=body))[1]["code"] == 500
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    (task,) = await control.tasks()
    assert receiver.received[0].body["data"]["taskId"] == task["task_id"]


async def test_a_hanging_create_makes_the_client_time_out_and_may_still_create_the_task(
    kie: KieSandbox, control: KieSandboxClient
) -> None:
    await control.fault("request", op="create", hang_ms=60_000, created=True)
    headers = {"Authorization": f"Bearer {KEY}"}
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(kie.base_url, headers=headers, timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await call(session, "POST", CREATE, json=Z_IMAGE)
    assert (await control.stats())["tasks_created"] == 1


@pytest.mark.parametrize(
    ("op", "method", "path"), [("status", "GET", RECORD), ("credit", "GET", CREDIT)]
)
async def test_status_and_credit_faults_answer_their_code(
    api: aiohttp.ClientSession, control: KieSandboxClient, op: str, method: str, path: str
) -> None:
    task_id = await create(api)
    await control.fault("request", op=op, code=500, msg="boom")
    status, body = await call(api, method, path, params={"taskId": task_id})
    assert (status, body) == (200, {"code": 500, "msg": "boom", "data": None})
    assert (await call(api, method, path, params={"taskId": task_id}))[1]["code"] == 200


async def test_an_upload_fault_answers_the_upload_error_body(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("request", op="upload", code=500)
    body = {"base64Data": "aGk=", "uploadPath": "p", "fileName": "a.txt"}
    status, answer = await call(api, "POST", "/api/file-base64-upload", json=body)
    assert (status, answer["success"], answer["code"]) == (200, False, 500)


async def test_bad_fault_rules_are_refused_and_change_nothing(control: KieSandboxClient) -> None:
    for rule in (
        {"kind": "nope"},
        {"kind": "request", "op": "create"},
        {"kind": "request", "op": "status", "code": 500, "created": True},
        {"kind": "task", "fail_rate": 2},
        {"kind": "callback", "dupe": 1},
    ):
        with pytest.raises(SandboxError) as caught:
            await control.add_faults([rule])
        assert caught.value.status == 400
    assert await control.faults() == []


# ------------------------------------------------------------------ task faults


async def test_per_model_duration_keeps_one_model_running_while_others_finish(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("task", model="z-image", duration_ms=600_000)
    slow = await create(api)
    fast = await create(api, "elevenlabs/text-to-speech", {"text": "hi"})
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    assert (await control.task(fast))["task"]["state"] == "success"
    assert (await control.task(slow))["task"]["state"] == "waiting"


async def test_a_fail_rate_of_one_fails_every_task_of_the_model(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("task", model="z-image", fail_rate=1.0, fail_code="400", fail_msg="policy")
    for _ in range(3):
        await create(api)
    counters = await control.wait(tasks_failed_at_least=3, timeout_s=WAIT_S)
    assert counters["tasks_succeeded"] == 0
    assert {(t["fail_code"], t["fail_msg"]) for t in await control.tasks()} == {("400", "policy")}


async def test_a_fractional_fail_rate_repeats_with_the_same_seed() -> None:
    outcomes = []
    for _ in range(2):
        server = KieSandbox([KEY], config=fast_config(fault_seed=7))
        async with server, KieSandboxClient(server.base_url) as control:
            await control.fault("task", fail_rate=0.5)
            headers = {"Authorization": f"Bearer {KEY}"}
            async with aiohttp.ClientSession(server.base_url, headers=headers) as api:
                for _ in range(16):
                    await create(api)
            await control.wait(tasks_active_at_most=0, timeout_s=WAIT_S)
            outcomes.append([t["state"] for t in await control.tasks()])
    assert outcomes[0] == outcomes[1] and {"success", "fail"} == set(outcomes[0])


async def test_a_per_model_result_size_overrides_the_default(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("task", model="z-image", result_bytes=300_000)
    task_id = await create(api)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    url = (await control.task(task_id))["task"]["result_urls"][0]
    assert len((await download(url))[1]) == 300_000


async def test_the_control_api_can_fail_or_complete_a_running_task(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.configure(task_duration_s=600.0)
    failed, done = await create(api), await create(api)
    await control.fail(failed, fail_code="501", fail_msg="gone")
    await control.complete(done)
    data = (await call(api, "GET", RECORD, params={"taskId": failed}))[1]["data"]
    assert (data["state"], data["failCode"], data["failMsg"]) == ("fail", "501", "gone")
    assert (await call(api, "GET", RECORD, params={"taskId": done}))[1]["data"][
        "state"
    ] == "success"


# ------------------------------------------------------------------ callback faults


async def test_a_lost_callback_is_never_sent(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", lost=True)
    await create(api, callback_url=receiver.url)
    counters = await control.wait(callbacks_lost_at_least=1, tasks_succeeded_at_least=1)
    assert counters["callbacks_attempts"] == 0 and receiver.received == []


async def test_a_duplicated_callback_arrives_several_times(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", duplicate=2)
    await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=3, timeout_s=WAIT_S)
    bodies = [r.body for r in receiver.received]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


async def test_a_delayed_callback_is_overtaken_by_a_later_task(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", delay_ms=600_000)
    await create(api, callback_url=receiver.url)
    later = await create(api, callback_url=receiver.url)
    counters = await control.wait(callbacks_ok_at_least=1, tasks_succeeded_at_least=2)
    assert counters["callbacks_pending"] == 1
    assert [r.body["data"]["taskId"] for r in receiver.received] == [later]


async def test_an_out_of_order_callback_arrives_after_the_next_tasks_callback(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("task", model="elevenlabs/text-to-speech", duration_ms=600_000)
    await control.fault("callback", model="z-image", out_of_order=True)
    later = await create(api, "elevenlabs/text-to-speech", {"text": "x"}, receiver.url)
    first = await create(api, callback_url=receiver.url)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    await control.complete(later)
    await control.wait(callbacks_ok_at_least=2, timeout_s=WAIT_S)
    assert [r.body["data"]["taskId"] for r in receiver.received] == [later, first]


async def test_out_of_order_suno_callbacks_come_complete_before_first(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", model="suno", out_of_order=True)
    body = {**SUNO, "callBackUrl": receiver.url}
    assert (await call(api, "POST", "/api/v1/generate", json=body))[1]["code"] == 200
    await control.wait(callbacks_ok_at_least=3, timeout_s=WAIT_S)
    stages = [r.body["data"]["callbackType"] for r in receiver.received]
    assert stages[-2:] == ["complete", "first"]


async def test_an_early_callback_arrives_before_the_create_answer(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", early=True)
    task_id = await create(api, callback_url=receiver.url)
    assert [r.body["data"]["taskId"] for r in receiver.received] == [task_id]
    assert receiver.received[0].body["data"]["state"] == "success"


async def test_unsigned_and_wrongly_signed_callbacks(
    api: aiohttp.ClientSession, control: KieSandboxClient, receiver: CallbackReceiver
) -> None:
    await control.fault("callback", unsigned=True)
    await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=1, timeout_s=WAIT_S)
    await control.fault("callback", bad_signature=True)
    task_id = await create(api, callback_url=receiver.url)
    await control.wait(callbacks_ok_at_least=2, timeout_s=WAIT_S)
    unsigned, wrong = receiver.received
    assert "X-Webhook-Signature" not in unsigned.headers
    timestamp = wrong.headers["X-Webhook-Timestamp"]
    assert wrong.headers["X-Webhook-Signature"] != expected_signature(task_id, timestamp)


# ------------------------------------------------------------------ result faults


async def test_result_urls_can_be_missing_or_expire_at_once(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("result", missing=True)
    missing = await create(api)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    await control.fault("result", ttl_ms=0)
    expired = await create(api)
    await control.wait(tasks_succeeded_at_least=2, timeout_s=WAIT_S)
    healthy = await create(api)
    await control.wait(tasks_succeeded_at_least=3, timeout_s=WAIT_S)
    for task_id, status in ((missing, 404), (expired, 404), (healthy, 200)):
        url = (await control.task(task_id))["task"]["result_urls"][0]
        assert (await download(url))[0] == status


async def test_result_urls_can_fail_a_few_reads_then_serve(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("result", failing_reads=2)
    task_id = await create(api)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    url = (await control.task(task_id))["task"]["result_urls"][0]
    assert [(await download(url))[0] for _ in range(3)] == [503, 503, 200]


async def test_reset_forgets_tasks_faults_and_counters(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.fault("callback", lost=True)
    await create(api)
    await control.configure(task_duration_s=5.0)
    await control.reset(config=True)
    assert await control.tasks() == [] and await control.faults() == []
    assert (await control.stats())["tasks_created"] == 0
    assert (await control.get_config())["task_duration_s"] == fast_config().task_duration_s
