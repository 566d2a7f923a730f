"""Family adapters: for each catalog model, its Kie endpoints, request body and result fields.

The catalog's `endpoint` picks the family; the catalog's `kie_model` is sent as `model` only by
the market API (for the other 7 it is a catalog key, kie_api.md §7). Every adapter turns a
status answer's `data` and a callback body into one `TaskState`, accepting the documented
variants (resultJson as a string or an object, Veo URLs as an array or a JSON string, MJ URL
objects or strings); a state it does not know is RUNNING, never terminal.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from services.catalog.loader import Model
from services.kie.callbacks import task_id_of
from services.kie.state import TaskState, TaskStatus

CALLBACK_FIELD = "callBackUrl"
# Set when Kie says "done" but gives no result; failure texts treat it as a generic failure.
NO_RESULT_CODE = "no_result"
VEO_MODEL = "veo3_fast"  # the catalog sells Veo 3.1 Fast
FLUX_DEFAULT_MODEL = "flux-kontext-pro"
GPT4O_DEFAULT_SIZE = "1:1"  # `size` is required by 4o and not a catalog input
RUNWAY_DEFAULT_ASPECT_RATIO = "16:9"  # required for text-to-video
SUNO_MODEL = "V5"
MJ_TASK_TYPE = "mj_txt2img"
MJ_VERSION = "7"


class Family(enum.StrEnum):
    """The Kie API a model is served by."""

    MARKET = "market"
    VEO = "veo"
    GPT4O_IMAGE = "4o-image"
    FLUX_KONTEXT = "flux-kontext"
    RUNWAY = "runway"
    SUNO = "suno"
    MIDJOURNEY = "midjourney"


class UnknownFamily(ValueError):
    """A catalog model names an endpoint no adapter serves."""


# ---- tolerant readers of Kie's loosely typed fields ----


def _mapping(value: Any) -> Mapping[str, Any]:
    value = _decoded(value)
    return value if isinstance(value, Mapping) else {}


def _decoded(value: Any) -> Any:
    """Return value parsed when it is a JSON string (Kie double-encodes some fields)."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _urls(value: Any) -> tuple[str, ...]:
    """Return http(s) URLs from a list of strings or {resultUrl|url} objects, a JSON string,
    a bracketed list without quotes ('[http://a.mp4]', as Veo's schema shows) or one URL."""
    value = _decoded(value)
    if isinstance(value, str):
        value = [part.strip(" '\"") for part in value.strip("[]").split(",")]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return ()
    found: list[str] = []
    for item in value:
        if isinstance(item, Mapping):
            item = item.get("resultUrl") or item.get("url") or item.get("result_url")
        if isinstance(item, str) and item.startswith(("https://", "http://")):
            found.append(item)
    return tuple(found)


def _code_text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def _task_id(data: Mapping[str, Any]) -> str:
    value = data.get("taskId") or data.get("task_id")
    return value if isinstance(value, str) else ""


def _done(task_id: str, urls: tuple[str, ...], raw: str,
          result_object: Mapping[str, Any] | None = None) -> TaskState:
    if not urls and not result_object:
        return TaskState(TaskStatus.FAILED, task_id, fail_code=NO_RESULT_CODE,
                         fail_message="finished without a result", raw_status=raw)
    return TaskState(TaskStatus.SUCCEEDED, task_id, result_urls=urls,
                     result_object=result_object, raw_status=raw)


def _failed(task_id: str, code: Any, message: Any, raw: str) -> TaskState:
    text = message if isinstance(message, str) else ""
    return TaskState(TaskStatus.FAILED, task_id, fail_code=_code_text(code),
                     fail_message=text, raw_status=raw)


def _envelope(body: Any) -> tuple[int | None, str, Mapping[str, Any]]:
    """Return a callback's code, msg and data (data may be null on failures)."""
    if not isinstance(body, Mapping):
        return None, "", {}
    code = body.get("code")
    message = body.get("msg") or body.get("message") or ""
    return (code if isinstance(code, int) else None, str(message), _mapping(body.get("data")))


class Adapter(ABC):
    """How one family is called and how its answers read."""

    family: Family
    create_path: str
    status_path: str

    @abstractmethod
    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        """Return the create body for validated catalog params."""

    @abstractmethod
    def parse_status(self, data: Any) -> TaskState:
        """Return the state in a status answer's `data`."""

    @abstractmethod
    def parse_callback(self, body: Any) -> TaskState:
        """Return the state a callback body reports."""

    def _with_callback(self, body: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
        if callback_url:
            body[CALLBACK_FIELD] = callback_url
        return body


class MarketAdapter(Adapter):
    """`/api/v1/jobs/*`: {model, input, callBackUrl}; state waiting..success|fail."""

    family = Family.MARKET
    create_path = "/api/v1/jobs/createTask"
    status_path = "/api/v1/jobs/recordInfo"
    PENDING_STATES = frozenset({"waiting", "queuing"})

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        return self._with_callback({"model": model.kie_model, "input": dict(params)},
                                   callback_url)

    def parse_status(self, data: Any) -> TaskState:
        data = _mapping(data)
        task_id, state = _task_id(data), str(data.get("state") or "")
        if state == "success":
            result = _mapping(data.get("resultJson"))
            obj = result.get("resultObject")
            return _done(task_id, _urls(result.get("resultUrls")), state,
                         obj if isinstance(obj, Mapping) else None)
        if state == "fail":
            return _failed(task_id, data.get("failCode"), data.get("failMsg"), state)
        status = TaskStatus.PENDING if state in self.PENDING_STATES else TaskStatus.RUNNING
        return TaskState(status, task_id, raw_status=state)

    def parse_callback(self, body: Any) -> TaskState:
        code, message, data = _envelope(body)
        if data.get("state"):
            return self.parse_status(data)
        # A failure body without a state still says it failed through its code.
        return _failed(task_id_of(body) or "", code, message, str(code))


class _FlagAdapter(Adapter):
    """Families whose status says successFlag 0 running / 1 success / 2, 3 failed."""

    FAILED_FLAGS = frozenset({2, 3})

    def parse_status(self, data: Any) -> TaskState:
        data = _mapping(data)
        task_id, flag = _task_id(data), data.get("successFlag")
        if flag == 1:
            return _done(task_id, self._status_urls(data), "1")
        if flag in self.FAILED_FLAGS:
            return _failed(task_id, data.get("errorCode"), data.get("errorMessage"), str(flag))
        return TaskState(TaskStatus.RUNNING, task_id, raw_status=_code_text(flag))

    def parse_callback(self, body: Any) -> TaskState:
        code, message, data = _envelope(body)
        task_id = task_id_of(body) or ""
        if code != 200:
            return _failed(task_id, code, message, _code_text(code))
        return _done(task_id, self._callback_urls(data), "200")

    @abstractmethod
    def _status_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]: ...

    @abstractmethod
    def _callback_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]: ...


class VeoAdapter(_FlagAdapter):
    """Veo 3.1: flat body with model veo3_fast; URLs in response/info.resultUrls."""

    family = Family.VEO
    create_path = "/api/v1/veo/generate"
    status_path = "/api/v1/veo/record-info"

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        return self._with_callback({**params, "model": VEO_MODEL}, callback_url)

    def _status_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(_mapping(data.get("response")).get("resultUrls"))

    def _callback_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(_mapping(data.get("info")).get("resultUrls"))


class FluxKontextAdapter(_FlagAdapter):
    """Flux Kontext: flat body with model flux-kontext-pro; one resultImageUrl."""

    family = Family.FLUX_KONTEXT
    create_path = "/api/v1/flux/kontext/generate"
    status_path = "/api/v1/flux/kontext/record-info"

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        body = {"model": FLUX_DEFAULT_MODEL, **params}
        return self._with_callback(body, callback_url)

    def _status_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(_mapping(data.get("response")).get("resultImageUrl"))

    def _callback_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(_mapping(data.get("info")).get("resultImageUrl"))


class MidjourneyAdapter(_FlagAdapter):
    """Midjourney: taskType mj_txt2img, version 7; status URLs are {resultUrl} objects."""

    family = Family.MIDJOURNEY
    create_path = "/api/v1/mj/generate"
    status_path = "/api/v1/mj/record-info"

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        body = {"taskType": MJ_TASK_TYPE, "version": MJ_VERSION, **params}
        return self._with_callback(body, callback_url)

    def _status_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(_mapping(data.get("resultInfoJson")).get("resultUrls"))

    def _callback_urls(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        return _urls(data.get("resultUrls"))


class Gpt4oImageAdapter(Adapter):
    """4o Image: flat body, `size` required; status GENERATING / SUCCESS / *_FAILED."""

    family = Family.GPT4O_IMAGE
    create_path = "/api/v1/gpt4o-image/generate"
    status_path = "/api/v1/gpt4o-image/record-info"
    FAILED_STATUSES = frozenset({"CREATE_TASK_FAILED", "GENERATE_FAILED"})
    STATUS_BY_FLAG: Mapping[int, str] = MappingProxyType(
        {0: "GENERATING", 1: "SUCCESS", 2: "GENERATE_FAILED"})

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        return self._with_callback({"size": GPT4O_DEFAULT_SIZE, **params}, callback_url)

    def parse_status(self, data: Any) -> TaskState:
        data = _mapping(data)
        task_id = _task_id(data)
        status = data.get("status")
        if not isinstance(status, str) or not status:
            status = self.STATUS_BY_FLAG.get(data.get("successFlag"), "")
        if status == "SUCCESS":
            response = _mapping(data.get("response"))
            urls = _urls(response.get("resultUrls")) or _urls(response.get("result_urls"))
            return _done(task_id, urls, status)
        if status in self.FAILED_STATUSES:
            return _failed(task_id, data.get("errorCode"), data.get("errorMessage"), status)
        return TaskState(TaskStatus.RUNNING, task_id, raw_status=status)

    def parse_callback(self, body: Any) -> TaskState:
        code, message, data = _envelope(body)
        task_id = task_id_of(body) or ""
        if code != 200:
            return _failed(task_id, code, message, _code_text(code))
        info = _mapping(data.get("info"))
        return _done(task_id, _urls(info.get("result_urls")) or _urls(info.get("resultUrls")),
                     "200")


class RunwayAdapter(Adapter):
    """Runway: catalog resolution -> quality, duration "5" -> 5; state wait..success|fail."""

    family = Family.RUNWAY
    create_path = "/api/v1/runway/generate"
    status_path = "/api/v1/runway/record-detail"
    PENDING_STATES = frozenset({"wait", "queueing"})

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        body = dict(params)
        if "resolution" in body:
            body["quality"] = body.pop("resolution")
        if isinstance(body.get("duration"), str):
            body["duration"] = int(body["duration"])
        if not body.get("imageUrl"):
            body.setdefault("aspectRatio", RUNWAY_DEFAULT_ASPECT_RATIO)
        return self._with_callback(body, callback_url)

    def parse_status(self, data: Any) -> TaskState:
        data = _mapping(data)
        task_id, state = _task_id(data), str(data.get("state") or "")
        if state == "success":
            return _done(task_id, _urls(_mapping(data.get("videoInfo")).get("videoUrl")), state)
        if state == "fail":
            return _failed(task_id, data.get("failCode"), data.get("failMsg"), state)
        status = TaskStatus.PENDING if state in self.PENDING_STATES else TaskStatus.RUNNING
        return TaskState(status, task_id, raw_status=state)

    def parse_callback(self, body: Any) -> TaskState:
        code, message, data = _envelope(body)
        task_id = task_id_of(body) or ""
        if code != 200:
            return _failed(task_id, code, message, _code_text(code))
        return _done(task_id, _urls(data.get("video_url")), "200")


class SunoAdapter(Adapter):
    """Suno: adds customMode/instrumental false and model V5; callbacks come in stages
    (text, first, complete) and only `complete` (or `error`) is terminal."""

    family = Family.SUNO
    create_path = "/api/v1/generate"
    status_path = "/api/v1/generate/record-info"
    RUNNING_STATUSES = frozenset({"TEXT_SUCCESS", "FIRST_SUCCESS"})
    FAILED_STATUSES = frozenset({"CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED",
                                 "CALLBACK_EXCEPTION", "SENSITIVE_WORD_ERROR"})

    def build_request(self, model: Model, params: Mapping[str, Any],
                      callback_url: str | None) -> dict[str, Any]:
        if not callback_url:
            raise ValueError("Suno requires a callback URL")
        body = {"customMode": False, "instrumental": False, **params, "model": SUNO_MODEL}
        return self._with_callback(body, callback_url)

    def parse_status(self, data: Any) -> TaskState:
        data = _mapping(data)
        task_id, status = _task_id(data), str(data.get("status") or "")
        tracks = _mapping(data.get("response")).get("sunoData")
        urls = _track_urls(tracks, "audioUrl")
        # CALLBACK_EXCEPTION is a failure of Kie's callback, not of the music: keep the audio.
        if status == "SUCCESS" or (status == "CALLBACK_EXCEPTION" and urls):
            return _done(task_id, urls, status)
        if status in self.FAILED_STATUSES:
            return _failed(task_id, data.get("errorCode"), data.get("errorMessage"), status)
        pending = status == "PENDING"
        return TaskState(TaskStatus.PENDING if pending else TaskStatus.RUNNING, task_id,
                         raw_status=status)

    def parse_callback(self, body: Any) -> TaskState:
        code, message, data = _envelope(body)
        task_id = task_id_of(body) or ""
        stage = str(data.get("callbackType") or "")
        if code != 200 or stage == "error":
            return _failed(task_id, code, message, stage or _code_text(code))
        if stage == "complete":
            return _done(task_id, _track_urls(data.get("data"), "audio_url"), stage)
        return TaskState(TaskStatus.RUNNING, task_id, raw_status=stage)


def _track_urls(tracks: Any, key: str) -> tuple[str, ...]:
    if not isinstance(tracks, list):
        return ()
    return tuple(url for t in tracks if isinstance(t, Mapping) for url in _urls(t.get(key)))


ADAPTERS: tuple[Adapter, ...] = (
    MarketAdapter(), VeoAdapter(), Gpt4oImageAdapter(), FluxKontextAdapter(), RunwayAdapter(),
    SunoAdapter(), MidjourneyAdapter())
ADAPTER_BY_CREATE_PATH: Mapping[str, Adapter] = MappingProxyType(
    {a.create_path: a for a in ADAPTERS})


def adapter_for(model: Model) -> Adapter:
    """Return the adapter serving the model's catalog endpoint."""
    adapter = ADAPTER_BY_CREATE_PATH.get(model.endpoint)
    if adapter is None:
        raise UnknownFamily(f"model {model.id!r}: no Kie adapter for endpoint {model.endpoint!r}")
    return adapter
