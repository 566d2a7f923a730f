"""The upload host: stream (multipart), base64 and URL uploads with Kie's upload envelope.

A file is stored at `uploadPath/fileName` of the account (a repeat upload overwrites; no
`fileName` gives a random one) and served at `downloadUrl` until `upload_ttl_s` passes.
Answers are `{success, code, msg, data{fileName, filePath, downloadUrl, fileSize, mimeType,
uploadedAt}}`; errors `{success: false, code, msg}`.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from sandbox.common.media import sniff_mime
from sandbox.kie.api import apply_rule, read_object
from sandbox.kie.envelope import (
    MSG_UPLOAD_UNAUTHORIZED,
    KieError,
    api_response,
    upload_body,
    upload_error_body,
)
from sandbox.kie.files import UPLOAD_FOLDER, StoredFile
from sandbox.kie.requestlog import ENTRY_KEY

if TYPE_CHECKING:
    from sandbox.kie.accounts import Account
    from sandbox.kie.server import KieSandbox

STREAM_PATH: Final[str] = "/api/file-stream-upload"
BASE64_PATH: Final[str] = "/api/file-base64-upload"
URL_PATH: Final[str] = "/api/file-url-upload"
DEFAULT_MIME: Final[str] = "application/octet-stream"
MAX_NAME_CHARS: Final[int] = 255


class Upload(NamedTuple):
    """What an upload request carries."""

    path: str
    name: str | None
    data: bytes


Reader = Callable[[web.Request], Awaitable[Upload]]


def clean_upload_path(value: Any) -> str:
    """Check `uploadPath`: required, no leading/trailing '/', no '..' segments."""
    if not isinstance(value, str) or not value.strip():
        raise KieError(400, "Missing required parameter: uploadPath")
    if value.startswith("/") or value.endswith("/") or ".." in value.split("/"):
        raise KieError(400, "Invalid uploadPath: no leading or trailing '/', no '..'")
    return value


def clean_file_name(value: Any) -> str | None:
    """Check an optional `fileName` (a plain name)."""
    if value is None or value == "":
        return None
    bad_name = "/" in value or value in (".", "..") if isinstance(value, str) else True
    if bad_name or len(value) > MAX_NAME_CHARS:
        raise KieError(400, "Invalid fileName")
    return value


def mime_of(data: bytes, name: str | None) -> str:
    """Detect the MIME type from the bytes, else from the name."""
    sniffed = sniff_mime(data)
    if sniffed is not None:
        return sniffed
    guessed = mimetypes.guess_type(name or "", strict=False)[0]
    return guessed or DEFAULT_MIME


class Uploads:
    """Serve the three upload endpoints of one sandbox."""

    def __init__(self, sandbox: KieSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox
        self.count = 0

    def routes(self) -> list[web.RouteDef]:
        """Return the upload routes."""
        return [
            web.post(STREAM_PATH, self._endpoint(self._stream)),
            web.post(BASE64_PATH, self._endpoint(self._base64)),
            web.post(URL_PATH, self._endpoint(self._url)),
        ]

    def _endpoint(self, read: Reader) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a body reader into an upload handler with auth, faults and the envelope."""

        async def handler(request: web.Request) -> web.Response:
            sandbox = self._sandbox
            try:
                try:
                    account = sandbox.accounts.authenticate(request)
                except KieError as exc:
                    raise KieError(401, MSG_UPLOAD_UNAUTHORIZED) from exc
                await apply_rule(sandbox.faults.request("upload"))
                body = upload_body(self._store(account, await read(request)))
            except KieError as exc:
                body = upload_error_body(exc)
            sandbox.count_answer(request, body["code"])
            return api_response(body, http_status_errors=sandbox.config.http_status_errors)

        return handler

    def _store(self, account: Account, upload: Upload) -> dict[str, Any]:
        """Store the bytes and return the upload `data` object."""
        sandbox = self._sandbox
        path, name, data = upload
        mime = mime_of(data, name)
        if name is None:
            extension = mimetypes.guess_extension(mime, strict=False) or ".bin"
            name = f"{secrets.token_hex(8)}{extension}"
        now_ms = int(time.time() * 1000)
        file = StoredFile(data, mime, name, time.monotonic() + sandbox.config.upload_ttl_s)
        url = sandbox.files.put(f"{UPLOAD_FOLDER}/{account.folder}/{path}/{name}", file)
        self.count += 1
        sandbox.notify()
        uploaded_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000))
        return {
            "fileName": name,
            "filePath": f"{path}/{name}",
            "downloadUrl": url,
            "fileSize": len(data),
            "mimeType": mime,
            "uploadedAt": f"{uploaded_at}.{now_ms % 1000:03d}Z",
        }

    async def _stream(self, request: web.Request) -> Upload:
        """Read `file`, `uploadPath` and `fileName` from a multipart body."""
        if not request.content_type.startswith("multipart/"):
            raise KieError(400, "The request must be multipart/form-data")
        fields: dict[str, str] = {}
        data: bytes | None = None
        part_name: str | None = None
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "file":
                data = await part.read()
                part_name = part.filename
            elif part.name:
                fields[part.name] = await part.text()
        entry = request.get(ENTRY_KEY)
        if entry is not None:
            size = len(data or b"")
            entry["body"] = {"fields": fields, "file": {"filename": part_name, "size": size}}
        if data is None:
            raise KieError(400, "Missing required parameter: file")
        # Like Kie, only `fileName` names the file; without it the name is random.
        name = clean_file_name(fields.get("fileName"))
        return Upload(clean_upload_path(fields.get("uploadPath")), name, data)

    async def _base64(self, request: web.Request) -> Upload:
        """Decode `base64Data` (raw Base64 or a data: URL)."""
        body = await read_object(request)
        upload_path = clean_upload_path(body.get("uploadPath"))
        encoded = body.get("base64Data")
        if not isinstance(encoded, str) or not encoded:
            raise KieError(400, "Missing required parameter: base64Data")
        if encoded.startswith("data:"):
            encoded = encoded.partition(",")[2]
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KieError(400, "Base64 decoding failed: Invalid Base64 format") from exc
        return Upload(upload_path, clean_file_name(body.get("fileName")), data)

    async def _url(self, request: web.Request) -> Upload:
        """Download `fileUrl` (http/https, within `url_upload_timeout_s`)."""
        body = await read_object(request)
        upload_path = clean_upload_path(body.get("uploadPath"))
        file_url = body.get("fileUrl")
        if not isinstance(file_url, str):
            file_url = ""
        url = urlsplit(file_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise KieError(400, "Missing required parameter: fileUrl (an http(s) URL)")
        timeout = aiohttp.ClientTimeout(total=self._sandbox.config.url_upload_timeout_s)
        try:
            async with self._sandbox.http.get(file_url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise KieError(400, f"File download failed: HTTP {resp.status}")
                data = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise KieError(400, f"File download failed: {type(exc).__name__}") from exc
        name = clean_file_name(body.get("fileName")) or clean_file_name(
            unquote(url.path.rsplit("/", 1)[-1])
        )
        return Upload(upload_path, name, data)
