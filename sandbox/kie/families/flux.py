"""Flux Kontext: `POST /api/v1/flux/kontext/generate`, `GET .../record-info` (successFlag)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.envelope import KieError
from sandbox.kie.families.base import (
    Family,
    callback_url,
    check_fields,
    error_code,
    param_json,
    success_flag,
    text_time,
)
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputField

FIELDS = (
    InputField("prompt", "string", required=True),
    InputField("enableTranslation", "bool"),
    InputField("inputImage", "image_url"),
    InputField("aspectRatio", "enum", values=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")),
    InputField("outputFormat", "enum", values=("jpeg", "png")),
    InputField("promptUpsampling", "bool"),
    InputField("model", "enum", values=("flux-kontext-pro", "flux-kontext-max")),
    InputField("safetyTolerance", "int", min=0, max=6),
    InputField("uploadCn", "bool"),
    InputField("watermark", "string"),
    InputField("callBackUrl", "string"),
)
EDIT_MAX_SAFETY_TOLERANCE = 2
DEFAULT_MODEL = "flux-kontext-pro"
MSG_SUCCESS = "BFL image generated successfully."


class FluxKontext(Family):
    """Flux Kontext image generation and editing."""

    name: ClassVar[str] = "flux-kontext"
    create_path: ClassVar[str] = "/api/v1/flux/kontext/generate"
    status_path: ClassVar[str] = "/api/v1/flux/kontext/record-info"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the flat Flux body (editing allows safetyTolerance 0-2 only)."""
        clean = check_fields(body, FIELDS)
        tolerance = clean.get("safetyTolerance")
        if (
            clean.get("inputImage")
            and tolerance is not None
            and tolerance > EDIT_MAX_SAFETY_TOLERANCE
        ):
            raise KieError(422, f"safetyTolerance: {tolerance} is above 2 for image editing")
        return TaskSpec(
            model=clean.get("model", DEFAULT_MODEL),
            callback_url=callback_url(body),
            request=dict(body),
            media=MediaKind.IMAGE,
            ratio=clean.get("aspectRatio", "16:9"),
            image_format=clean.get("outputFormat", "jpeg"),
            prompt=clean["prompt"],
        )

    def _info(self, task: Task) -> dict[str, str]:
        """Return the image URLs (empty strings unless successful)."""
        url = task.result_urls[0] if task.result_urls else ""
        return {"originImageUrl": url, "resultImageUrl": url}

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-info's data (ISO times)."""
        ok = task.state is TaskState.SUCCESS
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task),
            "successFlag": success_flag(task),
            "response": self._info(task) if ok else None,
            "errorCode": error_code(task),
            "errorMessage": task.fail_msg or None,
            "createTime": text_time(task.created_ms, iso=True),
            "completeTime": text_time(task.completed_ms, iso=True),
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the terminal callback (a failure keeps `info` with empty strings)."""
        if state is TaskState.SUCCESS:
            data = {"taskId": task.task_id, "info": self._info(task)}
            return [{"code": 200, "msg": MSG_SUCCESS, "data": data}]
        if state is TaskState.FAIL:
            data = {"taskId": task.task_id, "info": self._info(task)}
            return [{"code": error_code(task), "msg": task.fail_msg, "data": data}]
        return []
