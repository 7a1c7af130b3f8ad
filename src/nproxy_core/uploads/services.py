"""Uploads: checking an image by its content, storing it, and finding a user's uploads again."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa
from PIL import Image
from pyramid.request import Request
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.db import parse_uuid
from nproxy_core.errors import NotFound, ValidationError, describe_size
from nproxy_core.i18n import _
from nproxy_core.plugins import IMAGE_FORMATS, identify_image
from nproxy_core.storage import IStorage, upload_key
from nproxy_core.uploads.interfaces import IUploadLimits
from nproxy_core.uploads.models import Upload

log = logging.getLogger(__name__)


@implementer(IUploadLimits)
@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_side: int = 4096


@dataclass(frozen=True)
class CheckedImage:
    mime: str
    extension: str
    width: int
    height: int


def too_large_error(max_bytes: int) -> ValidationError:
    return ValidationError(
        _(
            "The image is larger than ${max_bytes}.",
            mapping={"max_bytes": describe_size(max_bytes)},
        ),
        fields={"file": "too_large"},
    )


def _not_an_image() -> ValidationError:
    return ValidationError(
        _("The file is not a PNG, JPEG or WebP image."), fields={"file": "unsupported_type"}
    )


def read_capped(stream: IO[bytes], max_bytes: int) -> bytes:
    """Read ``stream`` to its end, refusing it as soon as it passes ``max_bytes``.

    Counts the bytes actually read, whatever a Content-Length header claimed, and never holds
    more than ``max_bytes + 1`` of them.
    """
    buffer = bytearray()
    while len(buffer) <= max_bytes:
        chunk = stream.read(min(64 * 1024, max_bytes + 1 - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    if len(buffer) > max_bytes:
        raise too_large_error(max_bytes)
    return bytes(buffer)


def check_image(data: bytes, *, max_bytes: int, max_side: int) -> CheckedImage:
    """Accept PNG, JPEG or WebP by content, within the limits, or raise ValidationError.

    The name and declared type of the file play no part. Animated images are accepted; their
    first frame is what gets checked and decoded.
    """
    if not data:
        raise ValidationError(
            _("The file sent in the 'file' field is empty."), fields={"file": "empty"}
        )
    if len(data) > max_bytes:
        raise too_large_error(max_bytes)
    found = identify_image(data)
    if found is None or found.mime not in IMAGE_FORMATS:
        raise _not_an_image()
    fmt = IMAGE_FORMATS[found.mime]
    try:
        # Opened again rather than sized by identify_image, which reports a decompression bomb
        # and a damaged header alike (no size): the messages below tell the two apart.
        with Image.open(io.BytesIO(data), formats=[fmt.pillow]) as image:
            width, height = image.size
            # The header is enough to know the size: refuse before decoding a single pixel.
            if width > max_side or height > max_side:
                raise ValidationError(
                    _(
                        "The image is ${width}\u00d7${height} px; the limit is ${max_side} px a "
                        "side.",
                        mapping={"width": width, "height": height, "max_side": max_side},
                    ),
                    fields={"file": "too_many_pixels"},
                )
            # Pillow only warns between its pixel limit and twice that; we refuse. (Checked by
            # hand: turning the warning into an error would change process-wide warning
            # filters, which is not thread-safe.)
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise ValidationError(
                    _(
                        "The image is ${width}\u00d7${height} px: too many pixels to be processed "
                        "safely.",
                        mapping={"width": width, "height": height},
                    ),
                    fields={"file": "too_many_pixels"},
                )
            image.verify()
        # verify() checks little for JPEG and WebP; a full decode of the first frame is what
        # proves the file is whole (a truncated file fails here).
        with Image.open(io.BytesIO(data), formats=[fmt.pillow]) as image:
            image.load()
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        # Beyond twice Pillow's limit, Image.open itself refuses, before we see the size.
        raise ValidationError(
            _("The image has too many pixels to be processed safely."),
            fields={"file": "too_many_pixels"},
        ) from None
    except Exception:
        # Pillow reports a damaged file with many exception types (OSError, SyntaxError,
        # ValueError, struct.error, EOFError, ...); all mean the same thing to the user.
        raise ValidationError(
            _(
                "The image could not be read: the ${label} file is damaged or incomplete.",
                mapping={"label": fmt.label},
            ),
            fields={"file": "damaged"},
        ) from None
    return CheckedImage(mime=found.mime, extension=fmt.extension, width=width, height=height)


def _delete_unless_committed(transaction: Any, storage: Any, key: str) -> None:
    """Remove the stored object if the transaction that records it does not commit."""
    done = False

    def cleanup(committed: bool = False) -> None:
        nonlocal done
        if committed or done:
            return
        done = True
        try:
            storage.delete(key)
        except Exception:
            # Hooks must not raise; an orphaned object costs disk space, nothing more.
            log.exception("could not delete orphaned object %s", key)

    # A failed commit calls the after-commit hooks with False; an abort (an exception in the
    # view, a retry) calls only the after-abort hooks. Either way the row never existed.
    transaction.addAfterCommitHook(cleanup)
    transaction.addAfterAbortHook(cleanup)


def create_upload(request: Request, user_id: int, data: bytes) -> Upload:
    """Check ``data`` and store it as an upload of ``user_id``: the object first, then the row.

    Raises ValidationError, naming the problem, before anything is stored.
    """
    limits = request.find_service(IUploadLimits)
    checked = check_image(data, max_bytes=limits.max_bytes, max_side=limits.max_side)
    upload_id = uuid.uuid4()
    key = upload_key(user_id, upload_id, checked.extension)
    storage = request.find_service(IStorage)
    storage.put(key, data, checked.mime)
    _delete_unless_committed(request.tm.get(), storage, key)
    upload = Upload(
        id=upload_id,
        user_id=user_id,
        storage_key=key,
        mime=checked.mime,
        width=checked.width,
        height=checked.height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    request.db.add(upload)
    request.db.flush()
    return upload


def load_user_uploads(
    db: Session, user_id: int, ids: Iterable[uuid.UUID | str], *, lock: bool = False
) -> list[Upload]:
    """The uploads ``ids`` of ``user_id``, in the order given; with ``lock``, their rows are
    locked until the transaction ends (a generation about to use them: the clean-up of unused
    uploads then waits, and skips them once they are marked used).

    Raises NotFound for an id that is malformed, unknown or another user's: the three are
    indistinguishable to the caller, so no one learns that someone else's upload exists.
    """
    wanted = list(ids)
    parsed = [parse_uuid(value) for value in wanted]
    valid = {value for value in parsed if value is not None}
    found: dict[uuid.UUID, Upload] = {}
    if valid:
        query = sa.select(Upload).where(Upload.id.in_(valid), Upload.user_id == user_id)
        rows = db.scalars(query.with_for_update() if lock else query)
        found = {row.id: row for row in rows}
    for raw, value in zip(wanted, parsed, strict=True):
        if value is None or value not in found:
            shown = str(raw)[:64]
            raise NotFound(
                _("The uploaded image '${shown}' was not found.", mapping={"shown": shown}),
                fields={"input_upload_ids": "not_found"},
            )
    return [found[value] for value in parsed if value is not None]


def read_upload_bytes(request_or_storage: Any, upload: Upload) -> bytes:
    """The stored bytes of ``upload``, from a request's storage service or a storage itself."""
    if IStorage.providedBy(request_or_storage):
        storage = request_or_storage
    else:
        storage = request_or_storage.find_service(IStorage)
    return storage.get(upload.storage_key)
