"""Result files: what a job produced, how big it is, and a streamed upload of its bytes.

Sizes are learned without holding a file in memory: a HEAD request, else a streamed GET that
counts bytes and stops one chunk past the largest size Telegram takes (so a 60 MB video costs
50 MB of reading at most, never 60 MB of memory). A file to upload streams chunk by chunk
into a temporary file under a size cap, and from there into the Bot API request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import aiofiles
import aiofiles.tempfile
import aiohttp
from aiogram.types import FSInputFile

logger = logging.getLogger(__name__)

MB: Final[int] = 1024 * 1024
# Telegram takes nothing larger than this from a bot (uploads); beyond it a result is a link,
# so probing never needs to count further.
MAX_TELEGRAM_BYTES: Final[int] = 50 * MB
PROBE_TIMEOUT_S: Final[float] = 15.0
# A 50 MB upload over a slow CDN link still finishes well inside this.
DOWNLOAD_TIMEOUT_S: Final[float] = 180.0
# A stalled CDN is noticed long before the total timeout.
DOWNLOAD_READ_TIMEOUT_S: Final[float] = 30.0
CHUNK_BYTES: Final[int] = 256 * 1024


class ResultKind(StrEnum):
    """What a result file is, as far as sending it goes."""

    IMAGE = "image"  # sent as a photo (or a document when too big for one)
    VIDEO = "video"  # sent with sendVideo
    AUDIO = "audio"  # sent with sendAudio
    OTHER = "other"  # anything else: sent as a document


class Media(StrEnum):
    """The Telegram media type a result was sent as; a file_id is only valid for its type."""

    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


class ResultFetchError(Exception):
    """A result file could not be read from its URL (gone, refused, or too slow)."""


class ResultTooBig(ResultFetchError):
    """A result file turned out larger than the limit it was being streamed under."""


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One file a job produced: its URL (Kie's, expiring) or an earlier Telegram file_id.

    `size_bytes` is filled when the producer knows it; `file_id` with `media` re-sends a file
    Telegram already has, after Kie's URL expired.
    """

    kind: ResultKind
    url: str | None = None
    size_bytes: int | None = None
    file_id: str | None = None
    media: Media | None = None

    def __post_init__(self) -> None:
        """Refuse a file that names neither a URL nor a cached Telegram file."""
        if self.url is None and (self.file_id is None or self.media is None):
            raise ValueError("a result file needs a url, or a file_id with its media type")


def file_name(url: str, index: int) -> str:
    """Return the upload's file name: the URL's last path segment, else result-<n>."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name if name and len(name) <= 128 else f"result-{index + 1}"


async def probe_size(http: aiohttp.ClientSession, url: str) -> int:
    """Return the size of the file at `url` in bytes, at most MAX_TELEGRAM_BYTES + 1.

    HEAD first; when it gives no Content-Length (or is refused), a streamed GET counts the
    bytes and stops past the limit. Raises ResultFetchError when the file cannot be read.
    """
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    try:
        async with http.head(url, timeout=timeout, allow_redirects=True) as answer:
            if answer.status == 200 and answer.content_length is not None:
                return min(answer.content_length, MAX_TELEGRAM_BYTES + 1)
            if answer.status in (404, 410):
                raise ResultFetchError(f"HTTP {answer.status}")
        size = 0
        read_timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S,
                                             sock_read=DOWNLOAD_READ_TIMEOUT_S)
        async with http.get(url, timeout=read_timeout) as answer:
            if answer.status != 200:
                raise ResultFetchError(f"HTTP {answer.status}")
            async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_TELEGRAM_BYTES:
                    break
        return size
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ResultFetchError(type(exc).__name__) from exc


@contextlib.asynccontextmanager
async def downloaded(http: aiohttp.ClientSession, url: str, *, filename: str,
                     limit_bytes: int) -> AsyncIterator[FSInputFile]:
    """Stream `url` into a temporary file (at most limit_bytes) and yield it as an upload.

    The file lives on disk, not in memory, and is removed on exit; a retried Bot API call
    (429, outage) re-reads it from disk instead of downloading it again. Raises ResultTooBig
    past the limit and ResultFetchError when the URL cannot be read.
    """
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S, sock_read=DOWNLOAD_READ_TIMEOUT_S)
    async with aiofiles.tempfile.TemporaryDirectory(prefix="kiebot-result-") as directory:
        path = Path(directory) / "result"
        try:
            async with http.get(url, timeout=timeout) as answer, aiofiles.open(path, "wb") as out:
                if answer.status != 200:
                    raise ResultFetchError(f"HTTP {answer.status}")
                size = 0
                async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit_bytes:
                        raise ResultTooBig(str(size))
                    await out.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ResultFetchError(type(exc).__name__) from exc
        yield FSInputFile(path, filename=filename, chunk_size=CHUNK_BYTES)
