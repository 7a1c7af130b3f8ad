"""What production adds around the app: Caddy's HSTS and body limit, and gunicorn and an app
that trust X-Forwarded-* from Caddy alone. (Backups: tests/backup/.)"""

from __future__ import annotations

import configparser
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from generation_support import WebServer
from nproxy_core.plugins import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def ini_section(ini: str, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / ini)
    return dict(parser[section])


def server_options(ini: str) -> dict[str, str]:
    return ini_section(ini, "server:main")


# --- Caddy ------------------------------------------------------------------------------------


def test_caddy_sends_hsts_and_bounds_bodies():
    caddyfile = (ROOT / "deploy/Caddyfile").read_text()
    hsts = re.search(r'Strict-Transport-Security\s+"max-age=(\d+)[^"]*"', caddyfile)
    assert hsts and int(hsts.group(1)) >= 180 * 24 * 3600
    size = re.search(r"request_body\s*\{\s*max_size\s+(\d+)MB\s*\}", caddyfile)
    assert size and 12 <= int(size.group(1)) <= 32


# --- who may say who the client is -------------------------------------------------------------


def gunicorn_forwarded_allow_ips() -> str:
    web = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]["web"]
    return web["environment"]["FORWARDED_ALLOW_IPS"]


def test_only_caddys_address_is_trusted_for_forwarded_headers():
    compose = yaml.safe_load((ROOT / "compose.yml").read_text())
    caddy = compose["services"]["caddy"]["networks"]["edge"]["ipv4_address"]
    # The app believes X-Forwarded-For, and gunicorn X-Forwarded-Proto, from Caddy alone.
    assert ini_section("production.ini", "app:main")["nproxy.trusted_proxies"] == caddy
    assert gunicorn_forwarded_allow_ips() == caddy
    assert "edge" in compose["services"]["web"]["networks"]
    assert "ports" not in compose["services"]["web"]  # only through Caddy


def test_the_development_server_bounds_bodies_above_the_apps_own_limit():
    # Production's bound is Caddy's (above); the development server (waitress) has its own.
    limit = int(server_options("development.ini")["max_request_body_size"])
    assert 12 * 1024 * 1024 < limit <= 32 * 1024 * 1024


def test_a_malformed_trusted_proxy_setting_is_refused_by_name(make_app):
    with pytest.raises(ConfigurationError, match=r"nproxy\.trusted_proxies"):
        make_app(nproxy__trusted_proxies="172.31.240.2 caddy")


@pytest.fixture
def production_server(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> Iterator[Any]:
    """The app served as in production (gunicorn with the repository's gunicorn.conf.py), with
    production's trust settings unless a test plays Caddy itself from 127.0.0.1."""
    servers: list[WebServer] = []

    def start(trusted: str) -> str:
        settings = {
            **base_settings,
            "nproxy.ratelimit.login": "3/minute",
            "nproxy.trusted_proxies": trusted,
        }
        server = WebServer(
            tmp_path, settings, WEB_WORKERS="1", WEB_THREADS="4", FORWARDED_ALLOW_IPS=trusted
        )
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def login_statuses(url: str, forwarded_for: str = "203.0.113.{n}") -> list[int]:
    """Five failed logins, the n-th sending ``X-Forwarded-For: forwarded_for.format(n=n)``."""
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        csrf = client.get("/api/v1/session").json()["csrf_token"]
        return [
            client.post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "guessing"},
                headers={"X-CSRF-Token": csrf, "X-Forwarded-For": forwarded_for.format(n=n)},
            ).status_code
            for n in range(5)
        ]


def test_forwarded_headers_from_elsewhere_neither_rotate_limits_nor_poison_redirects(
    production_server, base_settings
):
    url = production_server(gunicorn_forwarded_allow_ips())
    assert login_statuses(url) == [401, 401, 401, 429, 429]
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        answer = client.get(
            "/dashboard",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        )
    assert answer.status_code == 303
    # Absolute URLs are built on nproxy.public_url, never on what the request says.
    assert answer.headers["location"].startswith(f"{base_settings['nproxy.public_url']}/login")


def test_forwarded_headers_from_the_trusted_proxy_are_honoured(production_server):
    # The same server, with this test playing Caddy: the client's address is believed, and
    # only the last entry of X-Forwarded-For (the one the proxy added) counts.
    url = production_server("127.0.0.1")
    assert login_statuses(url) == [401] * 5
    # A client that makes up earlier entries is still one address (the proxy's last entry).
    assert login_statuses(url, "198.51.100.{n}, 203.0.113.99") == [401, 401, 401, 429, 429]


def test_the_development_server_refuses_a_body_over_its_limit_before_the_app(make_app):
    from waitress.server import create_server

    options = server_options("development.ini")
    limit = int(options["max_request_body_size"])
    server = create_server(make_app().app, host="127.0.0.1", port=0, max_request_body_size=limit)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        with httpx.Client(trust_env=False, timeout=30) as client:
            answer = client.post(
                f"http://127.0.0.1:{server.effective_port}/api/v1/auth/login",
                content=b"[" * (limit + 1024 * 1024),
                headers={"Content-Type": "application/json"},
            )
    finally:
        server.close()
    assert answer.status_code == 413
