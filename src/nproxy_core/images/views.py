"""The image tools' JSON API (DESIGN 4.17) and the public page of a shared image."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.accounts.security import user_view
from nproxy_core.errors import ValidationError
from nproxy_core.generation import library, presenters, schemas
from nproxy_core.i18n import _
from nproxy_core.images import services
from nproxy_core.jsonbody import json_object
from nproxy_core.storage import IStorage


def _user_id(request: Request) -> int:
    return request.identity.id


def share_url(request: Request, token: str) -> str:
    """The absolute address of a shared image's public page."""
    base = request.registry.settings["nproxy.public_url"].rstrip("/")
    return base + request.route_path("share", token=token)


def _boolean(body: dict[str, Any], field: str, *, required: bool) -> bool | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise ValidationError(
            _("${field} must be true or false.", mapping={"field": field}),
            fields={field: "required" if value is None else "invalid"},
        )
    return value


def image_json(request: Request, image: library.LibraryImage) -> dict[str, Any]:
    """One image as the library lists it, with what the image tools need: its share link and
    the larger presets it can be upscaled to (each with its units)."""
    found = services.owned_image(request.db, _user_id(request), image.id)
    made = services.origin(request, found)
    return {
        **presenters.library_image_json(request, image),
        "share": None
        if image.share_token is None
        else {"url": share_url(request, image.share_token), "show_prompt": image.share_show_prompt},
        "upscales": services.upscales(request, found, made),
        "can_vary": made.capabilities is not None and "image_to_image" in made.capabilities.modes,
    }


@user_view("api.image", "GET", "json")
def api_image(request: Request) -> dict[str, Any]:
    image = services.image_view(request.db, _user_id(request), request.matchdict["image_id"])
    return image_json(request, image)


@user_view("api.image", "PATCH", "json")
def api_update_image(request: Request) -> dict[str, Any]:
    body = json_object(request)
    unknown = sorted(set(body) - {"favorite"})
    if unknown:
        raise ValidationError(
            _(
                "Only favorite can be changed (not ${names}).",
                mapping={"names": ", ".join(unknown)[:100]},
            ),
            fields={unknown[0][:64]: "not_allowed"},
        )
    favorite = _boolean(body, "favorite", required=True)
    image_id = request.matchdict["image_id"]
    services.set_favorite(request.db, _user_id(request), image_id, bool(favorite))
    image = services.image_view(request.db, _user_id(request), image_id)
    return presenters.library_image_json(request, image)


@user_view("api.image", "DELETE")
def api_delete_image(request: Request) -> Response:
    services.delete_image(request, _user_id(request), request.matchdict["image_id"])
    return Response(status=204)


@user_view("api.image.vary", "POST", "json")
def api_vary(request: Request) -> dict[str, Any]:
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    json_object(request, empty_ok=True)
    generation = services.vary(request, _user_id(request), request.matchdict["image_id"], key)
    return presenters.accepted_json(request, generation)


@user_view("api.image.upscale", "POST", "json")
def api_upscale(request: Request) -> dict[str, Any]:
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    body = json_object(request)
    generation = services.upscale(
        request, _user_id(request), request.matchdict["image_id"], body.get("resolution"), key
    )
    return presenters.accepted_json(request, generation)


@user_view("api.image.share", "POST", "json")
def api_share(request: Request) -> dict[str, Any]:
    body = json_object(request, empty_ok=True)
    show_prompt = _boolean(body, "show_prompt", required=False)
    image = services.share(
        request.db, _user_id(request), request.matchdict["image_id"], show_prompt
    )
    return {"url": share_url(request, image.share_token), "show_prompt": image.share_show_prompt}


@user_view("api.image.share", "DELETE")
def api_unshare(request: Request) -> Response:
    services.unshare(request.db, _user_id(request), request.matchdict["image_id"])
    return Response(status=204)


# --- the public page ----------------------------------------------------------------------------


@view_config(route_name="share", request_method="GET", renderer="images/share.html")
def share_page(request: Request) -> dict[str, Any]:
    """A shared image for anyone with the link, with Open Graph tags for link previews; the
    prompt only when its owner chose to show it. Revoked or unknown: 404."""
    token = request.matchdict["token"]
    found = services.shared(request.db, token)
    image = found.image
    title = found.prompt or request.localizer.translate(_("An image made with nproxy"))
    if len(title) > 90:
        title = title[:89].rstrip() + "…"
    request.response.headers["Cache-Control"] = "no-cache"
    request.response.headers["Referrer-Policy"] = "no-referrer"
    base = request.registry.settings["nproxy.public_url"].rstrip("/")
    return {
        "title": title,
        "prompt": found.prompt,
        "page_url": share_url(request, token),
        "image_url": base + request.route_path("share.image", token=token),
        "width": image.width,
        "height": image.height,
        "mime": image.mime,
    }


@view_config(route_name="share.image", request_method="GET")
def share_image(request: Request) -> Response:
    """The original of a shared image; 404 once the share is revoked."""
    found = services.shared(request.db, request.matchdict["token"])
    storage = request.find_service(IStorage)
    url = storage.url_for(found.image.storage_key)
    if url is not None:
        response = HTTPFound(location=url)
        response.headers["Cache-Control"] = "no-store"
        return response
    response = Response(body=storage.get(found.image.storage_key), content_type=found.image.mime)
    # Asked again on every view: a revoked link's image must not live on in a cache.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
