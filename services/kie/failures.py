"""User-safe failure reasons: Kie's failCode / failMsg / family error -> a short ru/en text.

Kie's own text is read only to pick the reason; users never see it (it may be English-only,
internal or echo their input). Order matters: a content-policy word wins over a code, since
Kie reports policy rejections with 400, 500 or a Suno status alike.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType

from services.catalog.loader import LocalizedText
from services.kie.state import TaskState


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

TEXTS: Mapping[FailureReason, LocalizedText] = MappingProxyType({
    FailureReason.CONTENT_POLICY: LocalizedText(
        ru="Запрос отклонён правилами модели о допустимом содержании. Измените описание "
           "или изображение.",
        en="The model's content rules refused this request. Change the prompt or the image."),
    FailureReason.BAD_INPUT_IMAGE: LocalizedText(
        ru="Модель не смогла прочитать ваш файл. Пришлите другое изображение (JPG или PNG).",
        en="The model could not read your file. Send another image (JPG or PNG)."),
    FailureReason.TIMEOUT: LocalizedText(
        ru="Генерация не уложилась во время. Попробуйте ещё раз.",
        en="The generation took too long. Please try again."),
    FailureReason.SERVICE_UNAVAILABLE: LocalizedText(
        ru="Сервис генерации сейчас недоступен. Попробуйте чуть позже.",
        en="The generation service is unavailable right now. Please try again later."),
    FailureReason.GENERIC: LocalizedText(
        ru="Генерация не удалась. Попробуйте ещё раз или измените запрос.",
        en="The generation failed. Please try again or change the request."),
})


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
    """Return the short text telling a user why this task failed."""
    reason = failure_reason(state.fail_code, state.fail_message, raw_status=state.raw_status)
    return TEXTS[reason].get(lang)
