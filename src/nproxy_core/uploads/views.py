"""``POST /api/v1/uploads``: a logged-in user sends an input image (multipart field ``file``)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.accounts.security import user_view
from nproxy_core.errors import ValidationError
from nproxy_core.i18n import _
from nproxy_core.ratelimit import user_limit
from nproxy_core.uploads import services
from nproxy_core.uploads.interfaces import IUploadLimits
from nproxy_core.uploads.models import Upload

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def upload_json(request: Request, upload: Upload) -> dict[str, Any]:
    return {
        "id": str(upload.id),
        "mime": upload.mime,
        "width": upload.width,
        "height": upload.height,
        "url": request.route_path("media", asset_id=str(upload.id)),
    }


def _no_file() -> ValidationError:
    return ValidationError(_("No file was sent in the 'file' field."), fields={"file": "required"})


def read_file_field(request: Request, max_bytes: int) -> bytes:
    """The bytes of the multipart field ``file``, refused as soon as they pass ``max_bytes``."""
    # A body announced far beyond the limit is refused before it is parsed at all.
    if request.content_length is not None and request.content_length > (
        max_bytes + MULTIPART_OVERHEAD
    ):
        raise services.too_large_error(max_bytes)
    if request.content_type != "multipart/form-data":
        raise _no_file()
    try:
        field = request.POST.get("file")
    except Exception:
        # WebOb raises assorted errors on a malformed multipart body.
        raise ValidationError(
            _("The upload is not a readable multipart/form-data body."), fields={"file": "required"}
        ) from None
    stream = getattr(field, "file", None)
    if stream is None:
        raise _no_file()
    return services.read_capped(stream, max_bytes)


@user_view("api.uploads", "POST", "json")
def api_create_upload(request: Request) -> dict[str, Any]:
    user_limit(request, "uploads")
    limits = request.find_service(IUploadLimits)
    data = read_file_field(request, limits.max_bytes)
    upload = services.create_upload(request, request.identity.id, data)
    request.response.status = 201
    return upload_json(request, upload)
