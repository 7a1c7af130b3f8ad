"""``GET /media/{asset_id}``: an image for its owner or an admin, or for anyone holding a signed
link that has not expired (the developer API's images), 404 for everyone else; and how a storage
failure in any request is answered.

``?size=thumb`` answers its WebP thumbnail (at most 384 px a side; made on this first request
for an image stored before thumbnails); ``?format=png|jpeg|webp`` answers the original converted
to that format, as a download named with the right extension.
"""

from __future__ import annotations

import logging

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config

from nproxy_core.errors import APIError, NotFound, ValidationError, error_response
from nproxy_core.i18n import _
from nproxy_core.storage.images import (
    FORMATS,
    THUMB_MIME,
    ImageUnreadable,
    convert,
    store_thumbnail,
)
from nproxy_core.storage.interfaces import IStorage, ObjectNotFound, StorageError
from nproxy_core.storage.links import IMediaLinks, LinkCheck
from nproxy_core.storage.media import MediaAsset, resolve_media

log = logging.getLogger(__name__)

#: How long a browser may keep a served image; keys never change, so the bytes never do.
MEDIA_MAX_AGE_SECONDS = 3600


class LinkExpired(APIError):
    status = 403
    code = "link_expired"


def _signed_link_allows(request: Request, asset_id: str) -> bool:
    """Whether the request carries a signed link to this asset; raises when it has expired."""
    expires, signature = request.GET.get("expires"), request.GET.get("signature")
    if expires is None and signature is None:
        return False
    check = request.find_service(IMediaLinks).check(asset_id, expires, signature)
    if check is LinkCheck.EXPIRED:
        raise LinkExpired(
            _("This image link has expired. Fetch the generation again for a new one.")
        )
    # A tampered link is answered like an unknown asset.
    return check is LinkCheck.VALID


SIZES = ("thumb",)


def _wanted(request: Request) -> tuple[str | None, str | None]:
    """(size, format) the query asks for; ValidationError naming a bad one."""
    size, wanted = request.GET.get("size"), request.GET.get("format")
    if size is not None and size not in SIZES:
        raise ValidationError(
            _(
                "Unknown size '${size}' (available: ${sizes}).",
                mapping={"size": size[:32], "sizes": ", ".join(SIZES)},
            ),
            fields={"size": "invalid"},
        )
    if wanted is not None and wanted.lower() not in FORMATS:
        raise ValidationError(
            _(
                "Unknown format '${wanted}' (available: ${formats}).",
                mapping={"wanted": wanted[:32], "formats": ", ".join(FORMATS)},
            ),
            fields={"format": "invalid"},
        )
    return size, None if wanted is None else wanted.lower()


def _thumbnail(request: Request, storage: IStorage, asset: MediaAsset) -> MediaAsset:
    """The asset's thumbnail as an asset of its own; made and recorded now when it has none
    (an image stored before thumbnails); the original itself when it keeps none."""
    if asset.thumb_key is None and asset.record_thumb is not None:
        key = store_thumbnail(storage, asset.storage_key, storage.get(asset.storage_key))
        if key is not None:
            asset.record_thumb(key)
            asset = asset._replace(thumb_key=key)
    if asset.thumb_key is None:
        return asset
    return asset._replace(storage_key=asset.thumb_key, mime=THUMB_MIME)


def _download(
    request: Request, storage: IStorage, asset: MediaAsset, asset_id: str, name: str
) -> Response:
    wanted = FORMATS[name]
    try:
        data = convert(storage.get(asset.storage_key), asset.mime, wanted)
    except ImageUnreadable:
        log.error("media %s: the stored image could not be read for conversion", asset_id)
        raise NotFound(_("Not found.")) from None
    response = Response(body=data, content_type=wanted.mime)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="nproxy-{asset_id[:64]}.{wanted.extension}"'
    )
    response.headers["Cache-Control"] = f"private, max-age={MEDIA_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@view_config(route_name="media", request_method="GET")
def media(request: Request) -> Response:
    asset_id = request.matchdict["asset_id"]
    size, wanted = _wanted(request)
    signed = _signed_link_allows(request, asset_id)
    asset = resolve_media(request, asset_id)
    user = None if signed else request.identity
    # The same 404 for an unknown id, another user's asset and an anonymous visitor: the answer
    # must not reveal that the asset exists.
    if asset is None or not (
        signed or (user is not None and (asset.owner_user_id == user.id or user.is_admin))
    ):
        raise NotFound(_("Not found."))

    storage = request.find_service(IStorage)
    if wanted is not None:
        return _download(request, storage, asset, asset_id, wanted)
    if size == "thumb":
        original, asset = asset, _thumbnail(request, storage, asset)
    url = storage.url_for(asset.storage_key)
    if url is not None:
        response = HTTPFound(location=url)
        # The presigned URL expires soon: never let a cache replay this redirect.
        response.headers["Cache-Control"] = "no-store"
        return response

    try:
        data = storage.get(asset.storage_key)
    except ObjectNotFound:
        if size != "thumb" or asset.storage_key == original.storage_key:
            raise
        # The thumbnail is gone (a folder cleaned by hand): made again from the original.
        asset = _thumbnail(request, storage, original._replace(thumb_key=None))
        data = storage.get(asset.storage_key)
    response = Response(body=data, content_type=asset.mime)
    response.headers["Cache-Control"] = f"private, max-age={MEDIA_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@exception_view_config(ObjectNotFound)
def object_not_found(exc: ObjectNotFound, request: Request) -> Response:
    return error_response(request, 404, "not_found", _("Not found."))


@exception_view_config(StorageError)
def storage_unavailable(exc: StorageError, request: Request) -> Response:
    # The error names the bucket or folder and the backend's own words: for the log only.
    log.error("storage failed during %s %s", request.method, request.path, exc_info=exc)
    return error_response(
        request,
        503,
        "storage_unavailable",
        _("Image storage is unavailable just now. Please try again in a moment."),
    )
