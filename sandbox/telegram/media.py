"""Generated media for injected user uploads, cheap size sniffing for bot uploads, and the
fetch of files a bot sends by HTTP URL (Telegram downloads them itself, within its limits)."""

from __future__ import annotations

import functools
import ipaddress
import mimetypes
import struct
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from sandbox.common.media import PNG_SIGNATURE
from sandbox.common.media import make_png as make_png  # re-exported: tests and inject use it

PNG_IHDR_END_BYTES: Final[int] = 24
JPEG_MAX_SCAN_BYTES: Final[int] = 1_000_000
DEFAULT_IMAGE_SIDE_PX: Final[int] = 512
MB: Final[int] = 1024 * 1024
# Telegram's documented limits (core.telegram.org/bots/api#sending-files): by URL it fetches
# photos up to 5 MB and other files up to 20 MB; uploads may be 10 MB for photos, 50 MB else.
MAX_PHOTO_URL_BYTES: Final[int] = 5 * MB
MAX_OTHER_URL_BYTES: Final[int] = 20 * MB
MAX_PHOTO_UPLOAD_BYTES: Final[int] = 10 * MB
MAX_OTHER_UPLOAD_BYTES: Final[int] = 50 * MB
URL_FETCH_TIMEOUT_S: Final[float] = 30.0
URL_CHUNK_BYTES: Final[int] = 256 * 1024
WAV_SAMPLE_RATE_HZ: Final[int] = 8_000
PALETTE_RGB: Final[tuple[tuple[int, int, int], ...]] = (
    (231, 76, 60),
    (46, 204, 113),
    (52, 152, 219),
    (241, 196, 15),
    (155, 89, 182),
    (26, 188, 156),
    (230, 126, 34),
    (149, 165, 166),
)
MIME_BY_KIND: Final[dict[str, str]] = {
    "photo": "image/png",
    "document": "text/plain",
    "audio": "audio/wav",
    "voice": "audio/ogg",
    "video": "video/mp4",
    "animation": "video/mp4",
}
EXTENSION_BY_KIND: Final[dict[str, str]] = {
    "photo": "png",
    "document": "txt",
    "audio": "wav",
    "voice": "oga",
    "video": "mp4",
    "animation": "mp4",
}

mimetypes.init()


def palette_color(index: int) -> tuple[int, int, int]:
    """Pick a deterministic colour from a small palette."""
    return PALETTE_RGB[index % len(PALETTE_RGB)]


@functools.lru_cache(maxsize=8)
def make_wav(duration_s: int) -> bytes:
    """Return a silent 8 kHz mono 8-bit WAV file of the given duration."""
    samples = b"\x80" * (WAV_SAMPLE_RATE_HZ * max(duration_s, 1))
    fmt = struct.pack("<HHIIHH", 1, 1, WAV_SAMPLE_RATE_HZ, WAV_SAMPLE_RATE_HZ, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def make_fake_video() -> bytes:
    """Return a tiny placeholder blob labelled as MP4 (not decodable video)."""
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


def image_size(data: bytes) -> tuple[int, int] | None:
    """Read width and height from PNG or JPEG bytes, or return None when unknown."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= PNG_IHDR_END_BYTES:
        width_px, height_px = struct.unpack(">II", data[16:24])
        return int(width_px), int(height_px)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments up to the first SOF marker and return its dimensions."""
    index = 2
    limit = min(len(data), JPEG_MAX_SCAN_BYTES)
    while index + 9 < limit:
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (segment_len,) = struct.unpack(">H", data[index + 2 : index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height_px, width_px = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width_px), int(height_px)
        index += 2 + segment_len
    return None


def guess_mime(filename: str | None, kind: str) -> str:
    """Guess a MIME type from the file name, falling back to the media kind's default."""
    if filename:
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        if guessed:
            return guessed
    return MIME_BY_KIND.get(kind, "application/octet-stream")


def extension_for(filename: str | None, kind: str) -> str:
    """Return a file extension for the stored file path."""
    if filename and "." in filename:
        ext = filename.rsplit(".", 1)[1].lower()
        if ext.isalnum() and len(ext) <= 8:
            return ext
    return EXTENSION_BY_KIND.get(kind, "bin")


def url_limit_bytes(kind: str) -> int:
    """Return the largest file Telegram fetches by URL for a media kind."""
    return MAX_PHOTO_URL_BYTES if kind == "photo" else MAX_OTHER_URL_BYTES


def upload_limit_bytes(kind: str) -> int:
    """Return the largest file Telegram accepts as an upload for a media kind."""
    return MAX_PHOTO_UPLOAD_BYTES if kind == "photo" else MAX_OTHER_UPLOAD_BYTES


def is_loopback_host(host: str) -> bool:
    """Tell whether a URL host is a loopback name or address (no DNS lookups)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UrlFetchError(Exception):
    """A file given by URL could not be fetched, or is larger than Telegram takes."""


class UrlTooBig(UrlFetchError):
    """The file behind a URL is larger than Telegram's by-URL limit for its kind."""


@dataclass(frozen=True, slots=True)
class FetchedUrl:
    """What the sandbox learned by downloading a URL: size, type and picture dimensions."""

    size_bytes: int
    content_type: str | None
    dimensions: tuple[int, int] | None


async def fetch_url(url: str, *, limit_bytes: int) -> FetchedUrl:
    """Download `url` as Telegram does, counting bytes and keeping only the first chunk.

    Raises UrlTooBig past `limit_bytes` (a declared Content-Length is refused without reading
    the body) and UrlFetchError when the server fails or does not answer in time.
    """
    timeout = aiohttp.ClientTimeout(total=URL_FETCH_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as answer:
            if answer.status != 200:
                raise UrlFetchError(f"HTTP {answer.status}")
            if answer.content_length is not None and answer.content_length > limit_bytes:
                raise UrlTooBig(str(answer.content_length))
            head = b""
            size = 0
            async for chunk in answer.content.iter_chunked(URL_CHUNK_BYTES):
                head = head or chunk
                size += len(chunk)
                if size > limit_bytes:
                    raise UrlTooBig(str(size))
            return FetchedUrl(size, answer.content_type, image_size(head))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UrlFetchError(type(exc).__name__) from exc


def url_host(url: str) -> str:
    """Return the host of a URL ('' when it has none)."""
    return urlsplit(url).hostname or ""
