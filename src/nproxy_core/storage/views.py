"""``GET /media/{asset_id}``: an image for its owner or an admin, or for anyone holding a signed
link that has not expired (the developer API's images), 404 for everyone else; and how a storage
failure in any request is answered."""

from __future__ import annotations

import logging

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config

from nproxy_core.errors import APIError, NotFound, error_response
from nproxy_core.storage.interfaces import IStorage, ObjectNotFound, StorageError
from nproxy_core.storage.links import IMediaLinks, LinkCheck
from nproxy_core.storage.media import resolve_media

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
        raise LinkExpired("This image link has expired. Fetch the generation again for a new one.")
    # A tampered link is answered like an unknown asset.
    return check is LinkCheck.VALID


@view_config(route_name="media", request_method="GET")
def media(request: Request) -> Response:
    asset_id = request.matchdict["asset_id"]
    signed = _signed_link_allows(request, asset_id)
    asset = resolve_media(request, asset_id)
    user = None if signed else request.identity
    # The same 404 for an unknown id, another user's asset and an anonymous visitor: the answer
    # must not reveal that the asset exists.
    if asset is None or not (
        signed or (user is not None and (asset.owner_user_id == user.id or user.is_admin))
    ):
        raise NotFound("Not found.")

    storage = request.find_service(IStorage)
    url = storage.url_for(asset.storage_key)
    if url is not None:
        response = HTTPFound(location=url)
        # The presigned URL expires soon: never let a cache replay this redirect.
        response.headers["Cache-Control"] = "no-store"
        return response

    data = storage.get(asset.storage_key)
    response = Response(body=data, content_type=asset.mime)
    response.headers["Cache-Control"] = f"private, max-age={MEDIA_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@exception_view_config(ObjectNotFound)
def object_not_found(exc: ObjectNotFound, request: Request) -> Response:
    return error_response(request, 404, "not_found", "Not found.")


@exception_view_config(StorageError)
def storage_unavailable(exc: StorageError, request: Request) -> Response:
    # The error names the bucket or folder and the backend's own words: for the log only.
    log.error("storage failed during %s %s", request.method, request.path, exc_info=exc)
    return error_response(
        request,
        503,
        "storage_unavailable",
        "Image storage is unavailable just now. Please try again in a moment.",
    )
