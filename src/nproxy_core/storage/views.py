"""``GET /media/{asset_id}``: an image for its owner or an admin, 404 for everyone else."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.errors import NotFound
from nproxy_core.storage.interfaces import IStorage, ObjectNotFound
from nproxy_core.storage.media import resolve_media

#: How long a browser may keep a served image; keys never change, so the bytes never do.
MEDIA_MAX_AGE_SECONDS = 3600


@view_config(route_name="media", request_method="GET")
def media(request: Request) -> Response:
    user = request.identity
    asset = resolve_media(request, request.matchdict["asset_id"])
    # The same 404 for an unknown id, another user's asset and an anonymous visitor: the answer
    # must not reveal that the asset exists.
    if asset is None or user is None or (asset.owner_user_id != user.id and not user.is_admin):
        raise NotFound("Not found.")

    storage = request.find_service(IStorage)
    url = storage.url_for(asset.storage_key)
    if url is not None:
        response = HTTPFound(location=url)
        # The presigned URL expires soon: never let a cache replay this redirect.
        response.headers["Cache-Control"] = "no-store"
        return response

    try:
        data = storage.get(asset.storage_key)
    except ObjectNotFound:
        raise NotFound("Not found.") from None
    response = Response(body=data, content_type=asset.mime)
    response.headers["Cache-Control"] = f"private, max-age={MEDIA_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
