"""Recognise returned image bytes by their magic numbers, and read their size from the header.

Gemini's declared ``mimeType`` is sometimes wrong (``image/png`` on JPEG bytes), so the type we
store and serve comes from the bytes. Reading the header is a few slices, so no image library
is needed; an unreadable size is ``None`` rather than an error, because the image itself is
still good.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["SniffedImage", "sniff_image"]

_PNG = b"\x89PNG\r\n\x1a\n"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}


@dataclass(frozen=True)
class SniffedImage:
    mime: str
    width: int | None = None
    height: int | None = None


def sniff_image(data: bytes) -> SniffedImage | None:
    """The image type of ``data`` (PNG, JPEG, WebP or GIF) with its size, or None if unknown."""
    if data.startswith(_PNG):
        return SniffedImage("image/png", *_png_size(data))
    if data.startswith(b"\xff\xd8\xff"):
        return SniffedImage("image/jpeg", *_jpeg_size(data))
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return SniffedImage("image/webp", *_webp_size(data))
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return SniffedImage("image/gif", *_gif_size(data))
    return None


_Size = tuple[int | None, int | None]
_UNKNOWN: _Size = (None, None)


def _png_size(data: bytes) -> _Size:
    # The IHDR chunk is always first: length(4) type(4) width(4) height(4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        return _UNKNOWN
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _gif_size(data: bytes) -> _Size:
    if len(data) < 10:
        return _UNKNOWN
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def _jpeg_size(data: bytes) -> _Size:
    # Walk the marker segments until a start-of-frame; entropy-coded data only follows SOS,
    # which comes after the frame header, so the walk never has to parse scan data.
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return _UNKNOWN
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return _UNKNOWN
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame: malformed
            return _UNKNOWN
        pos += 2 + length
    return _UNKNOWN


def _webp_size(data: bytes) -> _Size:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return _UNKNOWN
