"""Veo 3.1: `POST /api/v1/veo/generate`, `GET /api/v1/veo/record-info` (successFlag)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.families.base import (
    Family,
    callback_url,
    check_fields,
    error_code,
    one_of_ints,
    param_json,
    success_flag,
    text_time,
)
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputField

FIELDS = (
    InputField("prompt", "string", required=True),
    InputField("imageUrls", "array", item_type="image_url", max_items=3),
    InputField("model", "enum", values=("veo3", "veo3_fast", "veo3_lite")),
    InputField(
        "generationType",
        "enum",
        values=("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO"),
    ),
    InputField("aspect_ratio", "enum", values=("16:9", "9:16", "Auto")),
    InputField("resolution", "enum", values=("720p", "1080p", "4k")),
    InputField("callBackUrl", "string"),
    InputField("enableTranslation", "bool"),
    InputField("watermark", "string"),
    InputField("enableFallback", "bool"),
    InputField("seeds", "int", min=10_000, max=99_999),
)
DURATIONS_S = (4, 6, 8)
DEFAULT_MODEL = "veo3_fast"
MSG_SUCCESS = "Veo3.1 video generated successfully."


class Veo(Family):
    """Veo 3.1 video generation."""

    name: ClassVar[str] = "veo"
    create_path: ClassVar[str] = "/api/v1/veo/generate"
    status_path: ClassVar[str] = "/api/v1/veo/record-info"
    task_id_prefix: ClassVar[str] = "veo_task_"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the flat Veo body (`duration` is 4, 6 or 8)."""
        rest = {name: value for name, value in body.items() if name != "duration"}
        clean = check_fields(rest, FIELDS)
        one_of_ints(body, "duration", DURATIONS_S)
        return TaskSpec(
            model=clean.get("model", DEFAULT_MODEL),
            callback_url=callback_url(body),
            request=dict(body),
            media=MediaKind.VIDEO,
            ratio=clean.get("aspect_ratio", "16:9"),
            prompt=clean["prompt"],
        )

    def _info(self, task: Task) -> dict[str, Any]:
        """Return the result info shared by status (`response`) and callback (`info`)."""
        ratio = task.spec.ratio or "16:9"
        return {
            "resultUrls": task.result_urls,
            "originUrls": task.result_urls if ratio != "16:9" else [],
            "resolution": task.spec.request.get("resolution", "720p"),
        }

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-info's data (times as "YYYY-MM-DD HH:mm:ss")."""
        response = None
        if task.state is TaskState.SUCCESS:
            response = {"taskId": task.task_id, **self._info(task)}
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task),
            "successFlag": success_flag(task),
            "response": response,
            "errorCode": error_code(task),
            "errorMessage": task.fail_msg or None,
            "createTime": text_time(task.created_ms),
            "completeTime": text_time(task.completed_ms),
            "fallbackFlag": False,
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the terminal callback (a failure carries only taskId and fallbackFlag)."""
        if state is TaskState.SUCCESS:
            data = {"taskId": task.task_id, "info": self._info(task), "fallbackFlag": False}
            return [{"code": 200, "msg": MSG_SUCCESS, "data": data}]
        if state is TaskState.FAIL:
            data = {"taskId": task.task_id, "fallbackFlag": False}
            return [{"code": error_code(task), "msg": task.fail_msg, "data": data}]
        return []
