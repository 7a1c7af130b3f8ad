"""Image bytes in storage: the WebP thumbnail every stored image gets (at most 384 px a side,
made once, when the image is stored), and conversion to another format for a download
(``GET /media/{id}?format=png|jpeg|webp``)."""

from __future__ import annotations

import io
import logging
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from nproxy_core.storage.interfaces import IStorage, StorageError
from nproxy_core.storage.keys import validate_key

log = logging.getLogger(__name__)

#: The longest side of a thumbnail, in pixels.
THUMB_SIDE = 384
#: WebP quality of thumbnails: no visible loss at tile size (about 190 CSS px), and small
#: enough that a screenful of tiles stays within the library's 150 KB (benchmarks/library.py).
THUMB_QUALITY = 60
#: Where thumbnails live: ``thumbs/`` followed by the original's key, as ``.webp``.
THUMB_PREFIX = "thumbs/"
THUMB_MIME = "image/webp"


class Format(NamedTuple):
    name: str
    mime: str
    extension: str
    pillow: str


#: The formats a download can be converted to, by the name ``?format=`` takes.
FORMATS: dict[str, Format] = {
    "png": Format("png", "image/png", "png", "PNG"),
    "jpeg": Format("jpeg", "image/jpeg", "jpg", "JPEG"),
    "webp": Format("webp", "image/webp", "webp", "WEBP"),
}
FORMAT_BY_MIME = {f.mime: f for f in FORMATS.values()}


class ImageUnreadable(ValueError):
    """The bytes are not an image Pillow can read."""


def thumbnail_key(key: str) -> str:
    """The thumbnail's key of the image stored under ``key``."""
    stem, _, _ext = key.rpartition(".")
    return validate_key(f"{THUMB_PREFIX}{stem or key}.webp")


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageUnreadable(str(exc)) from exc
    return ImageOps.exif_transpose(image)


def make_thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """WebP bytes of the image scaled to fit a square of ``side`` px (never enlarged)."""
    image = _open(data)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=THUMB_QUALITY, method=6)
    return buffer.getvalue()


def store_thumbnail(storage: IStorage, key: str, data: bytes) -> str | None:
    """Make and store the thumbnail of the image ``data`` stored under ``key``; its key, or
    None when it could not be made or stored (logged: the image itself is kept, and its
    thumbnail is made on its first request instead)."""
    try:
        thumb = make_thumbnail(data)
        thumb_key = thumbnail_key(key)
        storage.put(thumb_key, thumb, THUMB_MIME)
    except (ImageUnreadable, StorageError):
        log.exception("could not make the thumbnail of %s", key)
        return None
    return thumb_key


def convert(data: bytes, mime: str, wanted: Format) -> bytes:
    """The image in the format ``wanted``; the same bytes when it already is."""
    if FORMAT_BY_MIME.get(mime) == wanted:
        return data
    image = _open(data)
    if wanted.name == "jpeg":
        # JPEG has no transparency: flatten onto white, as a viewer would show it.
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    elif image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    options = {"quality": 92} if wanted.name in ("jpeg", "webp") else {}
    image.save(buffer, format=wanted.pillow, **options)
    return buffer.getvalue()
