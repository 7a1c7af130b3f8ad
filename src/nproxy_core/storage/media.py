"""Media assets behind ``GET /media/{asset_id}``: a registry of resolvers, one per kind of asset.

Each feature that stores images (uploads now, generated images later) registers a resolver with
``config.add_media_resolver(fn)``. ``fn(request, asset_id)`` answers a :class:`MediaAsset` for an
id it knows, or None; the media view asks each resolver in turn and checks the owner itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pyramid.request import Request

from nproxy_core.db import parse_uuid


class MediaAsset(NamedTuple):
    owner_user_id: int
    storage_key: str
    mime: str
    #: The key of its WebP thumbnail; None when it has none yet.
    thumb_key: str | None = None
    #: For assets that keep a thumbnail (generated images): records the key of one made on
    #: the first request (images stored before thumbnails existed). None: no thumbnails.
    record_thumb: Callable[[str], None] | None = None


MediaResolver = Callable[[Request, str], MediaAsset | tuple[int, str, str] | None]

REGISTRY_KEY = "nproxy.media_resolvers"


def add_media_resolver(config: Any, resolver: MediaResolver, name: str | None = None) -> None:
    """Directive: let ``resolver`` answer for some ``/media/{asset_id}`` ids.

    ``name`` (default: the function's qualified name) guards against registering the same
    resolver twice, which Pyramid reports as a configuration conflict.
    """
    resolver = config.maybe_dotted(resolver)
    name = name or f"{resolver.__module__}.{resolver.__qualname__}"

    def register() -> None:
        config.registry.setdefault(REGISTRY_KEY, []).append(resolver)

    config.action(("nproxy.media_resolver", name), register)


def stored_image_resolver(model: Any) -> MediaResolver:
    """A resolver for a model whose rows have a UUID ``id``, ``user_id``, ``storage_key`` and
    ``mime``: uploads and generated images. A model with a ``thumb_key`` column keeps
    thumbnails: one missing is made on the first request and recorded there."""

    keeps_thumbs = hasattr(model, "thumb_key")

    def resolve(request: Request, asset_id: str) -> MediaAsset | None:
        row_id = parse_uuid(asset_id)
        row = None if row_id is None else request.db.get(model, row_id)
        if row is None:
            return None
        if not keeps_thumbs:
            return MediaAsset(row.user_id, row.storage_key, row.mime)

        def record_thumb(key: str) -> None:
            row.thumb_key = key

        return MediaAsset(row.user_id, row.storage_key, row.mime, row.thumb_key, record_thumb)

    return resolve


def resolve_media(request: Request, asset_id: str) -> MediaAsset | None:
    """The asset behind ``asset_id``, whoever owns it; None when no resolver knows it."""
    for resolver in request.registry.get(REGISTRY_KEY, ()):
        found = resolver(request, asset_id)
        if found is not None:
            return MediaAsset(*found)
    return None
