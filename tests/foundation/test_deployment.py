"""compose.yml, the Dockerfile and production.ini, checked statically (no Docker engine here),
and every process they start shown to exist as a plain command."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner
from pyramid.paster import get_appsettings

from nproxy_core.cli import load_commands, main
from nproxy_core.config import ENVIRONMENT_OVERRIDES, configure

ROOT = Path(__file__).resolve().parents[2]
SECRET_WORDS = ("secret", "password", "api_key", "token", "access_key")
#: How production serves the web app: gunicorn with the repository's settings.
WEB_COMMAND = ["gunicorn", "--config", "gunicorn.conf.py", "--paste", "production.ini"]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yml").read_text())


def test_compose_has_every_process_and_service():
    services = compose()["services"]
    assert {
        "web",
        "worker",
        "beat",
        "bot",
        "migrate",
        "postgres",
        "rabbitmq",
        "caddy",
        "backup",
    } <= set(services)
    # Long polling: a second bot would steal the first one's updates.
    assert services["bot"]["command"] == ["nproxy", "bot"]
    assert services["bot"].get("deploy", {}).get("replicas", 1) == 1
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_every_compose_command_exists_here():
    for name, service in compose()["services"].items():
        if service.get("build") != ".":
            continue
        command = service["command"]
        # A shell joins commands with && (migrate: upgrade, then check): each is checked.
        if command[:2] == ["sh", "-c"]:
            commands = [shlex.split(part) for part in command[2].split("&&")]
        else:
            commands = [command]
        for words in commands:
            if words[0] == "nproxy":
                group = main
                load_commands()  # the features' commands join as they are asked for
                for word in words[1:]:
                    assert word in group.commands, f"{name}: nproxy {word} does not exist"
                    group = group.commands[word]
                    if not hasattr(group, "commands"):
                        break
            else:
                assert words == WEB_COMMAND, name
    # The commands answer --help as plain processes.
    for args in (
        ["worker", "--help"],
        ["beat", "--help"],
        ["bot", "--help"],
        ["db", "upgrade", "--help"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output


def test_compose_holds_no_secret_values():
    text = (ROOT / "compose.yml").read_text()
    for match in re.finditer(r"(?im)^\s*([A-Z_]*(PASSWORD|SECRET|KEY)[A-Z_]*):\s*(.+)$", text):
        assert match.group(3).startswith("${"), match.group(0)


def test_dockerfile_copies_what_exists_and_runs_the_web_app():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0].startswith("FROM python:3.11")
    for line in lines:
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    cmd = [line for line in lines if line.startswith("CMD [")][-1]
    assert json.loads(cmd[3:].strip()) == WEB_COMMAND


def test_production_ini_holds_no_secret_and_starts_from_the_environment(monkeypatch, database):
    settings = get_appsettings(str(ROOT / "production.ini"))
    for key, value in settings.items():
        if any(word in key for word in SECRET_WORDS):
            assert not value, f"{key} has a value in production.ini"
    assert settings["nproxy.env"] == "production"
    # With the environment a deployment provides, it starts.
    env = {
        "DATABASE_URL": database,
        "NPROXY_SECRET": "s" * 48,
        "NPROXY_PUBLIC_URL": "https://nproxy.example",
        "S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "S3_BUCKET": "nproxy",
        "S3_ACCESS_KEY": "access",
        "S3_SECRET_KEY": "secret",
        "NOWPAYMENTS_API_KEY": "key",
        "NOWPAYMENTS_IPN_SECRET": "ipn",
        "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "SMTP_HOST": "127.0.0.1",
    }
    assert set(env) <= set(ENVIRONMENT_OVERRIDES)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings["jinja2.directories"] = str(ROOT / "templates")
    configure(settings).make_wsgi_app()


def test_gunicorn_settings_hold_many_waiting_requests_and_restart_gracefully():
    import runpy

    from gunicorn.config import Config

    config = Config()
    for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    assert config.worker_class_str == "gthread"
    # Held polls and API waits each take a thread while they wait (DESIGN 4.4, 4.10).
    assert config.workers * config.threads >= 500
    assert config.graceful_timeout >= 10
    assert config.keepalive > 60  # longer than the proxy's idle keep-alive
    assert callable(config.child_exit)  # metrics of exited workers (prometheus multiprocess)
    assert (ROOT / "production.ini").read_text().count("use = egg:gunicorn#main") == 1
