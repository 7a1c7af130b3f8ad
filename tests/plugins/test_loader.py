"""The loader's side of the plugin contract: the contract version a plugin declares, and the
settings it is given. The plugins here are found the way pip leaves them: a distribution's
``*.dist-info`` folder with ``entry_points.txt``, on the path."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_runner import NPROXY, one_line_error, write_ini
from nproxy_core.plugin_registry.loader import load_plugins
from nproxy_core.plugins import (
    CONTRACT_VERSION,
    ConfigurationError,
    PluginError,
    check_contract,
    plugin_secret,
    scoped_settings,
)

SPY_SOURCE = '''
from nproxy_core.plugins import (
    AttemptResult, GeneratedImage, HostedCheckout, Mode, ModelCapabilities, PaymentProcessor,
    Provider,
)


class SpyProvider(Provider):
    """Keeps what it was given."""

    def capabilities(self):
        return [ModelCapabilities(model="spy-1", modes=(Mode.TEXT_TO_IMAGE,),
                                  resolutions=("square",))]

    def generate(self, request, *, api_key, proxy_url=None):
        raise NotImplementedError


class FutureProvider(SpyProvider):
    contract_version = "2.0"


class NewerMinorProvider(SpyProvider):
    contract_version = "1.7"


class MalformedVersionProvider(SpyProvider):
    contract_version = "one"


class SpyProcessor(PaymentProcessor):
    def create_checkout(self, checkout):
        return HostedCheckout(checkout_url="https://pay.example/1")

    def parse_webhook(self, body, headers):
        raise NotImplementedError

    def fetch_status(self, payment_id):
        raise NotImplementedError
'''

ENTRY_POINTS = """
[nproxy.providers]
spy = spy_plugin:SpyProvider
future = spy_plugin:FutureProvider
newer = spy_plugin:NewerMinorProvider
malformed = spy_plugin:MalformedVersionProvider

[nproxy.payments]
spy = spy_plugin:SpyProcessor
"""


@pytest.fixture
def spy_site(tmp_path, monkeypatch) -> Path:
    """A folder holding the spy plugins' module and distribution metadata, on sys.path."""
    site = tmp_path / "site"
    (site / "nproxy_spy-0.0.1.dist-info").mkdir(parents=True)
    (site / "nproxy_spy-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nproxy-spy\nVersion: 0.0.1\n"
    )
    (site / "nproxy_spy-0.0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "spy_plugin.py").write_text(textwrap.dedent(SPY_SOURCE))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("spy_plugin", None)


def test_a_plugin_sees_only_its_own_settings(spy_site, base_settings):
    settings = {
        **base_settings,
        "nproxy.providers": "demo spy",
        "nproxy.payments": "spy",
        "spy.api_key": "spy-key",
        "spy.timeout_seconds": "5",
        "spyware.other": "not for spy",
        "demo.failure_rate": "0",
    }
    plugins = load_plugins(settings)
    spy = plugins.provider("spy")
    assert dict(spy.settings) == {
        "spy.api_key": "spy-key",
        "spy.timeout_seconds": "5",
        "nproxy.public_url": "http://localhost",
        "nproxy.env": "development",
        "nproxy.secret": plugin_secret(base_settings["nproxy.secret"], "nproxy.providers", "spy"),
    }
    assert "sqlalchemy.url" not in spy.settings
    assert base_settings["nproxy.secret"] not in spy.settings.values()
    with pytest.raises(TypeError):
        spy.settings["sqlalchemy.url"] = "read-only"  # type: ignore[index]

    # The payment processor of the same name shares the prefix, but not the secret.
    processor = plugins.processor("spy")
    assert set(processor.settings) == set(spy.settings)
    assert processor.settings["nproxy.secret"] != spy.settings["nproxy.secret"]
    # Every shipped plugin gets only its own too: the demo provider sees demo.* alone.
    demo = plugins.provider("demo")
    assert {k for k in demo.settings if not k.startswith("demo.")} == {
        "nproxy.public_url",
        "nproxy.env",
        "nproxy.secret",
    }


def test_the_derived_secret_is_stable_and_per_plugin():
    a = plugin_secret("site-secret", "nproxy.payments", "demo")
    assert a == plugin_secret("site-secret", "nproxy.payments", "demo")
    assert a != plugin_secret("site-secret", "nproxy.providers", "demo")
    assert a != plugin_secret("other-secret", "nproxy.payments", "demo")
    assert "site-secret" not in a and len(a) == 64
    # No secret set: none is derived.
    assert "nproxy.secret" not in scoped_settings("g", "x", {"x.a": "1"})


def test_another_major_version_stops_start_up_with_one_line(spy_site, base_settings):
    from nproxy_core.config import configure

    with pytest.raises(ConfigurationError) as refused:
        configure({**base_settings, "nproxy.providers": "demo future"})
    assert str(refused.value) == (
        f"plugin 'future' (nproxy.providers) targets plugin contract 2.0; this nproxy speaks "
        f"{CONTRACT_VERSION} (major versions differ: use a release of the plugin for 1.x)"
    )


def test_the_app_and_the_command_line_say_so_in_one_line(spy_site, tmp_path, base_settings):
    env = {**os.environ, "PYTHONPATH": str(spy_site)}
    ini = write_ini(tmp_path, {**base_settings, "nproxy.providers": "demo future"})
    result = subprocess.run(
        [*NPROXY, "-c", str(ini), "plugins"], capture_output=True, text=True, env=env, timeout=60
    )
    line = one_line_error(result)
    assert "plugin 'future' (nproxy.providers) targets plugin contract 2.0" in line
    assert "REFUSED" in next(x for x in result.stdout.splitlines() if "future" in x)
    assert result.stdout.splitlines()[0] == f"plugin contract {CONTRACT_VERSION}"

    # The web app's factory (as pserve, waitress and gunicorn call it).
    code = f"from pyramid.paster import get_app; import sys; get_app({str(ini)!r}, 'main')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "nproxy: configuration error: plugin 'future' (nproxy.providers) "
            "targets plugin contract"
        )
    )


def test_a_newer_minor_version_starts_with_a_warning(spy_site, base_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="nproxy_core.plugin_registry.loader"):
        plugins = load_plugins({**base_settings, "nproxy.providers": "newer"})
    assert plugins.provider("newer") is not None
    assert "targets plugin contract 1.7, newer than this nproxy's 1.1" in caplog.text


def test_a_malformed_version_is_refused(spy_site, base_settings):
    with pytest.raises(PluginError, match=r"declares contract_version 'one', which is not"):
        load_plugins({**base_settings, "nproxy.providers": "malformed"})


@pytest.mark.parametrize("declared", ["1.0", "1.1", "1.12"])
def test_same_major_is_accepted(declared):
    # Only a newer minor version than the core's asks for a warning; an older one runs as is.
    assert check_contract("p", "g", declared) is (declared == "1.12")


@pytest.mark.parametrize("declared", ["0.9", "2.0", "10.0", "1", "1.0.0", "v1.0", None, 1.0])
def test_other_versions_are_refused(declared):
    with pytest.raises(PluginError):
        check_contract("p", "g", declared)


def test_a_plugin_installed_while_the_process_runs_is_found_by_the_next_configuration(
    tmp_path, monkeypatch
):
    from nproxy_core.plugin_registry.loader import discover
    from nproxy_core.plugins import PROVIDER_GROUP

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "latecomer" not in discover(PROVIDER_GROUP)
    assert "demo" in discover(PROVIDER_GROUP)  # read once, then kept while nothing changes

    info = site / "nproxy_latecomer-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nproxy-latecomer\nVersion: 0.0.1\n"
    )
    (info / "entry_points.txt").write_text("[nproxy.providers]\nlatecomer = nowhere:Nothing\n")
    # An install comes seconds after the last reading; a file system's clock may tick coarser
    # than this test, so the folder's time is moved on as that install would have moved it.
    stat = site.stat()
    os.utime(site, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    importlib.invalidate_caches()
    assert "latecomer" in discover(PROVIDER_GROUP)
