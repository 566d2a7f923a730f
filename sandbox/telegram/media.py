"""Generated media for injected user uploads and cheap size sniffing for bot uploads."""

from __future__ import annotations

import functools
import mimetypes
import struct
from typing import Final

from sandbox.common.media import PNG_SIGNATURE
from sandbox.common.media import make_png as make_png  # re-exported: tests and inject use it

PNG_IHDR_END_BYTES: Final[int] = 24
JPEG_MAX_SCAN_BYTES: Final[int] = 1_000_000
DEFAULT_IMAGE_SIDE_PX: Final[int] = 512
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
