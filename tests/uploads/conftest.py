"""Image files for the upload tests, made with Pillow (or by hand where Pillow would refuse)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image


def image_bytes(fmt: str, width: int = 40, height: int = 30, *, noisy: bool = False) -> bytes:
    """An image in ``fmt`` (PNG, JPEG, WEBP, GIF); ``noisy`` makes it incompressible."""
    if noisy:
        import os

        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 40, 90))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A valid 1-bit square PNG of black pixels, ``side`` pixels a side: a few KB on disk,
    hundreds of MB once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    body = bytearray()
    for _ in range(side):
        body += compressor.compress(row)
    body += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", bytes(body))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    return image_bytes


@pytest.fixture
def make_bomb() -> Callable[[int], bytes]:
    return png_bomb
