"""Request parameter parsing for JSON, urlencoded, multipart and query-string calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from aiohttp import BodyPartReader, MultipartReader, web

from sandbox.telegram.errors import ApiError, bad_request

TRUE_STRINGS: Final[frozenset[str]] = frozenset({"true", "1", "yes", "on"})
FALSE_STRINGS: Final[frozenset[str]] = frozenset({"false", "0", "no", "off", ""})
MAX_PART_BYTES: Final[int] = 50 * 1024 * 1024
PART_CHUNK_BYTES: Final[int] = 256 * 1024


@dataclass(slots=True)
class UploadedFile:
    """Hold one multipart file part."""

    filename: str
    content_type: str | None
    data: bytes


class Params:
    """Give typed access to method parameters, whatever encoding the client used."""

    __slots__ = ("files", "values")

    def __init__(
        self, values: dict[str, Any], files: dict[str, UploadedFile] | None = None
    ) -> None:
        """Store raw values (strings or JSON values) and uploaded files."""
        self.values = values
        self.files = files or {}

    def has(self, name: str) -> bool:
        """Tell whether a parameter was given with a non-null value."""
        return self.values.get(name) is not None or name in self.files

    def get_str(self, name: str) -> str | None:
        """Return a string parameter (numbers are converted), or None."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise bad_request(f'field "{name}" must be of type String')

    def get_int(self, name: str) -> int | None:
        """Return an integer parameter, or None."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            try:
                return int(text)
            except ValueError:
                try:
                    as_float = float(text)
                except ValueError:
                    as_float = float("nan")
                if as_float.is_integer():
                    return int(as_float)
        raise bad_request(f'field "{name}" must be of type Integer')

    def get_float(self, name: str) -> float | None:
        """Return a numeric parameter as float, or None."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError as exc:
                raise bad_request(f'field "{name}" must be of type Float') from exc
        raise bad_request(f'field "{name}" must be of type Float')

    def get_bool(self, name: str, default: bool = False) -> bool:
        """Return a boolean parameter (`true`/`false`/`1`/`0` strings accepted)."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in TRUE_STRINGS:
                return True
            if lowered in FALSE_STRINGS:
                return False
        raise bad_request(f'field "{name}" must be of type Boolean')

    def get_json(self, name: str, what: str | None = None) -> Any:
        """Return a JSON-object parameter, decoding it when it arrived as a string."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise bad_request(f"can't parse {what or name} JSON object") from exc
        return value

    def chat_id(self) -> int | None:
        """Return `chat_id` as an int; `@username` strings cannot be resolved (chat not found)."""
        value = self.values.get("chat_id")
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.startswith("@"):
            raise bad_request("chat not found")
        try:
            return self.get_int("chat_id")
        except ApiError as exc:
            raise bad_request("chat not found") from exc

    def peek_chat_id(self) -> int | None:
        """Return `chat_id` when it parses as an int, else None (never raises)."""
        value = self.values.get("chat_id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                return None
        return None


async def read_multipart(reader: MultipartReader) -> Params:
    """Read every part of a multipart body into values and files."""
    values: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise bad_request("nested multipart bodies are not supported")
        name = part.name
        if not name:
            await part.release()
            continue
        data = await _read_part(part)
        if part.filename is not None:
            files[name] = UploadedFile(
                filename=part.filename,
                content_type=part.headers.get("Content-Type"),
                data=data,
            )
        else:
            charset = part.get_charset(default="utf-8")
            try:
                values[name] = data.decode(charset)
            except (UnicodeDecodeError, LookupError) as exc:
                raise bad_request(f'field "{name}" is not valid text') from exc
    return Params(values, files)


async def _read_part(part: BodyPartReader) -> bytes:
    """Read one multipart part into memory, refusing parts above the upload limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await part.read_chunk(PART_CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_PART_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        chunks.append(chunk)
    return bytes(part.decode(b"".join(chunks)))


async def parse_request(request: web.Request) -> Params:
    """Parse a Bot API request: query string merged with a JSON, form or multipart body."""
    values: dict[str, Any] = dict(request.query) if request.query_string else {}
    if request.method != "POST" or not request.body_exists:
        return Params(values)
    content_type = request.content_type
    if content_type == "multipart/form-data":
        parsed = await read_multipart(await request.multipart())
        values.update(parsed.values)
        return Params(values, parsed.files)
    body = await request.read()
    if not body:
        return Params(values)
    if content_type == "application/json":
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request("can't parse JSON object") from exc
        if not isinstance(decoded, dict):
            raise bad_request("parameters must be a JSON object")
        values.update(decoded)
        return Params(values)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise bad_request("request body is not valid UTF-8") from exc
    values.update(parse_qsl(text, keep_blank_values=True))
    return Params(values)
