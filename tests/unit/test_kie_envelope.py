"""How the client reads one answer: HTTP status, body code, non-JSON pages, the upload flag."""

from __future__ import annotations

import orjson
import pytest

from services.kie.client import KieClient
from services.kie.errors import KieFinal, KieRetryable
from tests.helpers import KIE_KEY

CLIENT = KieClient(KIE_KEY)


def body(code: object, data: object = None, **extra: object) -> bytes:
    return orjson.dumps({"code": code, "msg": "m", "data": data, **extra})


def test_a_success_returns_data() -> None:
    assert CLIENT._read(200, body(200, {"taskId": "t"}), "/p") == {"taskId": "t"}


@pytest.mark.parametrize(("status", "raw", "error", "code"), [
    (200, body(422), KieFinal, 422),
    (200, body(455), KieRetryable, 455),
    (401, body(401), KieFinal, 401),
    (429, body(200), KieRetryable, 429),
    (500, b"<html>oops</html>", KieRetryable, 500),
    (404, b"not found", KieFinal, 404),
    (200, b"<html>proxy</html>", KieRetryable, 200),
    (200, orjson.dumps({"code": "200"}), KieRetryable, 200),
    (200, orjson.dumps([1, 2]), KieRetryable, 200),
    (200, body(200, None, success=False), KieFinal, 200),
], ids=["200-with-422", "200-with-455", "401-with-401", "429-with-200", "500-html", "404-text",
        "200-html", "code-as-string", "json-list", "upload-success-false"])
def test_a_failure_is_a_bad_status_or_body_code_and_non_json_falls_back_to_the_status(
        status: int, raw: bytes, error: type[Exception], code: int) -> None:
    with pytest.raises(error) as caught:
        CLIENT._read(status, raw, "/p")
    assert getattr(caught.value, "code", None) == code


def test_a_2xx_page_that_is_not_json_may_have_been_executed() -> None:
    with pytest.raises(KieRetryable) as caught:
        CLIENT._read(200, b"<html>", "/p")
    assert caught.value.maybe_executed


def test_kie_s_message_is_kept_as_detail_without_the_key() -> None:
    raw = orjson.dumps({"code": 401, "msg": f"bad key {KIE_KEY}"})
    with pytest.raises(KieFinal) as caught:
        CLIENT._read(200, raw, "/p")
    assert caught.value.detail == "bad key ***" and KIE_KEY not in str(caught.value)


def test_the_repr_names_the_hosts_and_not_the_key() -> None:
    assert KIE_KEY not in repr(CLIENT) and "api.kie.ai" in repr(CLIENT)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        KieClient("")
