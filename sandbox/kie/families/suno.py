"""Suno: `POST /api/v1/generate`, `GET /api/v1/generate/record-info`; staged callbacks.

Stages: entering `generating` sends callbackType `text` (status TEXT_SUCCESS); success
sends `first` then `complete` (status SUCCESS); failure sends `error` (code 501, status
GENERATE_AUDIO_FAILED). Each task makes two tracks with a cover image each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sandbox.kie.envelope import KieError
from sandbox.kie.families.base import Family, callback_url, check_fields, param_json, text_time
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputField

MODELS = ("V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5")
FIELDS = (
    InputField("customMode", "bool", required=True),
    InputField("instrumental", "bool", required=True),
    InputField("model", "enum", required=True, values=MODELS),
    InputField("callBackUrl", "string", required=True),
    InputField("prompt", "string"),
    InputField("style", "string"),
    InputField("title", "string", max_length=80),
    InputField("negativeTags", "string"),
    InputField("vocalGender", "enum", values=("m", "f")),
    InputField("styleWeight", "float", min=0, max=1),
    InputField("weirdnessConstraint", "float", min=0, max=1),
    InputField("audioWeight", "float", min=0, max=1),
    InputField("personaId", "string"),
    InputField("personaModel", "enum", values=("style_persona", "voice_persona")),
    InputField("duration", "float", min=10, max=360),
)
TRACKS_PER_TASK = 2
NON_CUSTOM_PROMPT_MAX_CHARS = 3_000
STATUS_BY_STATE = {
    TaskState.WAITING: "PENDING",
    TaskState.QUEUING: "PENDING",
    TaskState.GENERATING: "TEXT_SUCCESS",
    TaskState.SUCCESS: "SUCCESS",
    TaskState.FAIL: "GENERATE_AUDIO_FAILED",
}
TRACK_SECONDS = 198.44
TEXT_MSG = "Text generated successfully."
DONE_MSG = "All generated successfully."


def _limits(model: str) -> tuple[int, int]:
    """Return the custom-mode (prompt, style) length limits of a model."""
    return (3_000, 200) if model == "V4" else (5_000, 1_000)


class Suno(Family):
    """Suno music generation."""

    name: ClassVar[str] = "suno"
    create_path: ClassVar[str] = "/api/v1/generate"
    status_path: ClassVar[str] = "/api/v1/generate/record-info"
    covers: ClassVar[bool] = True

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Check the Suno body and its custom-mode rules."""
        clean = check_fields(body, FIELDS)
        model, custom = clean["model"], clean["customMode"]
        prompt, style = clean.get("prompt", ""), clean.get("style", "")
        if not custom:
            if not prompt:
                raise KieError(422, "prompt: is required when customMode is false")
            if len(prompt) > NON_CUSTOM_PROMPT_MAX_CHARS:
                raise KieError(422, f"prompt: is {len(prompt)} characters, at most 3000")
        else:
            prompt_max, style_max = _limits(model)
            for field in ("style", "title"):
                if not clean.get(field):
                    raise KieError(422, f"{field}: is required in custom mode")
            if not clean["instrumental"] and not prompt:
                raise KieError(422, "prompt: is required in custom mode with vocals")
            if len(prompt) > prompt_max:
                raise KieError(422, f"prompt: is {len(prompt)} characters, at most {prompt_max}")
            if len(style) > style_max:
                raise KieError(422, f"style: is {len(style)} characters, at most {style_max}")
        return TaskSpec(
            model=model,
            callback_url=callback_url(body, required=True),
            request=dict(body),
            media=MediaKind.AUDIO,
            results=TRACKS_PER_TASK,
            prompt=prompt,
        )

    def _track(self, task: Task, index: int, *, snake: bool, with_audio: bool) -> dict[str, Any]:
        """Return one track in the status (camelCase) or callback (snake_case) spelling."""
        audio = task.result_urls[index] if with_audio and index < len(task.result_urls) else ""
        cover = task.cover_urls[index] if with_audio and index < len(task.cover_urls) else ""
        names = (
            ("audio_url", "stream_audio_url", "image_url", "model_name")
            if snake
            else ("audioUrl", "streamAudioUrl", "imageUrl", "modelName")
        )
        return {
            "id": f"{task.task_id}-{index}",
            names[0]: audio,
            names[1]: audio,
            names[2]: cover,
            "prompt": task.spec.prompt,
            names[3]: "chirp-v4",
            "title": task.spec.request.get("title", "Sandbox song"),
            "tags": task.spec.request.get("style", ""),
            "createTime": text_time(task.created_ms),
            "duration": TRACK_SECONDS if audio else None,
        }

    def status(self, task: Task) -> dict[str, Any]:
        """Return record-info's data (`response.sunoData[].audioUrl`)."""
        ok = task.state is TaskState.SUCCESS
        tracks = [self._track(task, i, snake=False, with_audio=ok) for i in range(TRACKS_PER_TASK)]
        failed = task.state is TaskState.FAIL
        return {
            "taskId": task.task_id,
            "parentMusicId": "",
            "param": param_json(task),
            "status": STATUS_BY_STATE[task.state],
            "response": {
                "taskId": task.task_id,
                "sunoData": tracks
                if task.state in (TaskState.GENERATING, TaskState.SUCCESS)
                else [],
            },
            "type": "GENERATE",
            "operationType": "generate",
            "errorCode": (int(task.fail_code) if task.fail_code.isdigit() else 500)
            if failed
            else None,
            "errorMessage": task.fail_msg or None,
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return `text` on generating, `first` + `complete` on success, `error` on failure."""

        def stage(kind: str, msg: str, tracks: int, *, with_audio: bool) -> dict[str, Any]:
            data = [self._track(task, i, snake=True, with_audio=with_audio) for i in range(tracks)]
            return {
                "code": 200,
                "msg": msg,
                "data": {"callbackType": kind, "task_id": task.task_id, "data": data},
            }

        if state is TaskState.GENERATING:
            return [stage("text", TEXT_MSG, TRACKS_PER_TASK, with_audio=False)]
        if state is TaskState.SUCCESS:
            return [
                stage("first", "First track generated successfully.", 1, with_audio=True),
                stage("complete", DONE_MSG, TRACKS_PER_TASK, with_audio=True),
            ]
        if state is TaskState.FAIL:
            code = int(task.fail_code) if task.fail_code.isdigit() else 501
            data = {"callbackType": "error", "task_id": task.task_id, "data": None}
            return [{"code": code, "msg": task.fail_msg, "data": data}]
        return []
