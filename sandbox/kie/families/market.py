"""The market API: `POST /api/v1/jobs/createTask` + `GET /api/v1/jobs/recordInfo`.

`model` must be a catalog model served by createTask (its `kie_model`); `input` is checked
against that model's typed inputs: a required field must be present (Kie does not apply the
catalog's defaults), unknown fields, types, enum values, ranges and lengths are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from sandbox.kie.accounts import as_number
from sandbox.kie.envelope import KieError
from sandbox.kie.families.base import Family, callback_url
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState
from services.catalog import Catalog, InputError, Model

MARKET_ENDPOINT = "/api/v1/jobs/createTask"
TOP_LEVEL_KEYS = frozenset({"model", "callBackUrl", "input"})
RATIO_FIELDS = ("aspect_ratio", "image_size", "aspectRatio")
MEDIA_BY_CATEGORY = {
    "image": MediaKind.IMAGE,
    "video": MediaKind.VIDEO,
    "audio": MediaKind.AUDIO,
}
# Upscalers return the kind of media they were given.
MEDIA_BY_MODEL_TYPE = {
    "upscale": MediaKind.IMAGE,
    "video_upscale": MediaKind.VIDEO,
    "speech_to_text": MediaKind.TEXT,
}
MSG_SUCCESS_CALLBACK = "Playground task completed successfully."
MSG_FAIL_CALLBACK = "Playground task failed."


def market_model(catalog: Catalog, name: object) -> Model:
    """Return the catalog model createTask serves under `name` (422 otherwise)."""
    for model in catalog:
        if model.endpoint == MARKET_ENDPOINT and model.kie_model == name:
            return model
    raise KieError(422, f"model: {name!r} is not supported")


def check_input(model: Model, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a market `input` against the model's catalog inputs (422 naming the field)."""
    for field in model.inputs:
        if field.required and params.get(field.name) is None:
            raise KieError(422, f"input.{field.name}: is required")
    try:
        return model.validate_params(params)
    except InputError as exc:
        raise KieError(422, f"input.{exc.field}: {exc.reason}") from exc


class Market(Family):
    """Every catalog model whose endpoint is createTask."""

    name: ClassVar[str] = "market"
    create_path: ClassVar[str] = MARKET_ENDPOINT
    status_path: ClassVar[str] = "/api/v1/jobs/recordInfo"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Validate `{model, callBackUrl, input}`."""
        unknown = set(body) - TOP_LEVEL_KEYS
        if unknown:
            raise KieError(422, f"{sorted(unknown)[0]}: is not a parameter of createTask")
        if body.get("model") is None:
            raise KieError(422, "model: is required")
        model = market_model(catalog, body["model"])
        params = body.get("input", {})
        if not isinstance(params, dict):
            raise KieError(422, "input: must be an object")
        clean = check_input(model, params)
        media = MEDIA_BY_MODEL_TYPE.get(model.model_type) or MEDIA_BY_CATEGORY[model.category]
        ratio = next((clean[name] for name in RATIO_FIELDS if name in clean), None)
        image_format = "jpeg" if clean.get("output_format") in ("jpeg", "jpg") else "png"
        return TaskSpec(
            model=model.kie_model,
            callback_url=callback_url(body),
            request=dict(body),
            media=media,
            ratio=str(ratio) if ratio is not None else None,
            image_format=image_format,
            prompt=str(clean.get("prompt", "")),
        )

    def result_json(self, task: Task) -> str:
        """Return `resultJson`: `{"resultUrls": [...]}` (text models: `resultObject`)."""
        if task.state is not TaskState.SUCCESS:
            return ""
        if task.spec.media is MediaKind.TEXT:
            return orjson.dumps({"resultObject": {"text": "sandbox transcript"}}).decode()
        return orjson.dumps({"resultUrls": task.result_urls}).decode()

    def status(self, task: Task) -> dict[str, Any]:
        """Return recordInfo's data (times in epoch ms, costTime in ms)."""
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": str(task.state),
            "param": orjson.dumps(task.spec.request).decode(),
            "resultJson": self.result_json(task),
            "failCode": task.fail_code,
            "failMsg": task.fail_msg,
            "costTime": task.cost_time_ms(),
            "completeTime": task.completed_ms,
            "createTime": task.created_ms,
            "updateTime": task.updated_ms,
        }

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the one terminal callback (costTime in seconds, as Kie sends it)."""
        if state not in (TaskState.SUCCESS, TaskState.FAIL):
            return []
        ok = state is TaskState.SUCCESS
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "model": task.model,
            "state": str(state),
            "param": orjson.dumps(task.spec.request).decode(),
            "costTime": task.cost_time_ms() // 1000,
            "completeTime": task.completed_ms,
            "createTime": task.created_ms,
            "updateTime": task.updated_ms,
            "creditsConsumed": as_number(task.credits) if ok else 0,
        }
        if ok:
            data["resultJson"] = self.result_json(task)
        else:
            data["resultJson"] = None
            data["failCode"] = task.fail_code
            data["failMsg"] = task.fail_msg
        return [
            {
                "code": 200 if ok else 501,
                "msg": MSG_SUCCESS_CALLBACK if ok else MSG_FAIL_CALLBACK,
                "data": data,
            }
        ]
