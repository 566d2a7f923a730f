"""Turn what a user sends (text, an upload, a button) into a value of one catalog input.

Pure functions of the catalog's `InputField`: no I/O, no aiogram types. A value that breaks a
rule comes back as a `Refusal` naming the rule (an i18n message id and its arguments), so the
chat can re-ask in the user's language and change nothing.

Media values are references, never bytes or Telegram file URLs: `tg:<file_id>` for an upload
(the leader's submitter transfers the file to Kie) or the https URL the user typed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from services.catalog import TELEGRAM_FILE_REF_PREFIX, URL_TYPES, InputField

# The Bot API lets a bot download files up to 20 MB (getFile); larger ones cannot reach Kie.
TELEGRAM_GETFILE_MAX_BYTES = 20 * 1024 * 1024
BYTES_PER_MB = 1024 * 1024
# A Telegram album holds at most 10 files; arrays without a catalog max_items stop there.
ARRAY_ITEMS_CAP = 10

# Which upload kinds each media input accepts, and the MIME family a document must have.
MEDIA_FAMILY: Mapping[str, str] = MappingProxyType(
    {"image_url": "image", "video_url": "video", "audio_url": "audio"})
UPLOAD_KINDS: Mapping[str, frozenset[str]] = MappingProxyType({
    "image_url": frozenset({"photo"}),
    "video_url": frozenset({"video", "animation"}),
    "audio_url": frozenset({"audio", "voice"}),
})
TRUE_WORDS = frozenset({"yes", "y", "on", "true", "1", "да", "вкл"})
FALSE_WORDS = frozenset({"no", "n", "off", "false", "0", "нет", "выкл"})
_INT_RE = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the user sent, as the update describes it (never downloaded here)."""

    kind: str  # photo, document, video, animation, audio or voice
    file_id: str
    file_size: int | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A value broke a rule: `rule` is the i18n message id, `args` its arguments."""

    rule: str
    args: Mapping[str, object] = field(default_factory=dict)


def media_type(f: InputField) -> str | None:
    """Return the media input type of a field or of its array items, or None."""
    kind = f.item_type if f.type == "array" else f.type
    return kind if kind in URL_TYPES else None


def is_media(f: InputField) -> bool:
    """Tell whether the field takes files (directly or as a list)."""
    return media_type(f) is not None


def item_limit(f: InputField) -> int:
    """Return how many items an array field collects at most."""
    return f.max_items if f.max_items is not None else ARRAY_ITEMS_CAP


def parse_text(f: InputField, text: str) -> object | Refusal:
    """Return the value typed text gives field f (an array: one item), or a Refusal."""
    kind = (f.item_type or "string") if f.type == "array" else f.type
    if kind == "string":
        return _string(f, text)
    cleaned = text.strip()
    if kind == "enum":
        for value in f.values:
            if value.casefold() == cleaned.casefold():
                return value
        return Refusal("rule-enum", {"field": f.name, "values": list(f.values)})
    if kind == "bool":
        word = cleaned.casefold()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        return Refusal("rule-bool", {"field": f.name})
    if kind == "int":
        if not _INT_RE.fullmatch(cleaned):
            return Refusal("rule-int", {"field": f.name})
        return _in_range(f, int(cleaned))
    if kind == "float":
        try:
            number = float(cleaned.replace(",", "."))
        except ValueError:
            return Refusal("rule-number", {"field": f.name})
        if not math.isfinite(number):
            return Refusal("rule-number", {"field": f.name})
        return _in_range(f, number)
    if kind in URL_TYPES:
        return _https_url(f, kind, cleaned)
    return Refusal("rule-unsupported", {"field": f.name})


def parse_upload(f: InputField, upload: Upload) -> str | Refusal:
    """Return the `tg:<file_id>` reference of an upload for media field f, or a Refusal."""
    kind = media_type(f)
    if kind is None:
        return Refusal("rule-text-needed", {"field": f.name})
    family = MEDIA_FAMILY[kind]
    fits = upload.kind in UPLOAD_KINDS[kind] or (
        upload.kind == "document" and (upload.mime_type or "").startswith(family + "/"))
    if not fits:
        return Refusal("rule-media", {"field": f.name, "kind": family})
    if upload.file_size is not None and upload.file_size > TELEGRAM_GETFILE_MAX_BYTES:
        return Refusal("rule-too-big", {
            "field": f.name, "size": math.ceil(upload.file_size / BYTES_PER_MB),
            "max": TELEGRAM_GETFILE_MAX_BYTES // BYTES_PER_MB})
    return TELEGRAM_FILE_REF_PREFIX + upload.file_id


def parse_choice(f: InputField, index: int) -> object | Refusal:
    """Return the enum value at index (a pressed button), or a Refusal for a stale button."""
    if f.type != "enum" or not 0 <= index < len(f.values):
        return Refusal("rule-enum", {"field": f.name, "values": list(f.values)})
    return f.values[index]


def _string(f: InputField, text: str) -> str | Refusal:
    if not text.strip():
        return Refusal("rule-empty", {"field": f.name})
    if f.max_length is not None and len(text) > f.max_length:
        return Refusal("rule-max-length", {"field": f.name, "max": f.max_length,
                                           "length": len(text)})
    if f.min_length is not None and len(text) < f.min_length:
        return Refusal("rule-min-length", {"field": f.name, "min": f.min_length})
    return text


def _in_range(f: InputField, number: int | float) -> int | float | Refusal:
    low = f.min is not None and number < f.min
    high = f.max is not None and number > f.max
    if not (low or high):
        return number
    if f.min is not None and f.max is not None:
        return Refusal("rule-range", {"field": f.name, "min": f.min, "max": f.max})
    if low:
        return Refusal("rule-min", {"field": f.name, "min": f.min})
    return Refusal("rule-max", {"field": f.name, "max": f.max})


def _https_url(f: InputField, kind: str, text: str) -> str | Refusal:
    url = urlsplit(text) if text and not any(c.isspace() for c in text) else None
    if url is None or url.scheme != "https" or not url.hostname:
        return Refusal("rule-media", {"field": f.name, "kind": MEDIA_FAMILY[kind]})
    return text
