"""Kie's failures become a short, user-safe reason in Russian and English."""

from __future__ import annotations

import pytest

from services.kie.failures import FailureReason, failure_reason, failure_text, reason_text
from services.kie.state import TaskState, TaskStatus

R = FailureReason


@pytest.mark.parametrize(("code", "message", "raw_status", "expected"), [
    ("400", "Your content was flagged by OpenAI as violating content policies", "",
     R.CONTENT_POLICY),
    (400, "The prompt violates our content policy", "", R.CONTENT_POLICY),
    ("400", "NSFW content detected", "fail", R.CONTENT_POLICY),
    (400, "copyrighted lyrics", "", R.CONTENT_POLICY),
    (None, "", "SENSITIVE_WORD_ERROR", R.CONTENT_POLICY),
    ("451", "Failed to fetch the image", "", R.BAD_INPUT_IMAGE),
    (451, "", "", R.BAD_INPUT_IMAGE),
    ("400", "image size exceeds 26214400 bytes", "", R.BAD_INPUT_IMAGE),
    ("400", "Invalid image format", "", R.BAD_INPUT_IMAGE),
    ("408", "", "", R.TIMEOUT),
    ("500", "upstream returned no result for over 10 minutes", "", R.TIMEOUT),
    ("500", "Generation timed out", "", R.TIMEOUT),
    ("455", "", "", R.SERVICE_UNAVAILABLE),
    ("550", "Connection denied", "", R.SERVICE_UNAVAILABLE),
    ("500", "service under maintenance", "", R.SERVICE_UNAVAILABLE),
    ("501", "Generation failed", "", R.GENERIC),
    ("531", "", "", R.GENERIC),
    ("no_result", "finished without a result", "", R.GENERIC),
    ("", "", "", R.GENERIC),
    (None, None, "", R.GENERIC),
])
def test_kie_failures_map_to_a_reason(code: str | int | None, message: str | None,
                                      raw_status: str, expected: FailureReason) -> None:
    assert failure_reason(code, message, raw_status=raw_status) is expected


def test_every_reason_has_a_short_text_in_both_languages() -> None:
    for reason in FailureReason:
        ru, en = reason_text(reason, "ru"), reason_text(reason, "en")
        assert ru and en and ru != en and f"failure-{reason}" not in (ru, en)
        assert len(ru) <= 120 and len(en) <= 120


def test_the_user_never_sees_kie_s_own_text() -> None:
    raw = "Internal error at node gpu-17: CUDA OOM (trace 0xdeadbeef)"
    state = TaskState(TaskStatus.FAILED, "t1", fail_code="500", fail_message=raw)
    for lang in ("ru", "en"):
        shown = failure_text(state, lang)
        assert "gpu-17" not in shown and "CUDA" not in shown and "500" not in shown
    assert failure_text(state, "ru") == reason_text(R.GENERIC, "ru")
    assert failure_text(state, "de") == reason_text(R.GENERIC, "en")
