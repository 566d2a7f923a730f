"""Generations end to end through both sandboxes: request -> createTask -> callback ->
settlement -> the result in the Telegram sandbox; every Kie fault ends settled once, and the
invariants hold after every scenario."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.harness.generation import GenerationStack, StackOptions, sample_params
from sandbox.kie import KieSandboxClient, KieSandboxConfig
from sandbox.telegram import SandboxClient
from services.catalog import get_catalog
from services.catalog.loader import Model
from services.delivery.files import ResultKind
from services.generation import Created, JobStatus
from services.generation.delivery_worker import result_kind
from tests.helpers import eventually

CATALOG = get_catalog()
BALANCE_KOP = 10_000_000
MEDIA_OF_KIND = {ResultKind.IMAGE: "photo", ResultKind.VIDEO: "video",
                 ResultKind.AUDIO: "audio", ResultKind.OTHER: "document"}
# A quick Kie: tasks finish in 50 ms, callbacks retried after 50 ms.
FAST_KIE = {"task_duration_s": 0.05, "callback_retry_delay_s": 0.05}


def fast_kie(**changes: Any) -> KieSandboxConfig:
    config = KieSandboxConfig()
    config.update({**FAST_KIE, **changes})
    return config


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[GenerationStack]:
    async with GenerationStack(database_url, StackOptions(kie=fast_kie())) as running:
        yield running
        assert await running.violations() == []


@pytest.fixture
async def telegram(stack: GenerationStack) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(stack.telegram.base_url) as client:
        yield client


@pytest.fixture
async def kie(stack: GenerationStack) -> AsyncIterator[KieSandboxClient]:
    async with KieSandboxClient(stack.kie.base_url) as client:
        yield client


def expected_media(model: Model) -> str | None:
    """Return the Telegram media type a model's result arrives as (None: text)."""
    if model.model_type == "speech_to_text":
        return None
    extension = {"image": "png", "video": "mp4", "audio": "mp3"}.get(model.category, "")
    if model.category == "upscale":
        extension = "mp4" if "video" in model.model_type else "png"
    return MEDIA_OF_KIND[result_kind(f"https://x/result.{extension}", model)]


async def place(stack: GenerationStack, user_id: int, model: Model, key: str) -> int:
    outcome = await stack.request(user_id, model.id, sample_params(model), key=key)
    assert isinstance(outcome, Created), (model.id, outcome)
    return outcome.job.id


async def test_every_catalog_model_is_generated_and_delivered_with_its_media_type(
        stack: GenerationStack, telegram: SandboxClient) -> None:
    models = list(CATALOG)
    assert len(models) == 73
    job_ids = {}
    for number, model in enumerate(models):
        user_id = 10_000 + number
        await stack.fund(user_id, BALANCE_KOP)
        job_ids[model.id] = await place(stack, user_id, model, f"press-{model.id}")

    await eventually(lambda: stack.all_delivered(list(job_ids.values())), timeout_s=120,
                     what="every model's result delivered")
    jobs = await stack.jobs(list(job_ids.values()))
    wrong = []
    for number, model in enumerate(models):
        job = jobs[job_ids[model.id]]
        log = await telegram.chat_messages(10_000 + number)
        media = {entry["media"]["type"] for entry in log if entry.get("media")}
        expected = expected_media(model)
        ok = job.status is JobStatus.SUCCEEDED and (
            media == {expected} if expected else
            [e["method"] for e in log] == ["sendMessage"] and "transcript" in log[0]["text"])
        if not ok:
            wrong.append((model.id, job.status, job.fail_code, media, expected))
    assert wrong == []
