"""Proxies: add, enable, disable, test."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    act,
    actor,
    admin_action,
    admin_page,
    base,
    form,
    int_id,
    row_action,
)
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import IKeyPoolRouter


@admin_page("admin.proxies", "proxies.html")
def proxies(request: Request) -> dict[str, Any]:
    return base(
        request,
        "proxies",
        rows=queries.proxies_with_keys(request.db),
        display_proxy_url=pool.display_proxy_url,
    )


def _proxies(request: Request) -> str:
    return request.route_path("admin.proxies")


@admin_action("admin.proxies")
def proxy_add(request: Request) -> HTTPSeeOther:
    def add() -> str:
        proxy = pool.add_proxy(
            request.db, form(request, "url"), label=form(request, "label"), actor=actor(request)
        )
        return f"Added proxy {proxy.id} ({pool.display_proxy_url(proxy.url)})."

    return act(request, _proxies(request), add)


proxy_enable = row_action(
    "admin.proxy.enable",
    "proxy_id",
    _proxies,
    pool.enable_proxy,
    lambda p: f"Proxy {p.id} is enabled.",
)
proxy_disable = row_action(
    "admin.proxy.disable",
    "proxy_id",
    _proxies,
    pool.disable_proxy,
    lambda p: f"Proxy {p.id} is disabled.",
)


@admin_action("admin.proxy.test")
def proxy_test(request: Request) -> HTTPSeeOther:
    proxy_id = int_id(request, "proxy_id")

    def test() -> str | tuple[str, str]:
        checks = pool.test_proxy(
            request.db, request.find_service(IKeyPoolRouter), proxy_id, actor=actor(request)
        )
        said = "; ".join(
            f"{c.provider}: {'ok' if c.ok else 'failed'} ({c.latency_ms} ms) {c.detail}"
            for c in checks
        )
        message = f"Proxy {proxy_id} test: {said or 'no provider is enabled'}."
        return message if any(c.ok for c in checks) else ("error", message)

    return act(request, _proxies(request), test)
