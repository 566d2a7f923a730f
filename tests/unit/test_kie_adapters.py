"""Every catalog model maps to a Kie family; each family's bodies and answers read right."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.catalog.loader import InputField, Model, get_catalog
from services.kie.adapters import (
    NO_RESULT_CODE,
    Family,
    FluxKontextAdapter,
    Gpt4oImageAdapter,
    MarketAdapter,
    MidjourneyAdapter,
    RunwayAdapter,
    SunoAdapter,
    UnknownFamily,
    VeoAdapter,
    adapter_for,
)
from services.kie.state import TaskState, TaskStatus

CALLBACK = "https://bot.example.com/kie/callback/job-1?token=t"
SAMPLE_URL = {"image_url": "https://example.com/in.png", "video_url": "https://example.com/in.mp4",
              "audio_url": "https://example.com/in.mp3"}
NON_MARKET = {"openai/4o-image": Family.GPT4O_IMAGE, "flux/kontext": Family.FLUX_KONTEXT,
              "google/veo-3": Family.VEO, "google/veo-3.1": Family.VEO,
              "runway/gen-4": Family.RUNWAY, "suno/v5": Family.SUNO,
              "midjourney/api": Family.MIDJOURNEY}
MODELS = get_catalog().models


def sample_value(f: InputField, kind: str) -> object:
    """Return the first valid value of a required field without a default."""
    if kind == "array":
        return [sample_value(f, f.item_type or "string")]
    if kind == "enum":
        return f.values[0]
    if kind in SAMPLE_URL:
        return SAMPLE_URL[kind]
    if kind == "bool":
        return False
    if kind in ("int", "float"):
        low = f.min if f.min is not None else 1
        return int(low) if kind == "int" else float(low)
    return "a red fox in the snow"[: f.max_length or None].ljust(f.min_length or 0, "x")


def first_valid_params(model: Model) -> dict[str, object]:
    """Return the model's defaults plus a first valid value for each other required field."""
    given = {f.name: sample_value(f, f.type) for f in model.inputs
             if f.required and f.default is None}
    return model.validate_params(given)


def test_the_catalog_has_66_market_models_and_the_7_family_ones() -> None:
    families = {m.id: adapter_for(m).family for m in MODELS}
    assert len(families) == 73
    assert {k: v for k, v in families.items() if v is not Family.MARKET} == NON_MARKET
    assert sum(v is Family.MARKET for v in families.values()) == 66


@pytest.mark.parametrize("model", MODELS, ids=[m.id for m in MODELS])
def test_every_catalog_model_builds_a_request_from_its_first_valid_params(model: Model) -> None:
    adapter = adapter_for(model)
    params = first_valid_params(model)
    body = adapter.build_request(model, params, CALLBACK)
    assert adapter.create_path == model.endpoint
    assert body["callBackUrl"] == CALLBACK
    orjson.dumps(body)  # the body is plain JSON
    if adapter.family is Family.MARKET:
        assert body == {"model": model.kie_model, "input": params, "callBackUrl": CALLBACK}
    else:
        assert "input" not in body and body.get("model") != model.kie_model
        assert body["prompt"] == params["prompt"]


def test_an_endpoint_without_an_adapter_is_named() -> None:
    z_image = get_catalog()["z-image"]
    stray = Model(**{**{s: getattr(z_image, s) for s in Model.__slots__},
                     "endpoint": "/api/v1/unknown"})
    with pytest.raises(UnknownFamily, match="/api/v1/unknown"):
        adapter_for(stray)


# ---- request bodies of the families ----


def build(model_id: str, params: dict[str, Any], callback: str | None = CALLBACK
          ) -> dict[str, Any]:
    model = get_catalog()[model_id]
    return adapter_for(model).build_request(model, model.validate_params(params), callback)


def test_runway_renames_resolution_to_quality_and_sends_duration_as_a_number() -> None:
    body = build("runway/gen-4", {"prompt": "waves", "duration": "10", "resolution": "720p"})
    assert body == {"prompt": "waves", "duration": 10, "quality": "720p", "aspectRatio": "16:9",
                    "callBackUrl": CALLBACK}


def test_suno_adds_custom_mode_instrumental_and_model_v5() -> None:
    assert build("suno/v5", {"prompt": "a calm song"}) == {
        "prompt": "a calm song", "customMode": False, "instrumental": False, "model": "V5",
        "callBackUrl": CALLBACK}


def test_suno_refuses_to_build_without_a_callback_url() -> None:
    with pytest.raises(ValueError, match="callback"):
        build("suno/v5", {"prompt": "a calm song"}, callback=None)


def test_midjourney_sends_its_task_type_and_version() -> None:
    assert build("midjourney/api", {"prompt": "castle"}) == {
        "taskType": "mj_txt2img", "version": "7", "prompt": "castle", "callBackUrl": CALLBACK}


def test_4o_image_sends_the_required_size() -> None:
    assert build("openai/4o-image", {"prompt": "cat"}) == {
        "size": "1:1", "prompt": "cat", "callBackUrl": CALLBACK}


@pytest.mark.parametrize("model_id", ["google/veo-3", "google/veo-3.1"])
def test_both_veo_models_use_veo3_fast(model_id: str) -> None:
    assert build(model_id, {"prompt": "sunrise"}) == {
        "prompt": "sunrise", "model": "veo3_fast", "callBackUrl": CALLBACK}


def test_flux_kontext_sends_the_pro_model() -> None:
    assert build("flux/kontext", {"prompt": "logo"}) == {
        "model": "flux-kontext-pro", "prompt": "logo", "callBackUrl": CALLBACK}


def test_a_market_request_without_a_callback_url_has_no_callback_field() -> None:
    assert build("z-image", {"prompt": "fox"}, callback=None) == {
        "model": "z-image", "input": {"prompt": "fox", "aspect_ratio": "1:1"}}


# ---- status answers and callbacks ----

URL1, URL2 = "https://tempfile.aiquickdraw.com/a.png", "https://tempfile.aiquickdraw.com/b.png"


def ok(*urls: str, task_id: str = "t1") -> TaskState:
    return TaskState(TaskStatus.SUCCEEDED, task_id, result_urls=urls)


def status_of(state: TaskState) -> tuple[TaskStatus, str, tuple[str, ...], str]:
    return state.status, state.task_id, state.result_urls, state.fail_code


MARKET = MarketAdapter()


@pytest.mark.parametrize(("state", "expected"), [
    ("waiting", TaskStatus.PENDING), ("queuing", TaskStatus.PENDING),
    ("generating", TaskStatus.RUNNING), ("retrying-someday", TaskStatus.RUNNING),
    ("", TaskStatus.RUNNING)])
def test_market_states_before_the_end_are_pending_or_running(state: str,
                                                             expected: TaskStatus) -> None:
    parsed = MARKET.parse_status({"taskId": "t1", "state": state})
    assert parsed.status is expected and not parsed.terminal


@pytest.mark.parametrize("result_json", [
    orjson.dumps({"resultUrls": [URL1, URL2]}).decode(),
    {"resultUrls": [URL1, URL2]},
], ids=["json-string", "object"])
def test_market_success_reads_result_urls_from_result_json(result_json: object) -> None:
    parsed = MARKET.parse_status({"taskId": "t1", "state": "success", "resultJson": result_json})
    assert status_of(parsed) == status_of(ok(URL1, URL2))


def test_market_text_output_succeeds_with_its_result_object() -> None:
    parsed = MARKET.parse_status({"taskId": "t1", "state": "success",
                                  "resultJson": '{"resultObject": {"text": "hello"}}'})
    assert parsed.status is TaskStatus.SUCCEEDED and parsed.result_object == {"text": "hello"}


def test_market_success_without_any_result_is_a_failure() -> None:
    parsed = MARKET.parse_status({"taskId": "t1", "state": "success", "resultJson": ""})
    assert parsed.status is TaskStatus.FAILED and parsed.fail_code == NO_RESULT_CODE


def test_market_fail_keeps_fail_code_and_message() -> None:
    parsed = MARKET.parse_status({"taskId": "t1", "state": "fail", "failCode": "500",
                                  "failMsg": "internal error", "resultJson": ""})
    assert (parsed.status, parsed.fail_code, parsed.fail_message) == (
        TaskStatus.FAILED, "500", "internal error")


def test_market_callbacks_read_like_record_info() -> None:
    success = {"code": 200, "msg": "Playground task completed successfully.", "data": {
        "taskId": "t1", "model": "wan/3-0-video-prime", "state": "success",
        "param": '{"input":"{\\"duration\\":5}"}', "costTime": 89,
        "resultJson": orjson.dumps({"resultUrls": [URL1]}).decode(), "creditsConsumed": 61}}
    failure = {"code": 501, "msg": "Playground task failed.", "data": {
        "taskId": "t2", "state": "fail", "failCode": "400", "failMsg": "bad prompt",
        "resultJson": None, "creditsConsumed": 0}}
    assert status_of(MARKET.parse_callback(success)) == status_of(ok(URL1))
    assert status_of(MARKET.parse_callback(failure)) == (TaskStatus.FAILED, "t2", (), "400")


def test_a_market_callback_without_data_fails_by_its_code() -> None:
    parsed = MARKET.parse_callback({"code": 501, "msg": "failed", "data": None, "taskId": "t3"})
    assert status_of(parsed) == (TaskStatus.FAILED, "t3", (), "501")


@pytest.mark.parametrize("urls", [
    [URL1], orjson.dumps([URL1]).decode(), f"[{URL1}]"], ids=["array", "json", "bracketed"])
def test_veo_accepts_result_urls_as_array_json_string_or_bracketed_list(urls: object) -> None:
    veo = VeoAdapter()
    body = {"code": 200, "msg": "Veo3.1 video generated successfully.",
            "data": {"taskId": "t1", "info": {"resultUrls": urls, "resolution": "1080p"},
                     "fallbackFlag": False}}
    assert status_of(veo.parse_callback(body)) == status_of(ok(URL1))
    status = {"taskId": "t1", "successFlag": 1, "response": {"resultUrls": urls}}
    assert status_of(veo.parse_status(status)) == status_of(ok(URL1))


@pytest.mark.parametrize("flag", [2, 3])
def test_veo_and_flux_flags_2_and_3_are_failures(flag: int) -> None:
    for adapter in (VeoAdapter(), FluxKontextAdapter(), MidjourneyAdapter()):
        parsed = adapter.parse_status({"taskId": "t1", "successFlag": flag, "errorCode": 400,
                                       "errorMessage": "content policy"})
        assert status_of(parsed) == (TaskStatus.FAILED, "t1", (), "400")


def test_a_veo_failure_callback_holds_only_its_code() -> None:
    parsed = VeoAdapter().parse_callback({"code": 400, "msg": "Only English prompts are "
                                          "supported at this time", "data": {"taskId": "t1"}})
    assert status_of(parsed) == (TaskStatus.FAILED, "t1", (), "400")
    assert parsed.fail_message.startswith("Only English")


def test_flux_reads_its_single_result_image_url() -> None:
    flux = FluxKontextAdapter()
    assert status_of(flux.parse_status({"taskId": "t1", "successFlag": 1, "response": {
        "resultImageUrl": URL1, "originImageUrl": URL2}})) == status_of(ok(URL1))
    assert status_of(flux.parse_callback({"code": 200, "data": {"taskId": "t1", "info": {
        "resultImageUrl": URL1, "originImageUrl": URL2}}})) == status_of(ok(URL1))
    failed = flux.parse_callback({"code": 501, "data": {"taskId": "t1", "info": {
        "resultImageUrl": "", "originImageUrl": ""}}})
    assert failed.status is TaskStatus.FAILED and failed.fail_code == "501"
    assert flux.parse_status({"taskId": "t1", "successFlag": 0}).status is TaskStatus.RUNNING


def test_midjourney_status_has_url_objects_and_its_callback_strings() -> None:
    mj = MidjourneyAdapter()
    status = {"taskId": "t1", "successFlag": 1, "resultInfoJson": {
        "resultUrls": [{"resultUrl": URL1}, {"resultUrl": URL2}]}}
    assert status_of(mj.parse_status(status)) == status_of(ok(URL1, URL2))
    as_string = {**status, "resultInfoJson": orjson.dumps(status["resultInfoJson"]).decode()}
    assert status_of(mj.parse_status(as_string)) == status_of(ok(URL1, URL2))
    callback = {"code": 200, "msg": "success", "data": {"taskId": "t1", "resultUrls": [URL1]}}
    assert status_of(mj.parse_callback(callback)) == status_of(ok(URL1))
    failed = mj.parse_callback({"code": 500, "msg": "x", "data": {"taskId": "t1",
                                                                  "resultUrls": []}})
    assert status_of(failed) == (TaskStatus.FAILED, "t1", (), "500")


def test_4o_reads_status_words_result_url_spellings_and_its_callback() -> None:
    gpt = Gpt4oImageAdapter()
    for key in ("resultUrls", "result_urls"):
        parsed = gpt.parse_status({"taskId": "t1", "status": "SUCCESS", "response": {key: [URL1]}})
        assert status_of(parsed) == status_of(ok(URL1))
    assert gpt.parse_status({"taskId": "t1", "status": "GENERATING",
                             "progress": "0.50"}).status is TaskStatus.RUNNING
    assert gpt.parse_status({"taskId": "t1", "successFlag": 1, "response": {
        "resultUrls": [URL1]}}).status is TaskStatus.SUCCEEDED
    failed = gpt.parse_status({"taskId": "t1", "status": "GENERATE_FAILED", "errorCode": 451,
                               "errorMessage": "download failed"})
    assert status_of(failed) == (TaskStatus.FAILED, "t1", (), "451")
    callback = {"code": 200, "msg": "success", "data": {"taskId": "t1", "info": {
        "result_urls": [URL1]}}}
    assert status_of(gpt.parse_callback(callback)) == status_of(ok(URL1))
    refused = gpt.parse_callback({"code": 400, "msg": "flagged", "data": {"taskId": "t1",
                                                                          "info": None}})
    assert status_of(refused) == (TaskStatus.FAILED, "t1", (), "400")


def test_runway_reads_its_states_video_url_and_snake_case_callback() -> None:
    runway = RunwayAdapter()
    assert runway.parse_status({"taskId": "t1", "state": "wait"}).status is TaskStatus.PENDING
    assert runway.parse_status({"taskId": "t1", "state": "queueing"}).status is TaskStatus.PENDING
    assert runway.parse_status({"taskId": "t1", "state": "generating"}).status is \
        TaskStatus.RUNNING
    done = runway.parse_status({"taskId": "t1", "state": "success", "videoInfo": {
        "videoId": "v", "videoUrl": URL1, "imageUrl": URL2}, "expireFlag": 0})
    assert status_of(done) == status_of(ok(URL1))
    failed = runway.parse_status({"taskId": "t1", "state": "fail", "failCode": 400,
                                  "failMsg": "NSFW"})
    assert status_of(failed) == (TaskStatus.FAILED, "t1", (), "400")
    callback = {"code": 200, "msg": "All generated successfully.", "data": {
        "task_id": "t1", "video_id": "v", "video_url": URL1, "image_url": URL2}}
    assert status_of(runway.parse_callback(callback)) == status_of(ok(URL1))
    refused = runway.parse_callback({"code": 400, "msg": "moderation", "data": {
        "task_id": "t1", "video_url": "", "image_url": ""}})
    assert status_of(refused) == (TaskStatus.FAILED, "t1", (), "400")


def suno_callback(stage: str, tracks: list[dict[str, Any]] | None, code: int = 200
                  ) -> dict[str, Any]:
    return {"code": code, "msg": "x", "data": {"callbackType": stage, "task_id": "t1",
                                               "data": tracks}}


def test_suno_callbacks_are_terminal_only_at_complete_or_error() -> None:
    suno = SunoAdapter()
    track = {"id": "a", "audio_url": URL1, "stream_audio_url": URL2, "duration": 198.44}
    assert suno.parse_callback(suno_callback("text", [])).status is TaskStatus.RUNNING
    assert suno.parse_callback(suno_callback("first", [track])).status is TaskStatus.RUNNING
    second = {**track, "audio_url": URL2}
    assert status_of(suno.parse_callback(suno_callback("complete", [track, second]))) == \
        status_of(ok(URL1, URL2))
    failed = suno.parse_callback(suno_callback("error", None, code=501))
    assert status_of(failed) == (TaskStatus.FAILED, "t1", (), "501")
    refunded = suno.parse_callback(suno_callback("complete", None, code=531))
    assert refunded.status is TaskStatus.FAILED and refunded.fail_code == "531"


@pytest.mark.parametrize(("status", "expected"), [
    ("PENDING", TaskStatus.PENDING), ("TEXT_SUCCESS", TaskStatus.RUNNING),
    ("FIRST_SUCCESS", TaskStatus.RUNNING), ("SOMETHING_NEW", TaskStatus.RUNNING),
    ("SUCCESS", TaskStatus.SUCCEEDED), ("CREATE_TASK_FAILED", TaskStatus.FAILED),
    ("GENERATE_AUDIO_FAILED", TaskStatus.FAILED), ("SENSITIVE_WORD_ERROR", TaskStatus.FAILED)])
def test_suno_statuses_map_to_task_states(status: str, expected: TaskStatus) -> None:
    data = {"taskId": "t1", "status": status, "errorCode": None, "response": {
        "taskId": "t1", "sunoData": [{"id": "a", "audioUrl": URL1}]}}
    assert SunoAdapter().parse_status(data).status is expected


def test_a_suno_callback_exception_keeps_audio_that_was_made() -> None:
    suno = SunoAdapter()
    with_audio = {"taskId": "t1", "status": "CALLBACK_EXCEPTION", "response": {
        "sunoData": [{"audioUrl": URL1}]}}
    assert status_of(suno.parse_status(with_audio)) == status_of(ok(URL1))
    without = {"taskId": "t1", "status": "CALLBACK_EXCEPTION", "response": {"sunoData": []}}
    assert suno.parse_status(without).status is TaskStatus.FAILED


@pytest.mark.parametrize("body", [None, "text", [], {"code": "200"}, {"data": "junk"}])
def test_garbage_callbacks_never_succeed(body: object) -> None:
    for adapter in (MARKET, VeoAdapter(), Gpt4oImageAdapter(), FluxKontextAdapter(),
                    RunwayAdapter(), SunoAdapter(), MidjourneyAdapter()):
        assert adapter.parse_callback(body).status is not TaskStatus.SUCCEEDED
        assert adapter.parse_status(body).status is not TaskStatus.SUCCEEDED
