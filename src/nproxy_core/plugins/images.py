"""Image formats the product accepts and makes, and identifying an image from its bytes
(what it is, not what its name or content type claims)."""

from __future__ import annotations

import io
from dataclasses import dataclass

# The plugin modules are imported for the formats they register with Pillow: identify_image
# reads those registrations, and importing four modules beats Image.init() importing forty.
from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401


@dataclass(frozen=True)
class ImageFormat:
    """An image format nproxy accepts: Pillow's name for it, its file extension, its usual name."""

    pillow: str
    extension: str
    label: str


#: By MIME type, the formats uploads accept, providers are given and generated images are
#: stored in.
IMAGE_FORMATS: dict[str, ImageFormat] = {
    "image/png": ImageFormat(pillow="PNG", extension="png", label="PNG"),
    "image/jpeg": ImageFormat(pillow="JPEG", extension="jpg", label="JPEG"),
    "image/webp": ImageFormat(pillow="WEBP", extension="webp", label="WebP"),
}

# GIF is recognised but not accepted: a provider that answers with a GIF has sent a well-formed
# image the core then refuses, which is not the fault of the key or the network.
_RECOGNISED = (*(f.pillow for f in IMAGE_FORMATS.values()), "GIF")


@dataclass(frozen=True)
class IdentifiedImage:
    """What the bytes say an image is; no size when its header cannot be read."""

    mime: str
    width: int | None = None
    height: int | None = None


def identify_image(data: bytes) -> IdentifiedImage | None:
    """The type of image ``data`` is, by its content, with its size; None if it is no image.

    Pillow decides, from its own signature check and then the header: no pixel is decoded.
    Bytes that carry a known signature but whose header Pillow cannot read (truncated, damaged,
    or a decompression bomb it refuses to size) keep their type without a size, so a caller
    can say which kind of file is broken. Pillow's pixel limit warning is left alone: turning it
    into an error would change process-wide warning filters, which is not thread-safe.
    """
    prefix = data[:16]
    # Pillow's registered signature checks; one that returns a string (support missing) is a no.
    name = next((n for n in _RECOGNISED if Image.OPEN[n][1](prefix) is True), None)
    if name is None:
        return None
    mime = Image.MIME[name]
    try:
        with Image.open(io.BytesIO(data), formats=[name]) as image:
            width, height = image.size
    except Exception:
        # Pillow reports an unreadable header with many exception types (OSError, SyntaxError,
        # struct.error, DecompressionBombError, ...); all mean "no size".
        return IdentifiedImage(mime)
    return IdentifiedImage(mime, width, height)
