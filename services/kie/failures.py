"""User-safe failure reasons: Kie's failCode / failMsg / family error -> a short ru/en text.

Kie's own text is read only to pick the reason; users never see it (it may be English-only,
internal or echo their input). Order matters: a content-policy word wins over a code, since
Kie reports policy rejections with 400, 500 or a Suno status alike.
"""

from __future__ import annotations

import enum
import re

from services.kie.state import TaskState
from services.telegram import texts


class FailureReason(enum.StrEnum):
    """Why a generation failed, as far as a user needs to know."""

    CONTENT_POLICY = "content_policy"
    BAD_INPUT_IMAGE = "bad_input_image"
    TIMEOUT = "timeout"
    SERVICE_UNAVAILABLE = "service_unavailable"
    GENERIC = "generic"


POLICY_RE = re.compile(
    r"polic|flagged|sensitive|nsfw|moderat|unsafe|violat|prohibit|inappropriate|copyright",
    re.IGNORECASE)
IMAGE_RE = re.compile(
    r"(image|file|photo|picture).*(download|fetch|format|size|large|invalid|read|decode)"
    r"|(download|fetch).*(image|file|url)", re.IGNORECASE)
TIMEOUT_RE = re.compile(r"time[ d-]?out|timed out|no result for over", re.IGNORECASE)
UNAVAILABLE_RE = re.compile(r"maintenance|unavailable|queue is full|overload", re.IGNORECASE)
POLICY_STATUSES = frozenset({"SENSITIVE_WORD_ERROR"})
BAD_INPUT_CODES = frozenset({"451"})
TIMEOUT_CODES = frozenset({"408"})
UNAVAILABLE_CODES = frozenset({"429", "455", "502", "503", "504", "550"})

def failure_reason(code: str | int | None, message: str | None = None, *,
                   raw_status: str = "") -> FailureReason:
    """Return the user-level reason for a Kie failure code, text and family status."""
    code_text = "" if code is None else str(code).strip()
    text = message or ""
    if raw_status in POLICY_STATUSES or POLICY_RE.search(text):
        return FailureReason.CONTENT_POLICY
    if code_text in BAD_INPUT_CODES or IMAGE_RE.search(text):
        return FailureReason.BAD_INPUT_IMAGE
    if code_text in TIMEOUT_CODES or TIMEOUT_RE.search(text):
        return FailureReason.TIMEOUT
    if code_text in UNAVAILABLE_CODES or UNAVAILABLE_RE.search(text):
        return FailureReason.SERVICE_UNAVAILABLE
    return FailureReason.GENERIC


def failure_text(state: TaskState, lang: str) -> str:
    """Return the short text telling a user why this task failed (Fluent `failure-<reason>`)."""
    reason = failure_reason(state.fail_code, state.fail_message, raw_status=state.raw_status)
    return reason_text(reason, lang)


def reason_text(reason: FailureReason, lang: str | None) -> str:
    """Return a reason's user-safe text in a language (services/telegram/locales failures.ftl)."""
    return texts.get(lang, f"failure-{reason}")
