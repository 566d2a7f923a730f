"""Midjourney: `POST /api/v1/mj/generate`, `GET /api/v1/mj/record-info` (successFlag)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.envelope import KieError
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

VIDEO_TASK_TYPES = frozenset({"mj_video", "mj_video_hd"})
IMAGE_TASK_TYPES = frozenset({"mj_img2img", "mj_style_reference", "mj_omni_reference"})
FIELDS = (
    InputField(
        "taskType",
        "enum",
        required=True,
        values=("mj_txt2img", *sorted(IMAGE_TASK_TYPES), *sorted(VIDEO_TASK_TYPES)),
    ),
    InputField("prompt", "string", required=True, max_length=2000),
    InputField("speed", "enum", values=("relaxed", "fast", "turbo")),
    InputField("fileUrl", "image_url"),
    InputField("fileUrls", "array", item_type="image_url"),
    InputField(
        "aspectRatio",
        "enum",
        values=("1:2", "9:16", "2:3", "3:4", "5:6", "6:5", "4:3", "3:2", "1:1", "16:9", "2:1"),
    ),
    InputField("version", "enum", values=("7", "6.1", "6", "5.2", "5.1", "niji6")),
    InputField("variety", "int", min=0, max=100),
    InputField("stylization", "int", min=0, max=1000),
    InputField("weirdness", "int", min=0, max=3000),
    InputField("ow", "int", min=1, max=1000),
    InputField("waterMark", "string"),
    InputField("enableTranslation", "bool"),
    InputField("callBackUrl", "string"),
    InputField("motion", "enum", values=("high", "low")),
)
BATCH_SIZES = (1, 2, 4)
IMAGES_PER_TASK = 4


class Midjourney(Family):
    """Midjourney images (4 per task) and videos."""

    name: ClassVar[str] = "midjourney"
    create_path: ClassVar[str] = "/api/v1/mj/generate"
    status_path: ClassVar[str] = "/api/v1/mj/record-info"
    task_id_prefix: ClassVar[str] = "mj_task_"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the MJ body (image modes need fileUrl(s); video needs motion)."""
        rest = {name: value for name, value in body.items() if name != "videoBatchSize"}
        clean = check_fields(rest, FIELDS)
        batch = one_of_ints(body, "videoBatchSize", BATCH_SIZES) or 1
        task_type = clean["taskType"]
        has_image = bool(clean.get("fileUrl") or clean.get("fileUrls"))
        if (task_type in IMAGE_TASK_TYPES or task_type in VIDEO_TASK_TYPES) and not has_image:
            raise KieError(422, f"fileUrls: {task_type} needs an image")
        video = task_type in VIDEO_TASK_TYPES
        return TaskSpec(
            model=self.name,
            callback_url=callback_url(body),
            request=dict(body),
            media=MediaKind.VIDEO if video else MediaKind.IMAGE,
            results=batch if video else IMAGES_PER_TASK,
            ratio=clean.get("aspectRatio", "1:1"),
            prompt=clean["prompt"],
        )

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-info's data (`resultInfoJson.resultUrls[]` are {resultUrl} objects)."""
        ok = task.state is TaskState.SUCCESS
        return {
            "taskId": task.task_id,
            "taskType": task.spec.request.get("taskType"),
            "paramJson": param_json(task),
            "successFlag": success_flag(task),
            "resultInfoJson": {"resultUrls": [{"resultUrl": url} for url in task.result_urls]}
            if ok
            else None,
            "errorCode": error_code(task),
            "errorMessage": task.fail_msg or None,
            "createTime": text_time(task.created_ms, iso=True),
            "completeTime": text_time(task.completed_ms, iso=True),
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the terminal callback (`resultUrls` as plain strings; [] on failure)."""
        if state not in (TaskState.SUCCESS, TaskState.FAIL):
            return []
        ok = state is TaskState.SUCCESS
        data = {
            "taskId": task.task_id,
            "promptJson": param_json(task),
            "resultUrls": task.result_urls if ok else [],
        }
        code = 200 if ok else 500
        return [{"code": code, "msg": "success" if ok else task.fail_msg, "data": data}]
