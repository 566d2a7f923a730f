"""4o Image: `POST /api/v1/gpt4o-image/generate`, `GET /api/v1/gpt4o-image/record-info`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.envelope import KieError
from sandbox.kie.families.base import Family, callback_url, check_fields, error_code, param_json
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputField

FIELDS = (
    InputField("size", "enum", required=True, values=("1:1", "3:2", "2:3")),
    InputField("prompt", "string"),
    InputField("filesUrl", "array", item_type="image_url", max_items=5),
    InputField("fileUrl", "image_url"),
    InputField("callBackUrl", "string"),
    InputField("maskUrl", "image_url"),
    InputField("nVariants", "int", min=1, max=4),
    InputField("isEnhance", "bool"),
    InputField("uploadCn", "bool"),
    InputField("enableFallback", "bool"),
    InputField("fallbackModel", "enum", values=("GPT_IMAGE_1", "FLUX_MAX")),
)
STATUS_BY_STATE = {
    TaskState.SUCCESS: "SUCCESS",
    TaskState.FAIL: "GENERATE_FAILED",
}
FLAG_BY_STATE = {TaskState.SUCCESS: 1, TaskState.FAIL: 2}
PROGRESS_BY_STATE = {
    TaskState.WAITING: "0.00",
    TaskState.QUEUING: "0.10",
    TaskState.GENERATING: "0.50",
    TaskState.SUCCESS: "1.00",
}


class Gpt4oImage(Family):
    """GPT-4o image generation (no `model` field; `size` required)."""

    name: ClassVar[str] = "4o-image"
    create_path: ClassVar[str] = "/api/v1/gpt4o-image/generate"
    status_path: ClassVar[str] = "/api/v1/gpt4o-image/record-info"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the flat 4o body (prompt or filesUrl is required)."""
        clean = check_fields(body, FIELDS)
        if not clean.get("prompt") and not clean.get("filesUrl"):
            raise KieError(422, "prompt: is required when filesUrl is empty")
        variants = clean.get("nVariants", 1)
        if variants not in (1, 2, 4):
            raise KieError(422, f"nVariants: {variants!r} is not one of [1, 2, 4]")
        return TaskSpec(
            model=self.name,
            callback_url=callback_url(body),
            request=dict(body),
            media=MediaKind.IMAGE,
            results=variants,
            ratio=clean["size"],
            prompt=clean.get("prompt", ""),
        )

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-info's data (status, successFlag, progress; times in epoch ms)."""
        ok = task.state is TaskState.SUCCESS
        return {
            "taskId": task.task_id,
            "paramJson": param_json(task),
            "status": STATUS_BY_STATE.get(task.state, "GENERATING"),
            "successFlag": FLAG_BY_STATE.get(task.state, 0),
            "progress": PROGRESS_BY_STATE.get(task.state, "0.00"),
            "response": {"resultUrls": task.result_urls} if ok else None,
            "errorCode": error_code(task),
            "errorMessage": task.fail_msg or None,
            "createTime": task.created_ms,
            "completeTime": task.completed_ms,
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the terminal callback (`info.result_urls`; a failure has `info: null`)."""
        if state is TaskState.SUCCESS:
            data = {"taskId": task.task_id, "info": {"result_urls": task.result_urls}}
            return [{"code": 200, "msg": "success", "data": data}]
        if state is TaskState.FAIL:
            failed = {"taskId": task.task_id, "info": None}
            return [{"code": error_code(task), "msg": task.fail_msg, "data": failed}]
        return []
