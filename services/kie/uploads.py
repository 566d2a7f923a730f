"""Uploads to Kie's file host, which answers with a `downloadUrl` to pass as a model input.

Three ways in (kie_api.md §5): multipart stream upload for files (any size, streamed),
base64 JSON for small ones (a third bigger on the wire), and URL upload when the user typed
a public https URL (Kie fetches it within 30 s). A user's Telegram file goes through
`transfer_telegram_file`: getFile, refuse above 20 MB (the Bot API's download limit) before
downloading, then stream Telegram's bytes straight into a stream upload. The Telegram file
URL carries the bot token: it is used for the one GET and never logged, sent to Kie (Kie gets
the bytes and a file name) or put in an exception.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import mimetypes
import posixpath
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from services.kie.client import KieClient
from services.kie.errors import FileTooLarge, KieError, KieFinal, TelegramFileUnavailable

logger = logging.getLogger(__name__)

STREAM_UPLOAD_PATH = "/api/file-stream-upload"
BASE64_UPLOAD_PATH = "/api/file-base64-upload"
URL_UPLOAD_PATH = "/api/file-url-upload"
DEFAULT_UPLOAD_PATH = "kiebot/inputs"
# Below this, base64 (one JSON request) is simplest; above, its +33% starts to count.
BASE64_MAX_BYTES = 1024 * 1024
# The Bot API serves files up to 20 MB to bots.
TELEGRAM_MAX_BYTES = 20 * 1024 * 1024
# A 20 MB file crosses two networks: allow more than one API call's timeout.
UPLOAD_TIMEOUT_S = 300.0
CHUNK_BYTES = 64 * 1024
TELEGRAM_FILE_LABEL = "telegram file"


class BadUploadUrl(ValueError):
    """A URL given for URL upload is not a public https URL."""


async def upload_stream(client: KieClient, content: bytes | AsyncIterable[bytes], *,
                        file_name: str, upload_path: str = DEFAULT_UPLOAD_PATH,
                        mime_type: str | None = None) -> str:
    """Stream-upload content (bytes are retried; a one-shot stream is not); return its URL."""
    kind = mime_type or _guess_mime(file_name)

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("file", content, filename=file_name, content_type=kind)
        data.add_field("uploadPath", upload_path)
        data.add_field("fileName", file_name)
        return data

    answer = await client.request(
        "POST", STREAM_UPLOAD_PATH, upload=True, form=form, client_timeout=_upload_timeout(client),
        attempts=None if isinstance(content, bytes) else 1)
    return _download_url(answer, STREAM_UPLOAD_PATH)


async def upload_base64(client: KieClient, content: bytes, *, file_name: str,
                        upload_path: str = DEFAULT_UPLOAD_PATH) -> str:
    """Upload small content as base64 JSON; return its download URL."""
    body = {"base64Data": base64.b64encode(content).decode(), "uploadPath": upload_path,
            "fileName": file_name}
    answer = await client.request("POST", BASE64_UPLOAD_PATH, upload=True, json=body)
    return _download_url(answer, BASE64_UPLOAD_PATH)


async def upload_bytes(client: KieClient, content: bytes, *, file_name: str,
                       upload_path: str = DEFAULT_UPLOAD_PATH) -> str:
    """Upload content by base64 when small, else by stream; return its download URL."""
    if len(content) <= BASE64_MAX_BYTES:
        return await upload_base64(client, content, file_name=file_name, upload_path=upload_path)
    return await upload_stream(client, content, file_name=file_name, upload_path=upload_path)


async def upload_from_url(client: KieClient, url: str, *,
                          upload_path: str = DEFAULT_UPLOAD_PATH,
                          file_name: str | None = None) -> str:
    """Have Kie fetch a public https URL; return the download URL of its copy."""
    _check_public_https(url)
    body: dict[str, Any] = {"fileUrl": url, "uploadPath": upload_path}
    if file_name:
        body["fileName"] = file_name
    answer = await client.request("POST", URL_UPLOAD_PATH, upload=True, json=body)
    return _download_url(answer, URL_UPLOAD_PATH)


async def transfer_telegram_file(bot: Bot, file_id: str, *, client: KieClient,
                                 max_bytes: int = TELEGRAM_MAX_BYTES,
                                 upload_path: str = DEFAULT_UPLOAD_PATH) -> str:
    """Copy a user's Telegram file to Kie's host without buffering it; return Kie's URL.

    Raises FileTooLarge above max_bytes (checked before downloading when Telegram tells the
    size, else while streaming), TelegramFileUnavailable when Telegram does not serve it,
    KieError when the upload fails. One attempt: the caller retries a KieRetryable.
    """
    try:
        file = await bot.get_file(file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            raise FileTooLarge(413, "file is larger than Telegram lets bots download",
                               path=TELEGRAM_FILE_LABEL) from None
        raise
    if file.file_size is not None and file.file_size > max_bytes:
        raise FileTooLarge(413, f"file is {file.file_size} bytes, at most {max_bytes}",
                           path=TELEGRAM_FILE_LABEL)
    if not file.file_path:
        raise TelegramFileUnavailable(0, "Telegram gave no file path", path=TELEGRAM_FILE_LABEL)
    file_name = posixpath.basename(file.file_path) or "file"
    secret_url = bot.session.api.file_url(bot.token, file.file_path)
    failed: list[str] = []  # why the download stopped, when it did

    async def chunks(answer: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                seen += len(chunk)
                if seen > max_bytes:
                    failed.append("too_large")
                    raise ValueError("file too large")
                yield chunk
        except (aiohttp.ClientError, TimeoutError):
            failed.append("download")
            raise ValueError("download broke") from None

    try:
        async with client.session.get(secret_url, timeout=_upload_timeout(client),
                                      allow_redirects=False) as answer:
            if answer.status != 200:
                raise TelegramFileUnavailable(answer.status, "Telegram refused the download",
                                              path=TELEGRAM_FILE_LABEL)
            url = await upload_stream(client, chunks(answer), file_name=file_name,
                                      upload_path=upload_path)
    except (aiohttp.ClientError, TimeoutError, ValueError, KieError) as exc:
        if "too_large" in failed:
            raise FileTooLarge(413, f"file is larger than {max_bytes} bytes",
                               path=TELEGRAM_FILE_LABEL) from None
        if failed or not isinstance(exc, KieError):
            raise TelegramFileUnavailable(0, "Telegram file download failed",
                                          path=TELEGRAM_FILE_LABEL) from None
        raise
    logger.info("telegram_file_uploaded", extra={"file_name": file_name,
                                                 "file_size": file.file_size})
    return url


def _download_url(answer: Any, path: str) -> str:
    url = answer.get("downloadUrl") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise KieFinal(200, "upload answer without a downloadUrl", path=path)
    return url


def _upload_timeout(client: KieClient) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=max(UPLOAD_TIMEOUT_S, client.timeout.total or 0),
                                 connect=client.timeout.connect)


def _guess_mime(file_name: str) -> str:
    return mimetypes.guess_type(file_name, strict=False)[0] or "application/octet-stream"


def _check_public_https(url: str) -> None:
    """Raise BadUploadUrl unless url is https to a public host name or address."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        raise BadUploadUrl("the link must start with https:// and name a host")
    if parts.username or parts.password:
        raise BadUploadUrl("the link must not carry a user name or password")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise BadUploadUrl("the link must point to a public site")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise BadUploadUrl("the link must point to a public address")
