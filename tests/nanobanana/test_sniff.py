"""Image type and size read from the bytes, checked against images Pillow writes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from fakes.gemini import JPEG_16x8, make_png
from nproxy_provider_nanobanana.sniff import SniffedImage, sniff_image


def encode(fmt: str, size: tuple[int, int] = (37, 21), mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 0).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_png(5, 3), SniffedImage("image/png", 5, 3)),
        (encode("PNG"), SniffedImage("image/png", 37, 21)),
        (JPEG_16x8, SniffedImage("image/jpeg", 16, 8)),
        (encode("JPEG"), SniffedImage("image/jpeg", 37, 21)),
        (encode("JPEG", progressive=True), SniffedImage("image/jpeg", 37, 21)),
        (encode("JPEG", exif=b"Exif\x00\x00" + bytes(200)), SniffedImage("image/jpeg", 37, 21)),
        (encode("WEBP"), SniffedImage("image/webp", 37, 21)),
        (encode("WEBP", lossless=True), SniffedImage("image/webp", 37, 21)),
        (encode("WEBP", mode="RGBA"), SniffedImage("image/webp", 37, 21)),  # VP8X
        (encode("GIF"), SniffedImage("image/gif", 37, 21)),
    ],
)
def test_known_images(data: bytes, expected: SniffedImage) -> None:
    assert sniff_image(data) == expected


@pytest.mark.parametrize("data", [b"", b"hello", b"<html>", b"RIFF\x00\x00\x00\x00WAVE"])
def test_unknown_bytes(data: bytes) -> None:
    assert sniff_image(data) is None


def test_truncated_headers_give_type_without_size() -> None:
    assert sniff_image(b"\x89PNG\r\n\x1a\n") == SniffedImage("image/png")
    assert sniff_image(b"\xff\xd8\xff\xe0\x00\x10JFIF") == SniffedImage("image/jpeg")
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == SniffedImage("image/webp")
