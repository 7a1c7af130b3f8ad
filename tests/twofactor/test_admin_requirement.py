"""``nproxy.admin.require_2fa``: an admin without two-factor login is sent to set it up before
any admin page, and refused every admin action (403 ``2fa_required``); every admin route is
tried, from the app's own route table. Nothing changes for anyone else."""

from __future__ import annotations

import re
from configparser import ConfigParser
from pathlib import Path
from typing import Any

import pytest
import webtest

from admin_support import AdminBrowser
from nproxy_core.accounts.security import Permission
from nproxy_core.config import normalize_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def strict_app(make_app: Any) -> webtest.TestApp:
    return make_app(nproxy__admin__require_2fa="true")


def admin_views(app: webtest.TestApp) -> list[tuple[str, str, str]]:
    """(route name, path with its placeholders filled, method) of every view on a route under
    /admin, from the app's own introspection: a route added tomorrow is tried too."""
    introspector = app.app.registry.introspector
    found = []
    for route in introspector.get_category("routes"):
        pattern = route["introspectable"]["pattern"]
        if not pattern.startswith("/admin"):
            continue
        name = route["introspectable"]["name"]
        path = re.sub(r"\{[^}]+\}", "1", pattern)
        views = [
            view
            for view in introspector.get_category("views")
            if view["introspectable"]["route_name"] == name
        ]
        assert views, f"the admin route {name} has no view"
        for view in views:
            # Every admin view needs the admin permission: the requirement hangs on it.
            permissions = [
                r.discriminator for r in view["related"] if r.category_name == "permissions"
            ]
            assert permissions == [Permission.ADMIN], name
            methods = view["introspectable"]["request_methods"] or ("GET",)
            if isinstance(methods, str):
                methods = (methods,)
            found.extend((name, path, method) for method in methods if method != "HEAD")
    return sorted(set(found))


def test_every_admin_page_sends_an_admin_without_2fa_to_set_it_up(strict_app, user_factory):
    user_factory("admin@example.com", admin=True)
    admin = AdminBrowser(strict_app).login("admin@example.com")
    tried = []
    for name, path, method in admin_views(strict_app):
        if method == "GET":
            res = admin.get(path)
            assert res.status_int == 303, (name, res.status)
            assert res.location == (
                f"http://localhost/account/2fa?next={path.replace('/', '%2F')}"
            ), name
            # A JSON client is told why, not redirected.
            as_json = admin.get(path, headers={"Accept": "application/json"})
            assert as_json.status_int == 403, name
            assert as_json.json["error"]["code"] == "2fa_required", name
        else:
            res = admin.post(path, {"note": "x", "reason": "x", "role": "user"})
            assert res.status_int == 403, (name, res.status)
            assert "two-factor" in res.text, name
        tried.append(name)
    assert {"admin.overview", "admin.users", "admin.user.block", "admin.keys"} <= set(tried)


def test_admin_actions_are_refused_with_2fa_required_and_change_nothing(
    strict_app, db, user_factory
):
    user_factory("admin@example.com", admin=True)
    target = user_factory("someone@example.com")
    admin = AdminBrowser(strict_app).login("admin@example.com")
    res = admin.app.post(
        f"/admin/users/{target.id}/block",
        {"csrf_token": admin.csrf()},
        headers={"Accept": "application/json"},
        status="*",
    )
    assert res.status_int == 403
    assert res.json["error"]["code"] == "2fa_required"
    db.refresh(target)
    assert not target.is_blocked


def test_after_setting_it_up_the_admin_opens_every_page(strict_app, user_factory, enrol):
    from .conftest import steady_now

    enrolled = enrol(user_factory("admin@example.com", admin=True))
    page = webtest.TestApp(strict_app.app, extra_environ={"HTTP_HOST": "localhost"})
    csrf = page.get("/api/v1/session").json["csrf_token"]
    steady_now()
    page.post_json(
        "/api/v1/auth/login",
        {"email": "admin@example.com", "password": "correct horse battery", "otp": enrolled.code()},
        headers={"X-CSRF-Token": csrf},
    )
    for path in ("/admin", "/admin/users", "/admin/keys", "/admin/audit"):
        assert page.get(path).status_int == 200, path


def test_the_setup_page_tells_the_admin_why_and_returns_them(strict_app, user_factory):
    user_factory("admin@example.com", admin=True)
    admin = AdminBrowser(strict_app).login("admin@example.com")
    sent = admin.get("/admin/users")
    page = admin.get(sent.location)
    assert page.html.select_one("#required") is not None
    setup = next(f for f in page.forms.values() if f.action.startswith("/account/2fa/setup"))
    assert setup.action == "/account/2fa/setup?next=%2Fadmin%2Fusers"


def test_nothing_changes_for_users_and_visitors(strict_app, user_factory):
    anonymous = webtest.TestApp(strict_app.app, extra_environ={"HTTP_HOST": "localhost"})
    res = anonymous.get("/admin/users", status="*")
    assert res.status_int == 303 and "/login?next=" in res.location
    user_factory("someone@example.com")
    someone = AdminBrowser(strict_app).login("someone@example.com")
    assert someone.get("/admin").status_int == 404
    assert someone.get("/dashboard").status_int == 200
    assert someone.get("/api/v1/me").status_int == 200


def test_without_the_setting_admins_without_2fa_open_the_admin(app, user_factory):
    user_factory("admin@example.com", admin=True)
    admin = AdminBrowser(app).login("admin@example.com")
    assert admin.get("/admin").status_int == 200
    assert admin.get("/admin/users").status_int == 200


def ini_value(name: str) -> str:
    parser = ConfigParser(interpolation=None)
    parser.read(ROOT / name)
    return parser["app:main"]["nproxy.admin.require_2fa"]


def test_production_requires_it_and_development_does_not():
    assert ini_value("production.ini") == "true"
    assert ini_value("development.ini") == "false"


def test_the_environment_overrides_the_setting():
    base = {
        "sqlalchemy.url": "sqlite://",
        "nproxy.secret": "s" * 40,
        "nproxy.public_url": "http://x",
    }
    assert normalize_settings(base, environ={})["nproxy.admin.require_2fa"] == "false"
    on = normalize_settings(base, environ={"NPROXY_REQUIRE_2FA": "true"})
    assert on["nproxy.admin.require_2fa"] == "true"
    off = normalize_settings(
        {**base, "nproxy.admin.require_2fa": "true"}, environ={"NPROXY_REQUIRE_2FA": "false"}
    )
    assert off["nproxy.admin.require_2fa"] == "false"


def test_a_malformed_setting_stops_start_up_naming_it(make_app):
    from nproxy_core.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"nproxy\.admin\.require_2fa"):
        make_app(nproxy__admin__require_2fa="sometimes")
