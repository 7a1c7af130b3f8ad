"""Generations, each with every key attempt."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    admin_page,
    base,
    empty_page,
    list_error,
    parse_moment,
)
from nproxy_core.admin.pagination import Page
from nproxy_core.db import parse_uuid
from nproxy_core.errors import NotFound, ValidationError
from nproxy_core.plugin_registry import IPlugins


@admin_page("admin.generations", "generations.html")
def generations(request: Request) -> dict[str, Any]:
    params = request.params
    filters = {
        "status": params.get("status", "").strip(),
        "user": params.get("user", "").strip()[:254],
        "provider": params.get("provider", "").strip()[:64],
        "since": params.get("since", "").strip()[:40],
        "until": params.get("until", "").strip()[:40],
    }
    enabled = list(request.find_service(IPlugins).providers)
    providers = queries.providers_seen(request.db, enabled)
    error = None
    page: Page[Any] = empty_page()
    try:
        if filters["status"] and filters["status"] not in queries.GENERATION_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(queries.GENERATION_STATUSES)}")
        if filters["provider"] and filters["provider"] not in providers:
            # A provider no longer enabled still has its old jobs.
            providers.append(filters["provider"])
        user_id = None
        if filters["user"]:
            found = queries.find_user_ref(request.db, filters["user"])
            if found is None:
                raise ValidationError(f"no user {filters['user']!r}")
            user_id = found.id
        page = queries.list_generations(
            request.db,
            status=filters["status"] or None,
            user_id=user_id,
            provider=filters["provider"] or None,
            since=parse_moment(filters["since"], "from"),
            until=parse_moment(filters["until"], "until"),
            cursor=params.get("after"),
        )
    except ValidationError as exc:
        error = list_error(request, exc)
    return base(
        request,
        "generations",
        filters=filters,
        statuses=queries.GENERATION_STATUSES,
        providers=providers,
        page=page,
        error=error,
    )


@admin_page("admin.generation", "generation.html")
def generation(request: Request) -> dict[str, Any]:
    generation_id = parse_uuid(request.matchdict["generation_id"])
    detail = None if generation_id is None else queries.generation_detail(request.db, generation_id)
    if detail is None:
        raise NotFound("No such generation.")
    return base(request, "generations", detail=detail)
