"""Callback HMAC verification and where a callback's task id is read."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.kie.callbacks import sign_callback, task_id_of, verify_callback_signature

KEY = "hmac-test-key-0123456789"
TASK = "e989621f54392584b05867f87b160672"
NOW = 1_767_000_000


def kie_signature(key: str, task_id: str, timestamp: str) -> str:
    """Sign as kie_api.md §3 documents it, independently of the code under test."""
    message = f"{task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def test_the_documented_signature_verifies() -> None:
    signature = kie_signature(KEY, TASK, str(NOW))
    assert sign_callback(KEY, TASK, str(NOW)) == signature
    assert len(signature) == 44
    assert verify_callback_signature(KEY, TASK, str(NOW), signature, NOW)


@pytest.mark.parametrize(("key", "task_id", "timestamp"), [
    ("another-key-0123456789", TASK, str(NOW)),
    (KEY, "another-task", str(NOW)),
    (KEY, TASK, str(NOW + 1)),
], ids=["wrong-key", "other-task", "other-timestamp"])
def test_a_signature_for_anything_else_is_refused(key: str, task_id: str,
                                                  timestamp: str) -> None:
    signature = kie_signature(key, task_id, timestamp)
    assert not verify_callback_signature(KEY, TASK, str(NOW), signature, NOW)


@pytest.mark.parametrize("skew_s", [-301, 301, 10_000])
def test_a_timestamp_outside_the_tolerance_is_refused(skew_s: int) -> None:
    stamp = str(NOW + skew_s)
    assert not verify_callback_signature(KEY, TASK, stamp, kie_signature(KEY, TASK, stamp), NOW)


@pytest.mark.parametrize("skew_s", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_is_accepted(skew_s: int) -> None:
    stamp = str(NOW + skew_s)
    assert verify_callback_signature(KEY, TASK, stamp, kie_signature(KEY, TASK, stamp), NOW)


def test_the_tolerance_can_be_narrowed() -> None:
    stamp = str(NOW - 60)
    signature = kie_signature(KEY, TASK, stamp)
    assert not verify_callback_signature(KEY, TASK, stamp, signature, NOW, tolerance_s=30)


@pytest.mark.parametrize(("timestamp", "signature"), [
    (None, "sig"), (str(NOW), None), ("", "sig"), ("12ab", "sig"), ("-5", "sig"),
    ("1" * 20, "sig"), (str(NOW), "not base64 at all"), (str(NOW), "тест"),
])
def test_missing_or_malformed_headers_are_refused(timestamp: str | None,
                                                  signature: str | None) -> None:
    assert not verify_callback_signature(KEY, TASK, timestamp, signature, NOW)


def test_an_empty_key_verifies_nothing() -> None:
    assert not verify_callback_signature("", TASK, str(NOW), kie_signature("", TASK, str(NOW)),
                                         NOW)


@pytest.mark.parametrize(("body", "expected"), [
    ({"code": 200, "data": {"taskId": "a", "task_id": "b"}}, "a"),
    ({"code": 200, "data": {"task_id": "b", "callbackType": "complete"}}, "b"),
    ({"code": 200, "taskId": "top", "data": None}, "top"),
    ({"code": 200, "task_id": "top2", "data": {"info": {}}}, "top2"),
    ({"code": 200, "data": {"taskId": ""}}, None),
    ({"code": 200, "data": {"taskId": 12}}, None),
    ([1, 2], None),
], ids=["data.taskId-first", "data.task_id", "top-level", "top-level-snake", "empty", "number",
        "not-an-object"])
def test_task_id_of_reads_data_then_top_level(body: object, expected: str | None) -> None:
    assert task_id_of(body) == expected
