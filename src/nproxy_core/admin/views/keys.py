"""Provider keys: add, edit, restore, disable, test."""

from __future__ import annotations

import functools
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.admin import queries, stats
from nproxy_core.admin.page import (
    act,
    actor,
    admin_action,
    admin_page,
    base,
    empty_page,
    form,
    int_id,
    list_error,
    on_row,
    optional_int,
    row_action,
)
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.db import utcnow
from nproxy_core.errors import ValidationError
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import key_name
from nproxy_core.keypool.projects import projects_of
from nproxy_core.plugin_registry import IPlugins


@admin_page("admin.keys", "keys.html")
def keys(request: Request) -> dict[str, Any]:
    now = utcnow()
    rows = queries.keys_with_stats(request.db, now)
    return base(
        request,
        "keys",
        rows=rows,
        projects=projects_of((key for key, _stats in rows), now),
        providers=list(request.find_service(IPlugins).providers),
        proxies=pool.list_proxies(request.db),
    )


def _key_fields(request: Request) -> dict[str, Any]:
    """What the add and edit forms of a key both set."""
    return {
        "label": form(request, "label"),
        "proxy_id": optional_int(form(request, "proxy_id"), "proxy"),
        "project": form(request, "project"),
        "billing_group": form(request, "billing_group"),
    }


@admin_action("admin.keys")
def key_add(request: Request) -> HTTPSeeOther:
    def add() -> str:
        key = pool.add_key(
            request.db,
            request.find_service(ISecretBox),
            provider=form(request, "provider"),
            secret=form(request, "secret"),
            enabled_providers=list(request.find_service(IPlugins).providers),
            actor=actor(request),
            **_key_fields(request),
        )
        return f"Added {key.provider} {key.name} ({key.secret_mask})."

    return act(request, request.route_path("admin.keys"), add)


@admin_page("admin.key", "key.html")
def key(request: Request) -> dict[str, Any]:
    key_id = int_id(request, "key_id")
    found = pool.get_key(request.db, key_id)
    now = utcnow()
    error = None
    try:
        attempts = queries.key_attempts(request.db, key_id, request.params.get("after"))
    except ValidationError as exc:
        attempts, error = empty_page(), list_error(request, exc)
    return base(
        request,
        "keys",
        key=found,
        stats=stats.attempt_activity(request.db, now, [key_id]).keys.get(key_id, stats.KeyStats()),
        attempts=attempts,
        proxies=pool.list_proxies(request.db),
        error=error,
    )


def _key_back(request: Request) -> str:
    return request.route_path("admin.key", key_id=request.matchdict["key_id"])


@admin_action("admin.key.edit")
def key_edit(request: Request) -> HTTPSeeOther:
    key_id = int_id(request, "key_id")

    def edit() -> str:
        key = pool.edit_key(
            request.db,
            key_id,
            actor=actor(request),
            **_key_fields(request),
        )
        return f"{key_name(key.id, key.label, start=True)} saved."

    return act(request, _key_back(request), edit)


@admin_action("admin.key.restore")
def key_restore(request: Request) -> HTTPSeeOther:
    return on_row(
        request,
        "key_id",
        _key_back(request),
        functools.partial(pool.restore_key, alerts=request.find_service(IAlertNotifier)),
        lambda key: f"{key_name(key.id, key.label, start=True)} is back in service.",
    )


key_disable = row_action(
    "admin.key.disable",
    "key_id",
    _key_back,
    pool.disable_key,
    lambda k: f"{key_name(k.id, k.label, start=True)} is disabled.",
)


@admin_action("admin.key.test")
def key_test(request: Request) -> HTTPSeeOther:
    key_id = int_id(request, "key_id")
    generate = form(request, "generate") in ("1", "on", "true")

    def test() -> tuple[str, str]:
        _result, report = pool.test_key_report(
            request.db,
            request.find_service(IKeyPoolRouter),
            key_id,
            generate=generate,
            actor=actor(request),
        )
        # A failed test is shown as a problem, but it ran and is recorded: no rollback.
        return report.tone, report.text

    return act(request, _key_back(request), test)
