"""``GET /api/v1/templates`` (the gallery, DESIGN 4.17) and each template's example image."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.accounts.security import user_view
from nproxy_core.errors import NotFound
from nproxy_core.i18n import _
from nproxy_core.i18n.fields import translation
from nproxy_core.prompt_templates import schemas, services
from nproxy_core.prompt_templates.models import PromptTemplate
from nproxy_core.storage import IStorage

#: Examples change only when an admin makes a new one, which gets a new URL (its key).
EXAMPLE_MAX_AGE_SECONDS = 86400


def example_url(request: Request, template: PromptTemplate) -> str | None:
    if not template.storage_key:
        return None
    # The key's last segment changes with every new example: a new URL, never a stale cache.
    version = template.storage_key.rsplit("/", 1)[-1].split(".", 1)[0]
    return request.route_path("prompt_template.example", slug=template.slug, _query={"v": version})


def template_json(request: Request, template: PromptTemplate) -> dict[str, Any]:
    """A template for the gallery, its words in the request's language (the admin's
    translation, else English); a field's ``options`` stay the English values a submission
    sends, ``option_labels`` are what to show for them."""
    language = request.localizer.locale_name
    return {
        "slug": template.slug,
        "title": translation(template, "title", language) or template.title,
        "description": translation(template, "description", language) or template.description,
        "prompt": template.prompt,
        "fields": schemas.localized_fields(template.fields, template.translations, language),
        "model": template.model,
        "resolution": template.resolution,
        "with_text": template.with_text,
        "example_url": example_url(request, template),
    }


@user_view("api.templates", "GET", "json")
def api_templates(request: Request) -> dict[str, Any]:
    return {"templates": [template_json(request, t) for t in services.gallery(request.db)]}


@view_config(route_name="prompt_template.example", request_method="GET")
def example_image(request: Request) -> Response:
    """A template's example image: public, like the gallery it illustrates."""
    try:
        template = services.by_slug(request.db, request.matchdict["slug"])
    except NotFound:
        template = None
    # A hidden template's example is for admins, who make it before showing the template.
    admin = request.identity is not None and request.identity.is_admin
    if template is None or not template.storage_key or not (template.active or admin):
        raise NotFound(_("Not found."))
    data = request.find_service(IStorage).get(template.storage_key)
    response = Response(body=data, content_type=template.example_mime or "image/png")
    scope = "public" if template.active else "private"
    response.headers["Cache-Control"] = f"{scope}, max-age={EXAMPLE_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
