"""Start-up refuses missing or malformed settings with one line naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nproxy_core.config import ConfigurationError, configure, normalize_settings


@pytest.mark.parametrize("name", ["sqlalchemy.url", "nproxy.secret", "nproxy.public_url"])
def test_missing_required_setting_names_it(base_settings, name):
    settings = {k: v for k, v in base_settings.items() if k != name}
    with pytest.raises(ConfigurationError, match=name.replace(".", r"\.")):
        normalize_settings(settings, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nproxy.public_url", "localhost:6543"),
        ("nproxy.plan.request_limit", "many"),
        ("nproxy.plan.request_limit", "0"),
        ("nproxy.keypool.cooldown_seconds", "-5"),
        ("nproxy.storage", "ftp"),
        ("nproxy.env", "staging"),
        ("nproxy.ratelimit.login", "lots"),
        ("nproxy.worker.concurrency", "0"),
        ("nproxy.worker.concurrency", "lots"),
    ],
)
def test_malformed_setting_names_it(base_settings, name, value, database):
    with pytest.raises(ConfigurationError, match=name.replace(".", r"\.")):
        configure({**base_settings, name: value})


def test_production_wants_a_long_secret_and_no_demo(base_settings, database):
    prod = {**base_settings, "nproxy.env": "production"}
    with pytest.raises(ConfigurationError, match=r"nproxy\.secret"):
        normalize_settings({**prod, "nproxy.secret": "short"}, environ={})
    with pytest.raises(ConfigurationError, match="demo"):
        configure(prod)
    configure({**prod, "nproxy.allow_demo": "true"})


def test_environment_overrides_the_ini(base_settings):
    settings = normalize_settings(
        base_settings,
        environ={"NPROXY_SECRET": "from-the-environment-" + "y" * 20, "DATABASE_URL": "sqlite://"},
    )
    assert settings["nproxy.secret"].startswith("from-the-environment-")
    assert settings["sqlalchemy.url"] == "sqlite://"


def test_unknown_plugin_stops_start_up(base_settings, database):
    with pytest.raises(ConfigurationError, match="unknown plugin 'nope'"):
        configure({**base_settings, "nproxy.providers": "demo nope"})


def test_paste_factory_exits_with_one_line(base_settings):
    settings = {k: v for k, v in base_settings.items() if k != "nproxy.secret"}
    code = f"import nproxy_core, sys\nnproxy_core.main({{}}, **{settings!r})\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"PATH": ""}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "nproxy: configuration error: missing required setting 'nproxy.secret'"
    )


def test_the_served_app_keeps_its_start_up_out_of_full_collections(base_settings, database):
    code = (
        "import gc, nproxy_core\n"
        f"nproxy_core.main({{}}, **{base_settings!r})\n"
        "print(gc.get_freeze_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"PATH": ""}
    )
    assert result.returncode == 0, result.stderr
    # Everything start-up made: tens of thousands of objects (models, routes, views, plugins).
    assert int(result.stdout.split()[-1]) > 10_000


def test_the_worker_runs_as_many_tasks_at_once_as_the_concurrency_setting_says(
    base_settings, database
):
    from nproxy_core.tasks import CELERY_APP

    default = configure(base_settings).registry[CELERY_APP].conf
    assert (default.worker_pool, default.worker_concurrency) == ("threads", 256)
    chosen = configure({**base_settings, "nproxy.worker.concurrency": "512"})
    assert chosen.registry[CELERY_APP].conf.worker_concurrency == 512
