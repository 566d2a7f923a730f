"""Result media for finished tasks: real PNG/JPEG/MP4/MP3 bytes of the requested shape.

Bytes are cached by (kind, dimensions, colour, size), so thousands of tasks share a handful
of buffers; a padded (large) result always uses the first palette colour to keep the cache
small.
"""

from __future__ import annotations

import functools
from typing import Final

from sandbox.common.media import dimensions, encode_jpeg, encode_mp3, encode_mp4, encode_png
from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.tasks import MediaKind

LARGE_RESULT_BYTES: Final[int] = 1024 * 1024
PALETTE_RGB: Final[tuple[tuple[int, int, int], ...]] = (
    (52, 152, 219),
    (231, 76, 60),
    (46, 204, 113),
    (241, 196, 15),
    (155, 89, 182),
    (230, 126, 34),
)
EXTENSIONS: Final[dict[str, str]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "video/mp4": "mp4",
    "audio/mpeg": "mp3",
}


@functools.lru_cache(maxsize=32)
def _encode(
    kind: MediaKind,
    size_px: tuple[int, int],
    rgb: tuple[int, int, int],
    duration_s: float,
    image_format: str,
    target_bytes: int,
) -> tuple[bytes, str]:
    """Encode one result file and return (bytes, MIME type)."""
    width_px, height_px = size_px
    if kind is MediaKind.VIDEO:
        return encode_mp4(width_px, height_px, rgb, duration_s, target_bytes), "video/mp4"
    if kind is MediaKind.AUDIO:
        return encode_mp3(duration_s, target_bytes), "audio/mpeg"
    if image_format == "jpeg":
        return encode_jpeg(width_px, height_px, rgb, target_bytes), "image/jpeg"
    return encode_png(width_px, height_px, rgb, target_bytes), "image/png"


def result_media(
    config: KieSandboxConfig,
    kind: MediaKind,
    *,
    ratio: str | None,
    image_format: str,
    index: int,
    target_bytes: int | None = None,
) -> tuple[bytes, str, str]:
    """Return (bytes, MIME type, file extension) of one result."""
    if kind is MediaKind.VIDEO:
        size_px = dimensions(ratio or "16:9", config.video_long_side_px, multiple=16)
        duration_s, default_bytes = config.video_duration_s, config.video_bytes
    elif kind is MediaKind.AUDIO:
        size_px, duration_s, default_bytes = (0, 0), config.audio_duration_s, config.audio_bytes
    else:
        size_px = dimensions(ratio, config.image_long_side_px)
        duration_s, default_bytes = 0.0, config.image_bytes
    target = default_bytes if target_bytes is None else target_bytes
    rgb = PALETTE_RGB[0 if target >= LARGE_RESULT_BYTES else index % len(PALETTE_RGB)]
    data, mime = _encode(kind, size_px, rgb, duration_s, image_format, target)
    return data, mime, EXTENSIONS[mime]


def cover_image(config: KieSandboxConfig, index: int) -> tuple[bytes, str, str]:
    """Return a small square JPEG (Suno covers, Runway thumbnails)."""
    return result_media(config, MediaKind.IMAGE, ratio="1:1", image_format="jpeg", index=index)
