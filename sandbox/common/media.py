"""Small, valid media made in pure Python: PNG, JPEG, MP4 (H.264) and MP3, padded to a size.

Every file is a real, decodable container of one solid colour (images and the video frame)
or silence (audio). `target_bytes` pads the file *inside* its container (a private PNG
chunk, JPEG comment segments, an MP4 `free` box, ID3v2 padding) so size-dependent paths can
be exercised without any codec. The encoders are pure (callers cache what they reuse).

- PNG: IHDR, one zlib IDAT, optional `paDd` ancillary chunk, IEND.
- JPEG: baseline, 3 components without subsampling, quantisation 1, every 8x8 block only its
  DC coefficient (a flat colour needs nothing else), Huffman tables holding just the codes used.
- MP4: `ftyp` + `moov` (one `avc1` track) + `mdat` holding one IDR frame whose macroblocks are
  all I_PCM (raw samples: a valid H.264 stream with no transform or entropy coding).
- MP3: MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono frames with zero side info (silence).
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Final

PNG_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
PNG_PADDING_CHUNK: Final[bytes] = b"paDd"  # ancillary, private, safe to copy
PNG_CHUNK_OVERHEAD_BYTES: Final[int] = 12
JPEG_SEGMENT_MAX_BYTES: Final[int] = 65_533  # payload of one COM segment
JPEG_COMMENT_OVERHEAD_BYTES: Final[int] = 4
MP4_TIMESCALE_HZ: Final[int] = 1_000
MP4_BOX_HEADER_BYTES: Final[int] = 8
H264_MB_PX: Final[int] = 16
H264_I_PCM_MB_TYPE: Final[int] = 25
MP3_FRAME_HEADER: Final[bytes] = b"\xff\xfb\x90\xc4"  # MPEG-1 L3, 128 kbit/s, 44.1 kHz, mono
MP3_FRAME_BYTES: Final[int] = 417  # 144 * 128000 / 44100, no padding bit
MP3_FRAMES_PER_S: Final[float] = 44_100 / 1_152
ID3_HEADER_BYTES: Final[int] = 10
# Huffman table K.3 (DC luminance): code counts per length 1..16 and the categories 0..11.
DC_BITS: Final[tuple[int, ...]] = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
DC_VALUES: Final[tuple[int, ...]] = tuple(range(12))
# The only AC symbol a flat block needs is EOB (0x00), coded as the single bit "0".
AC_BITS: Final[tuple[int, ...]] = (1, *([0] * 15))
AC_VALUES: Final[tuple[int, ...]] = (0,)


class BitWriter:
    """Collect bits MSB first (for JPEG entropy data and H.264 RBSPs)."""

    def __init__(self) -> None:
        """Start empty."""
        self._value = 0
        self._length = 0

    @property
    def aligned(self) -> bool:
        """Tell whether the next bit starts a byte."""
        return self._length % 8 == 0

    def bits(self, value: int, count: int) -> None:
        """Append the low `count` bits of `value`."""
        self._value = (self._value << count) | (value & ((1 << count) - 1))
        self._length += count

    def ue(self, value: int) -> None:
        """Append an unsigned Exp-Golomb code."""
        code = value + 1
        self.bits(code, 2 * code.bit_length() - 1)

    def se(self, value: int) -> None:
        """Append a signed Exp-Golomb code."""
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self, bit: int) -> None:
        """Fill up to the next byte boundary with `bit`."""
        missing = -self._length % 8
        self.bits((1 << missing) - 1 if bit else 0, missing)

    def raw(self, data: bytes) -> None:
        """Append whole bytes (the writer must be byte aligned)."""
        self._value = (self._value << (8 * len(data))) | int.from_bytes(data, "big")
        self._length += 8 * len(data)

    def getvalue(self) -> bytes:
        """Return the bytes written (the writer must be byte aligned)."""
        return self._value.to_bytes(self._length // 8, "big")


def dimensions(ratio: str | None, long_side_px: int, *, multiple: int = 1) -> tuple[int, int]:
    """Return (width, height) for "16:9", "portrait_4_3", "landscape", ... (default square)."""
    width, height = _ratio(ratio)
    w_px: float = long_side_px
    h_px: float = long_side_px
    if width >= height:
        h_px = long_side_px * height / width
    else:
        w_px = long_side_px * width / height
    return _round_to(w_px, multiple), _round_to(h_px, multiple)


def _ratio(ratio: str | None) -> tuple[int, int]:
    """Parse an aspect-ratio spelling into (width, height) units."""
    text = (ratio or "").lower()
    named = {"portrait": (9, 16), "landscape": (16, 9), "square": (1, 1), "square_hd": (1, 1)}
    if text in named:
        return named[text]
    orientation, _, rest = text.partition("_")
    if orientation in ("portrait", "landscape") and "_" in rest:
        a, _, b = rest.partition("_")
        if a.isdigit() and b.isdigit() and int(a) and int(b):
            big, small = max(int(a), int(b)), min(int(a), int(b))
            return (small, big) if orientation == "portrait" else (big, small)
    a, sep, b = text.partition(":")
    if sep and a.isdigit() and b.isdigit() and int(a) and int(b):
        return int(a), int(b)
    return 1, 1


def _round_to(value: float, multiple: int) -> int:
    """Round a side to a positive multiple."""
    return max(multiple, round(value / multiple) * multiple)


# ------------------------------------------------------------------ PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Encode one PNG chunk with its CRC."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(
    width_px: int, height_px: int, rgb: tuple[int, int, int], target_bytes: int = 0
) -> bytes:
    """Return a valid solid-colour RGB PNG, padded to `target_bytes` when that is larger."""
    row = b"\x00" + bytes(rgb) * width_px
    header = struct.pack(">IIBBBBB", width_px, height_px, 8, 2, 0, 0, 0)
    head = PNG_SIGNATURE + _png_chunk(b"IHDR", header)
    head += _png_chunk(b"IDAT", zlib.compress(row * height_px, 6))
    tail = _png_chunk(b"IEND", b"")
    padding = target_bytes - len(head) - len(tail) - PNG_CHUNK_OVERHEAD_BYTES
    if padding >= 0:
        head += _png_chunk(PNG_PADDING_CHUNK, bytes(padding))
    return head + tail


# Injected Telegram photos repeat a few sizes and colours: keep their PNGs.
make_png = functools.lru_cache(maxsize=64)(encode_png)


# ------------------------------------------------------------------ JPEG


def _segment(marker: int, payload: bytes) -> bytes:
    """Encode one JPEG marker segment (the length counts itself)."""
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Build the canonical Huffman codes {symbol: (code, length)} of a DHT table."""
    codes: dict[int, tuple[int, int]] = {}
    code, index = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = (code, length)
            code += 1
            index += 1
        code <<= 1
    return codes


def _ycbcr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Convert RGB to JFIF YCbCr."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(min(255, max(0, round(v))) for v in (y, cb, cr))  # type: ignore[return-value]


def encode_jpeg(
    width_px: int, height_px: int, rgb: tuple[int, int, int], target_bytes: int = 0
) -> bytes:
    """Return a valid baseline solid-colour JPEG, padded with comments to `target_bytes`."""
    dc_codes = _huffman_codes(DC_BITS, DC_VALUES)
    eob_code, eob_len = _huffman_codes(AC_BITS, AC_VALUES)[0]
    writer = BitWriter()
    blocks = -(-width_px // 8) * -(-height_px // 8)
    for first in (True, *([False] * (blocks - 1))):
        for level in _ycbcr(rgb):
            # The DC of a flat block is 8 * (level - 128); later blocks repeat it (diff 0).
            diff = 8 * (level - 128) if first else 0
            size = abs(diff).bit_length()
            code, length = dc_codes[size]
            writer.bits(code, length)
            if size:
                writer.bits(diff if diff > 0 else diff + (1 << size) - 1, size)
            writer.bits(eob_code, eob_len)
    writer.align(1)
    scan = writer.getvalue().replace(b"\xff", b"\xff\x00")
    frame = struct.pack(">BHHB", 8, height_px, width_px, 3) + b"".join(
        struct.pack(">BBB", component, 0x11, 0) for component in (1, 2, 3)
    )
    head = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    body = _segment(0xDB, b"\x00" + b"\x01" * 64)
    body += _segment(0xC0, frame)
    body += _segment(0xC4, b"\x00" + bytes(DC_BITS) + bytes(DC_VALUES))
    body += _segment(0xC4, b"\x10" + bytes(AC_BITS) + bytes(AC_VALUES))
    body += _segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00") + scan + b"\xff\xd9"
    return head + _jpeg_comments(target_bytes - len(head) - len(body)) + body


def _jpeg_comments(padding: int) -> bytes:
    """Return COM segments totalling exactly `padding` bytes (as near as possible)."""
    parts: list[bytes] = []
    while padding >= JPEG_COMMENT_OVERHEAD_BYTES:
        size = min(padding - JPEG_COMMENT_OVERHEAD_BYTES, JPEG_SEGMENT_MAX_BYTES)
        remainder = padding - JPEG_COMMENT_OVERHEAD_BYTES - size
        if 0 < remainder < JPEG_COMMENT_OVERHEAD_BYTES:
            size -= JPEG_COMMENT_OVERHEAD_BYTES  # leave room for one more segment
        parts.append(_segment(0xFE, bytes(size)))
        padding -= size + JPEG_COMMENT_OVERHEAD_BYTES
    return b"".join(parts)


# ------------------------------------------------------------------ MP4 / H.264


def _nal(header: int, rbsp: bytes) -> bytes:
    """Wrap an RBSP into a NAL unit, inserting emulation prevention bytes."""
    out = bytearray([header])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _h264_frame(width_px: int, height_px: int, rgb: tuple[int, int, int]) -> tuple[bytes, ...]:
    """Return (SPS, PPS, IDR slice) NAL units of one solid-colour I_PCM frame."""
    sps = BitWriter()
    sps.raw(bytes([66, 0xC0, 30]))  # Baseline profile, constraint sets 0+1, level 3.0
    for value in (0, 0, 2, 1):  # sps id, log2_max_frame_num-4, poc type 2, max ref frames
        sps.ue(value)
    sps.bits(0, 1)  # gaps_in_frame_num_allowed
    sps.ue(width_px // H264_MB_PX - 1)
    sps.ue(height_px // H264_MB_PX - 1)
    sps.bits(0b1100, 4)  # frame_mbs_only, direct_8x8_inference, no cropping, no VUI
    sps.bits(1, 1)
    sps.align(0)
    pps = BitWriter()
    for value in (0, 0):  # pps id, sps id
        pps.ue(value)
    pps.bits(0b00, 2)  # CAVLC, no bottom-field POC
    for value in (0, 0, 0):  # one slice group, default ref idx l0 and l1
        pps.ue(value)
    pps.bits(0b000, 3)  # no weighted prediction
    for value in (0, 0, 0):  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
        pps.se(value)
    pps.bits(0b100, 3)  # deblocking control present, no constrained intra, no redundant pic cnt
    pps.bits(1, 1)
    pps.align(0)
    y, cb, cr = (max(1, level) for level in _ycbcr(rgb))
    macroblock = bytes([y]) * 256 + bytes([cb]) * 64 + bytes([cr]) * 64
    idr = BitWriter()
    for value in (0, 7, 0):  # first_mb, slice type I (all slices), pps id
        idr.ue(value)
    idr.bits(0, 4)  # frame_num
    idr.ue(0)  # idr_pic_id
    idr.bits(0b00, 2)  # no_output_of_prior_pics, long_term_reference
    idr.se(0)  # slice_qp_delta
    idr.ue(1)  # disable_deblocking_filter_idc: off
    for _ in range((width_px // H264_MB_PX) * (height_px // H264_MB_PX)):
        idr.ue(H264_I_PCM_MB_TYPE)
        idr.align(0)
        idr.raw(macroblock)
    idr.bits(1, 1)
    idr.align(0)
    return _nal(0x67, sps.getvalue()), _nal(0x68, pps.getvalue()), _nal(0x65, idr.getvalue())


def _box(kind: bytes, *parts: bytes) -> bytes:
    """Encode one ISO BMFF box."""
    payload = b"".join(parts)
    return struct.pack(">I", len(payload) + MP4_BOX_HEADER_BYTES) + kind + payload


def _full_box(kind: bytes, version_flags: int, *parts: bytes) -> bytes:
    """Encode a box with a version/flags word."""
    return _box(kind, struct.pack(">I", version_flags), *parts)


MATRIX: Final[bytes] = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def encode_mp4(
    width_px: int,
    height_px: int,
    rgb: tuple[int, int, int],
    duration_s: float = 1.0,
    target_bytes: int = 0,
) -> bytes:
    """Return a valid MP4 of one H.264 frame shown `duration_s`, padded with a `free` box."""
    width_px = _round_to(width_px, H264_MB_PX)
    height_px = _round_to(height_px, H264_MB_PX)
    sps, pps, idr = _h264_frame(width_px, height_px, rgb)
    sample = struct.pack(">I", len(idr)) + idr
    duration = max(1, round(duration_s * MP4_TIMESCALE_HZ))
    avcc = _box(
        b"avcC",
        bytes([1, 66, 0xC0, 30, 0xFF, 0xE1]),
        struct.pack(">H", len(sps)) + sps,
        b"\x01" + struct.pack(">H", len(pps)) + pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6) + struct.pack(">H", 1) + bytes(16),
        struct.pack(">HHIIIH", width_px, height_px, 0x480000, 0x480000, 0, 1),
        bytes(32) + struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")

    def moov(chunk_offset: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full_box(b"stsd", 0, struct.pack(">I", 1), avc1),
            _full_box(b"stts", 0, struct.pack(">III", 1, 1, duration)),
            _full_box(b"stss", 0, struct.pack(">II", 1, 1)),
            _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
            _full_box(b"stsz", 0, struct.pack(">III", 0, 1, len(sample))),
            _full_box(b"stco", 0, struct.pack(">II", 1, chunk_offset)),
        )
        dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1), _full_box(b"url ", 1)))
        minf = _box(b"minf", _full_box(b"vmhd", 1, bytes(8)), dinf, stbl)
        mdia = _box(
            b"mdia",
            _full_box(
                b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, MP4_TIMESCALE_HZ, duration, 0x55C4, 0)
            ),
            _full_box(b"hdlr", 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00"),
            minf,
        )
        tkhd = _full_box(
            b"tkhd",
            3,  # enabled, in movie
            struct.pack(">IIIII", 0, 0, 1, 0, duration),
            bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0),
            MATRIX,
            struct.pack(">II", width_px << 16, height_px << 16),
        )
        mvhd = _full_box(
            b"mvhd",
            0,
            struct.pack(">IIIIIH", 0, 0, MP4_TIMESCALE_HZ, duration, 0x10000, 0x100),
            bytes(10),
            MATRIX,
            bytes(24),
            struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    # moov's size does not depend on the offset value, so measure it once and then fill it in.
    offset = len(ftyp) + len(moov(0)) + MP4_BOX_HEADER_BYTES
    data = ftyp + moov(offset) + _box(b"mdat", sample)
    padding = target_bytes - len(data) - MP4_BOX_HEADER_BYTES
    if padding >= 0:
        data += _box(b"free", bytes(padding))
    return data


# ------------------------------------------------------------------ MP3


def _syncsafe(value: int) -> bytes:
    """Encode a 28-bit ID3v2 size as four 7-bit bytes."""
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def encode_mp3(duration_s: float = 2.0, target_bytes: int = 0) -> bytes:
    """Return silent MPEG-1 Layer III audio, padded with an ID3v2 tag to `target_bytes`."""
    frame = MP3_FRAME_HEADER + bytes(MP3_FRAME_BYTES - len(MP3_FRAME_HEADER))
    frames = frame * max(1, round(duration_s * MP3_FRAMES_PER_S))
    padding = target_bytes - len(frames) - ID3_HEADER_BYTES
    if padding < 0:
        return frames
    return b"ID3\x04\x00\x00" + _syncsafe(padding) + bytes(padding) + frames


# ------------------------------------------------------------------ sniffing


def sniff_mime(data: bytes) -> str | None:
    """Recognise the media types the sandboxes produce or commonly receive."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return None
