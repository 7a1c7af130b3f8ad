"""Image type and size read from the bytes by ``identify_image`` (what the plugin trusts instead
of Gemini's declared mimeType), checked against images Pillow writes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from fakes.gemini import JPEG_16x8, make_png
from nproxy_core.plugins import IdentifiedImage, identify_image


def encode(fmt: str, size: tuple[int, int] = (37, 21), mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 0).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_png(5, 3), IdentifiedImage("image/png", 5, 3)),
        (encode("PNG"), IdentifiedImage("image/png", 37, 21)),
        (JPEG_16x8, IdentifiedImage("image/jpeg", 16, 8)),
        (encode("JPEG"), IdentifiedImage("image/jpeg", 37, 21)),
        (encode("JPEG", progressive=True), IdentifiedImage("image/jpeg", 37, 21)),
        (encode("JPEG", exif=b"Exif\x00\x00" + bytes(200)), IdentifiedImage("image/jpeg", 37, 21)),
        (encode("WEBP"), IdentifiedImage("image/webp", 37, 21)),
        (encode("WEBP", lossless=True), IdentifiedImage("image/webp", 37, 21)),
        (encode("WEBP", mode="RGBA"), IdentifiedImage("image/webp", 37, 21)),  # VP8X
        (encode("GIF"), IdentifiedImage("image/gif", 37, 21)),
    ],
)
def test_known_images(data: bytes, expected: IdentifiedImage) -> None:
    assert identify_image(data) == expected


@pytest.mark.parametrize("data", [b"", b"hello", b"<html>", b"RIFF\x00\x00\x00\x00WAVE"])
def test_unknown_bytes(data: bytes) -> None:
    assert identify_image(data) is None


def test_truncated_headers_give_type_without_size() -> None:
    assert identify_image(b"\x89PNG\r\n\x1a\n") == IdentifiedImage("image/png")
    assert identify_image(b"\xff\xd8\xff\xe0\x00\x10JFIF") == IdentifiedImage("image/jpeg")
    assert identify_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == IdentifiedImage("image/webp")


def test_the_size_comes_from_the_header_without_decoding_the_pixels() -> None:
    data = make_png(300, 200)
    assert identify_image(data[: len(data) // 2]) == IdentifiedImage("image/png", 300, 200)


def test_a_decompression_bomb_keeps_its_type_without_size(monkeypatch) -> None:
    # Beyond twice Pillow's pixel limit Pillow refuses to size the image; 37x21 is 777 pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    assert identify_image(encode("PNG")) == IdentifiedImage("image/png")
    # Between the limit and twice it, Pillow only warns, and the size is read.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.warns(Image.DecompressionBombWarning):
        assert identify_image(encode("PNG")) == IdentifiedImage("image/png", 37, 21)
