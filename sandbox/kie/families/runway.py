"""Runway: `POST /api/v1/runway/generate`, `GET /api/v1/runway/record-detail` (state)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.envelope import KieError
from sandbox.kie.families.base import Family, callback_url, check_fields, one_of_ints, text_time
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputField

FIELDS = (
    InputField("prompt", "string", required=True, max_length=1800),
    InputField("quality", "enum", required=True, values=("720p", "1080p")),
    InputField("aspectRatio", "enum", values=("16:9", "4:3", "1:1", "3:4", "9:16")),
    InputField("imageUrl", "image_url"),
    InputField("waterMark", "string"),
    InputField("callBackUrl", "string"),
)
DURATIONS_S = (5, 10)
STATE_NAMES = {
    TaskState.WAITING: "wait",
    TaskState.QUEUING: "queueing",
    TaskState.GENERATING: "generating",
    TaskState.SUCCESS: "success",
    TaskState.FAIL: "fail",
}
MSG_SUCCESS = "All generated successfully."


class Runway(Family):
    """Runway video generation (flat body, `duration` 5|10, `quality` 720p|1080p)."""

    name: ClassVar[str] = "runway"
    create_path: ClassVar[str] = "/api/v1/runway/generate"
    status_path: ClassVar[str] = "/api/v1/runway/record-detail"
    covers: ClassVar[bool] = True

    def new_task_id(self) -> str:
        """Return a UUID, as Runway does."""
        return str(uuid.uuid4())

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the Runway body: text-to-video needs aspectRatio; 1080p only with 5 s."""
        rest = {name: value for name, value in body.items() if name != "duration"}
        clean = check_fields(rest, FIELDS)
        if body.get("duration") is None:
            raise KieError(422, "duration: is required")
        duration = one_of_ints(body, "duration", DURATIONS_S)
        if duration == 10 and clean["quality"] == "1080p":
            raise KieError(422, "duration: 10 seconds is not available with 1080p quality")
        if not clean.get("imageUrl") and not clean.get("aspectRatio"):
            raise KieError(422, "aspectRatio: is required for text-to-video")
        return TaskSpec(
            model=self.name,
            callback_url=callback_url(body),
            request=dict(body),
            media=MediaKind.VIDEO,
            ratio=clean.get("aspectRatio", "16:9"),
            prompt=clean["prompt"],
        )

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-detail's data (videoInfo on success)."""
        ok = task.state is TaskState.SUCCESS
        request = task.spec.request
        video_info = None
        if ok:
            video_info = {
                "videoId": task.task_id,
                "taskId": task.task_id,
                "videoUrl": task.result_urls[0],
                "imageUrl": task.cover_urls[0] if task.cover_urls else "",
            }
        return {
            "taskId": task.task_id,
            "parentTaskId": "",
            "generateParam": {
                "prompt": request.get("prompt", ""),
                "imageUrl": request.get("imageUrl", ""),
                "expandPrompt": False,
            },
            "state": STATE_NAMES[task.state],
            "generateTime": text_time(task.completed_ms or task.created_ms),
            "videoInfo": video_info,
            "failCode": int(task.fail_code) if task.fail_code.isdigit() else None,
            "failMsg": task.fail_msg,
            "expireFlag": 0,
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the terminal callback (snake_case; failure URLs are empty strings)."""
        ok = state is TaskState.SUCCESS
        if not ok and state is not TaskState.FAIL:
            return []
        data = {
            "task_id": task.task_id,
            "video_id": task.task_id if ok else "",
            "video_url": task.result_urls[0] if ok else "",
            "image_url": task.cover_urls[0] if ok and task.cover_urls else "",
        }
        code = 200 if ok else (int(task.fail_code) if task.fail_code.isdigit() else 500)
        return [{"code": code, "msg": MSG_SUCCESS if ok else task.fail_msg, "data": data}]
