"""compose.yml's services started as compose starts them, and compose's ``${VAR:?}`` guards.

No Docker engine here, so the image is played from the Dockerfile: a fresh copy of the files it
COPYs into its WORKDIR, owned by root and not writable by the user the processes run as (an
unprivileged uid, as the image's ``USER``), the folders its ``install -d -o`` gives that user,
the user's home, and its ``ENV``. Each service's ``command`` runs exactly as compose.yml writes
it, in that WORKDIR, with the service's ``environment`` (its ``${...}`` filled from test
values); only what names compose's other containers (postgres, rabbitmq, redis, seaweedfs) is
pointed at the machine's own (a database, a RabbitMQ vhost, SeaweedFS, a fake Bot API), and
image paths are moved under the copy. Nothing is made by hand: each service must become
healthy by its own healthcheck, run as compose would run it.

Interpolation follows ``docker compose config``: ``${VAR:?msg}`` fails when VAR is unset or
empty, ``${VAR?msg}`` when unset, ``${VAR:-x}`` / ``${VAR-x}`` give defaults, ``$$`` is a ``$``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from pyramid.paster import get_appsettings

from conftest import ADMIN_URL
from fakes.telegram import FakeTelegram
from generation_support import rabbitmq_vhost
from nproxy_core import healthcheck
from nproxy_core.cli import main
from nproxy_core.config import ENVIRONMENT_OVERRIDES, configure, normalize_settings

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: The services this test starts, and the one that must exit 0 before the others start.
MIGRATE = "migrate"
LONG_RUNNING = ("web", "worker", "beat", "bot")
#: Variables without which the deployment cannot run: each must stop `docker compose config`.
REQUIRED_VARIABLES = {
    "NPROXY_DOMAIN",
    "NPROXY_PUBLIC_URL",
    "NPROXY_SECRET",
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "MAIL_DEFAULT_SENDER",
    "SMTP_HOST",
    "NOWPAYMENTS_API_KEY",
    "NOWPAYMENTS_IPN_SECRET",
    "TELEGRAM_BOT_TOKEN",
}
#: What a filled-in .env holds (every required variable, and the optional ones compose reads).
TEST_VALUES = {
    "NPROXY_DOMAIN": "nproxy.test",
    "NPROXY_PUBLIC_URL": "https://nproxy.test",
    "NPROXY_SECRET": "compose-test-secret-" + "z" * 40,
    "POSTGRES_PASSWORD": "postgres-password",
    "RABBITMQ_PASSWORD": "rabbitmq-password",
    "S3_ACCESS_KEY": "access",
    "S3_SECRET_KEY": "secret",
    "MAIL_DEFAULT_SENDER": "nproxy <no-reply@nproxy.test>",
    "SMTP_HOST": "127.0.0.1",
    "NOWPAYMENTS_API_KEY": "nowpayments-key",
    "NOWPAYMENTS_IPN_SECRET": "nowpayments-ipn",
    "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
}


# --- compose.yml and the Dockerfile, read ----------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yml").read_text())


class InterpolationError(Exception):
    pass


_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def _parse_reference(braced: str) -> tuple[str, str | None, str]:
    found = _BRACED.fullmatch(braced)
    if found is None:
        raise InterpolationError(f"invalid interpolation format: ${{{braced}}}")
    return found["name"], found["op"], found["arg"] or ""


def interpolate_text(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        name, op, arg = _parse_reference(match["braced"])
        value = env.get(name)
        unset, empty = value is None, not value
        if op is None:
            return value or ""
        if op in (":?", "?") and (empty if op == ":?" else unset):
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-"):
            return interpolate_text(arg, env) if (empty if op == ":-" else unset) else value
        if op in (":+", "+"):
            return "" if (empty if op == ":+" else unset) else interpolate_text(arg, env)
        return value or ""

    return _REFERENCE.sub(replace, text)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """compose.yml's values with the environment's variables in, as ``docker compose config``."""
    if isinstance(value, str):
        return interpolate_text(value, env)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def references(value: Any) -> list[tuple[str, str | None]]:
    """(variable, operator) of every ``${...}`` in compose.yml's values (not its comments)."""
    if isinstance(value, dict):
        return [found for item in value.values() for found in references(item)]
    if isinstance(value, list):
        return [found for item in value for found in references(item)]
    if not isinstance(value, str):
        return []
    found = []
    for match in _REFERENCE.finditer(value):
        if match["braced"] is not None:
            name, op, _ = _parse_reference(match["braced"])
            found.append((name, op))
        elif match["named"]:
            found.append((match["named"], None))
    return found


@dataclass
class Image:
    """What the Dockerfile makes: its files, user, writable folders, environment and check."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    home: str = "/root"
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    writable: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def dockerfile() -> Image:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = " \n".join(lines).replace("\\ \n", " ").replace("\\\n", " ").split(" \n")
    image = Image()
    for instruction in instructions:
        if not instruction.strip():
            continue
        keyword, _, rest = instruction.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "WORKDIR":
            image.workdir = rest.strip()
        elif keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                image.env[name] = value
        elif keyword == "COPY":
            *sources, destination = shlex.split(rest)
            image.copies.append((sources, destination))
        elif keyword == "USER":
            image.user = rest.strip()
        elif keyword == "HEALTHCHECK":
            image.healthcheck = json.loads(rest[rest.index("CMD") + 3 :].strip())
        elif keyword == "RUN":
            for command in rest.split("&&"):
                words = shlex.split(command)
                if words[:1] == ["useradd"] and "--create-home" in words:
                    image.home = f"/home/{words[-1]}"
                if words[:2] == ["install", "-d"]:
                    image.writable += [w for w in words[2:] if w.startswith("/")]
    return image


def healthcheck_command(service: str) -> list[str]:
    """What Docker runs to check ``service``: its own healthcheck, else the image's."""
    check = compose()["services"][service].get("healthcheck")
    test = check["test"] if check else ["CMD", *dockerfile().healthcheck]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    assert test[0] == "CMD", test
    return list(test[1:])


# --- the static checks ---------------------------------------------------------------------


def test_compose_interpolates_with_every_required_variable_set():
    config = interpolate(compose(), TEST_VALUES)
    assert "${" not in json.dumps(config)


@pytest.mark.parametrize("variable", sorted(REQUIRED_VARIABLES))
def test_a_required_variable_left_blank_or_unset_stops_compose_naming_it(variable):
    for env in (
        {**TEST_VALUES, variable: ""},
        {k: v for k, v in TEST_VALUES.items() if k != variable},
    ):
        with pytest.raises(InterpolationError, match=rf"required variable {variable} is missing"):
            interpolate(compose(), env)


def test_every_variable_compose_reads_is_guarded_or_has_a_default():
    found = references(compose())
    guarded = {name for name, op in found if op == ":?"}
    defaulted = {name for name, op in found if op in (":-", "-")}
    bare = {name for name, op in found if op not in (":?", ":-", "-")}
    # A bare ${VAR} of a guarded variable is checked by its guard; any other would become "".
    assert bare <= guarded, f"read without a guard or a default: {sorted(bare - guarded)}"
    assert guarded == REQUIRED_VARIABLES
    assert not defaulted & REQUIRED_VARIABLES
    # deploy/env.example names every variable compose reads.
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy/env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert guarded | defaulted <= example


def app_environment() -> dict[str, str]:
    """The environment compose gives the app's containers, with the test values."""
    environment = interpolate(compose(), TEST_VALUES)["services"]["web"]["environment"]
    return {name: str(value) for name, value in environment.items()}


def test_the_app_starts_on_what_compose_guarantees(monkeypatch):
    # Only compose's `environment:` (env_file's optional values left out): if the app needed
    # anything else, a blank .env would pass `docker compose config` and fail at start.
    for name in ENVIRONMENT_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    environment = app_environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = get_appsettings(str(ROOT / "production.ini"))
    settings["jinja2.directories"] = str(ROOT / "templates")
    registry = configure(settings).registry
    assert registry.settings["telegram.bot_token"] == TEST_VALUES["TELEGRAM_BOT_TOKEN"]
    assert registry.settings["mail.default_sender"] == TEST_VALUES["MAIL_DEFAULT_SENDER"]
    # Every other variable the app reads is listed for the operator, but those the image sets
    # (an empty line in .env would blank them).
    example = (ROOT / "deploy/env.example").read_text()
    for name in set(ENVIRONMENT_OVERRIDES) - set(environment) - set(dockerfile().env):
        assert re.search(rf"(?m)^{name}=", example), f"{name} missing from deploy/env.example"


def test_what_operators_change_comes_from_the_environment():
    base = {
        "sqlalchemy.url": "postgresql+psycopg://x/y",
        "nproxy.secret": "s" * 40,
        "nproxy.public_url": "https://nproxy.test",
    }
    environ = {
        "NPROXY_PROVIDERS": "demo nanobanana",
        "NPROXY_PAYMENTS": "demo",
        "MAIL_DEFAULT_SENDER": "Shop <shop@nproxy.test>",
        "NANOBANANA_API_BASE": "http://127.0.0.1:1/v1beta",
        "NOWPAYMENTS_API_BASE": "https://api-sandbox.nowpayments.io/v1",
        "TELEGRAM_API_BASE": "http://127.0.0.1:2",
        "NPROXY_STATE_DIR": "/srv/state",
    }
    settings = normalize_settings(base, environ)
    for name, value in environ.items():
        assert settings[ENVIRONMENT_OVERRIDES[name]] == value
    # No sender that only a rebuild could change.
    assert "example.com" not in (ROOT / "production.ini").read_text()


def test_the_state_folder_is_the_users_own_unless_set(tmp_path):
    base = {
        "sqlalchemy.url": "sqlite://",
        "nproxy.secret": "s" * 40,
        "nproxy.public_url": "http://x",
    }
    home = normalize_settings(base, {"HOME": "/home/someone"})["nproxy.state_dir"]
    assert home == "/home/someone/.local/state/nproxy"
    xdg = normalize_settings(base, {"HOME": "/h", "XDG_STATE_HOME": "/x"})["nproxy.state_dir"]
    assert xdg == "/x/nproxy"
    assert normalize_settings(base, {"NPROXY_STATE_DIR": "/s"})["nproxy.state_dir"] == "/s"

    from nproxy_core.cli.commands import beat_schedule_file

    state = tmp_path / "not" / "yet"
    path = beat_schedule_file({"nproxy.state_dir": str(state)})
    assert path == str(state / "celerybeat-schedule")
    assert state.is_dir()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(Exception, match="NPROXY_STATE_DIR"):
        beat_schedule_file({"nproxy.state_dir": str(blocked / "state")})


def test_every_image_is_pinned():
    image = dockerfile()
    first = (ROOT / "Dockerfile").read_text().split("FROM ", 1)[1].split()[0]
    assert re.fullmatch(r"python:3\.11[\w.-]*", first), first
    assert image.user != "root"
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        repository, _, tag = service["image"].rpartition(":")
        assert repository and re.match(r"\d+\.\d+", tag), (
            f"{name}: {service['image']} is not pinned"
        )


def test_each_service_has_its_own_healthcheck():
    services = compose()["services"]
    image = dockerfile()
    assert image.healthcheck == ["nproxy", "health", "web"]
    assert services[MIGRATE]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["web"]  # the image's: /healthz
    for name in ("worker", "beat", "bot"):
        assert healthcheck_command(name) == ["nproxy", "health", name]
    # No other service of the image inherits the web check.
    for name, service in services.items():
        if "build" in service and name != "web":
            assert "healthcheck" in service, f"{name} would inherit the web healthcheck"


def test_every_folder_an_app_service_mounts_belongs_to_the_apps_user():
    # A new named volume takes the owner of the folder it is mounted on: a folder the image
    # does not give its user is root's, and the service cannot write its volume.
    writable = dockerfile().writable
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        for volume in service.get("volumes", []):
            target = volume.split(":")[1]
            assert target in writable, f"{name}: {target} is not the app user's in the image"


def test_a_heartbeat_is_fresh_stale_or_missing(tmp_path):
    path = tmp_path / "state" / "worker.heartbeat"
    assert healthcheck.check(path)[0] is False
    beat = healthcheck.HeartbeatFile(path)
    beat.beat()
    healthy, line = healthcheck.check(path)
    assert healthy and line.startswith("alive")
    healthy, line = healthcheck.check(path, max_age=30, now=time.time() + 31)
    assert not healthy and "stale after 30 s" in line
    beat.remove()
    assert not path.exists()


def test_nproxy_health_answers_in_one_line_and_its_exit_code(tmp_path, monkeypatch):
    ini = tmp_path / "health.ini"
    ini.write_text(
        "[app:main]\nuse = egg:nproxy\nsqlalchemy.url = sqlite://\n"
        f"nproxy.secret = {'s' * 40}\nnproxy.public_url = http://x\n"
        f"nproxy.state_dir = {tmp_path}\n"
    )
    monkeypatch.delenv("NPROXY_STATE_DIR", raising=False)
    runner = CliRunner()
    stale = runner.invoke(main, ["-c", str(ini), "health", "beat"])
    assert stale.exit_code == 1
    assert len(stale.output.strip().splitlines()) == 1
    assert stale.output.startswith("beat: no heartbeat")
    healthcheck.HeartbeatFile(tmp_path / "beat.heartbeat").beat()
    fresh = runner.invoke(main, ["-c", str(ini), "health", "beat"])
    assert fresh.exit_code == 0, fresh.output
    # NPROXY_STATE_DIR wins over the ini, as for every process.
    monkeypatch.setenv("NPROXY_STATE_DIR", str(tmp_path / "elsewhere"))
    assert runner.invoke(main, ["-c", str(ini), "health", "beat"]).exit_code == 1
    monkeypatch.setenv("WEB_BIND", f"127.0.0.1:{free_port()}")
    web = runner.invoke(main, ["health", "web"])
    assert web.exit_code == 1
    assert web.output.startswith("web: no answer from http://127.0.0.1:")


# --- the services, started --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: The user the processes run as: an unprivileged uid when the suite runs as root.
UNPRIVILEGED = 65534
RUN_AS = (
    ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups"]
    if os.geteuid() == 0
    else []
)


class Layout:
    """The image's files under ``root``: WORKDIR's copies read-only, the user's folders theirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.image = dockerfile()
        workdir = self.at(self.image.workdir)
        workdir.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for sources, destination in self.image.copies:
            # Docker's COPY: a folder's contents go into the destination; files into it when it
            # ends with "/" (or several are copied), else to that name.
            target = workdir / destination
            into = destination.endswith("/") or len(sources) > 1
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    (target if into else target.parent).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name if into else target)
        self._read_only(workdir)
        for folder in (self.image.home, *self.image.writable):
            path = self.at(folder)
            path.mkdir(parents=True)
            if RUN_AS:
                os.chown(path, UNPRIVILEGED, UNPRIVILEGED)

    def at(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def _read_only(self, top: Path) -> None:
        # Root's files (the suite runs as root); otherwise read-only even for their owner.
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = Path(folder, name)
                path.chmod(path.stat().st_mode & 0o555)
            Path(folder).chmod(0o555 if not RUN_AS else 0o755)

    def relocate(self, value: str) -> str:
        """An image path in a value, moved under the copy."""
        for image_path in (self.image.workdir, self.image.home, *self.image.writable):
            if value == image_path or value.startswith(image_path.rstrip("/") + "/"):
                return str(self.root) + value
        return value

    def environment(self, service_env: dict[str, str]) -> dict[str, str]:
        """What a process of the image sees: the image's ENV, then the service's."""
        env = {
            # The image installs the package (pip install -e /app); here the copy's sources
            # come first on the path, the venv gives the dependencies and the scripts.
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(self.at(self.image.workdir) / "src"),
            "HOME": str(self.at(self.image.home)),
            "LANG": "C.UTF-8",
        }
        for name, value in {**self.image.env, **service_env}.items():
            env[name] = self.relocate(value)
        return env

    def clean_up(self) -> None:
        for folder, _dirs, _files in os.walk(self.root.parent):
            with contextlib.suppress(OSError):
                Path(folder).chmod(0o755)
        shutil.rmtree(self.root.parent, ignore_errors=True)


def let_the_user_reach_the_venv() -> None:
    """The venv (and the interpreter it links to, e.g. pyenv's under /root) must be usable by
    the unprivileged user, as the image's Python is by its user: folders on the way that
    others cannot enter are opened for entering only (o+x: no listing, no file's mode
    changes)."""
    if not RUN_AS:
        return
    for target in (Path(sys.executable).resolve(), VENV_BIN):
        for folder in reversed(target.parents):
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod(mode | 0o001)


@pytest.fixture(scope="module")
def layout() -> Iterator[Layout]:
    let_the_user_reach_the_venv()
    # Not under pytest's own temporary folder: that one is its user's alone (0700).
    root = Path(tempfile.mkdtemp(prefix="nproxy-image-"))
    root.chmod(0o755)
    made = Layout(root / "rootfs")
    probe = subprocess.run(
        [*RUN_AS, "python", "-c", "import sys, nproxy_core as n; print(sys.version_info[:3], n)"],
        env=made.environment({}),
        cwd=made.at(made.image.workdir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The same interpreter, and the copy's code (the venv's editable install points elsewhere).
    expected = f"{sys.version_info[:3]} <module 'nproxy_core' from '{made.at('/app/src')}"
    if probe.returncode != 0 or not probe.stdout.startswith(expected):
        made.clean_up()
        pytest.fail(
            f"the venv's Python is not usable by uid {UNPRIVILEGED}: {probe.stdout}"
            f"{probe.stderr[-2000:]}"
        )
    yield made
    made.clean_up()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"nproxy_compose_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with rabbitmq_vhost(f"nproxy_compose_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TEST_VALUES["TELEGRAM_BOT_TOKEN"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def deployment(layout, database, broker, s3_server, telegram) -> Deployment:
    return Deployment(layout, database, broker, s3_server, telegram)


class Deployment:
    """compose.yml's app services on this machine's services."""

    def __init__(self, layout: Layout, database: str, broker: str, s3: Any, telegram: Any) -> None:
        self.layout = layout
        self.logs = layout.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.values = {
            **TEST_VALUES,
            "S3_ACCESS_KEY": s3.access_key,
            "S3_SECRET_KEY": s3.secret_key,
            "S3_BUCKET": s3.new_bucket(),
        }
        # What names compose's own containers, pointed at this machine's services.
        self.local = {
            "DATABASE_URL": ("postgres:5432", database),
            "BROKER_URL": ("rabbitmq:5672", broker),
            "RATELIMIT_STORAGE_URL": ("redis:6379", "redis://127.0.0.1:6379/0"),
            "S3_ENDPOINT_URL": ("seaweedfs:8333", s3.endpoint_url),
        }
        # Optional variables an operator's .env may hold (env_file): the fake Bot API, and no
        # call to the real payment provider from the periodic jobs.
        self.env_file = {
            "TELEGRAM_API_BASE": telegram.api_base,
            "NOWPAYMENTS_API_BASE": "http://127.0.0.1:9/v1",
        }
        self.web_bind = f"127.0.0.1:{free_port()}"

    def service(self, name: str) -> dict[str, Any]:
        return interpolate(compose(), self.values)["services"][name]

    def environment(self, name: str, **changes: str) -> dict[str, str]:
        service_env = {k: str(v) for k, v in self.service(name)["environment"].items()}
        for variable, (compose_address, local) in self.local.items():
            assert compose_address in service_env[variable], (variable, service_env[variable])
            service_env[variable] = local
        # gunicorn.conf.py's WEB_BIND (default 0.0.0.0:8000): a free port of this machine.
        return self.layout.environment(
            {**self.env_file, **service_env, "WEB_BIND": self.web_bind, **changes}
        )

    def start(self, name: str, **changes: str) -> Service:
        return Service(
            name,
            self.service(name)["command"],
            self.environment(name, **changes),
            cwd=self.layout.at(self.layout.image.workdir),
            log=self.logs / f"{name}.log",
        )

    def healthy(self, name: str) -> subprocess.CompletedProcess[str]:
        """The service's healthcheck, run as Docker runs it in the container."""
        return subprocess.run(
            [*RUN_AS, *healthcheck_command(name)],
            env=self.environment(name),
            cwd=self.layout.at(self.layout.image.workdir),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def state_file(self, name: str) -> Path:
        return Path(self.layout.relocate(self.layout.image.env["NPROXY_STATE_DIR"])) / name


class Service:
    """One service's command, as compose runs it, as the image's unprivileged user."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name = name
        self.log_path = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [*RUN_AS, *command],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs after {timeout} s:\n{self.log()}"
            ) from None

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


@pytest.mark.slow
def test_every_service_starts_as_compose_runs_it_and_becomes_healthy(deployment):
    migrate = deployment.start(MIGRATE)
    assert migrate.wait(timeout=300) == 0, migrate.log()

    services = {name: deployment.start(name) for name in LONG_RUNNING}
    try:
        waiting = set(LONG_RUNNING)
        answers: dict[str, str] = {}
        deadline = time.monotonic() + 300
        with ThreadPoolExecutor(len(LONG_RUNNING)) as pool:
            while waiting and time.monotonic() < deadline:
                for name in waiting:
                    code = services[name].popen.poll()
                    assert code is None, f"{name} exited with {code}:\n{services[name].log()}"
                checks = {name: pool.submit(deployment.healthy, name) for name in waiting}
                for name, check in checks.items():
                    result = check.result()
                    answers[name] = (result.stdout + result.stderr).strip()
                    if result.returncode == 0:
                        waiting.discard(name)
                if waiting:
                    time.sleep(0.5)
        assert not waiting, "\n\n".join(
            f"{name} is not healthy: {answers.get(name)}\n{services[name].log()}"
            for name in sorted(waiting)
        )
        # Each check says one line.
        for name in LONG_RUNNING:
            assert len(answers[name].splitlines()) == 1, answers[name]
    finally:
        for service in services.values():
            service.stop()
    # A clean stop takes the heartbeat with it: the next check says the process is gone.
    for name in ("worker", "beat", "bot"):
        assert not deployment.state_file(f"{name}.heartbeat").exists(), name
    # Beat kept its schedule in the state folder.
    assert list(deployment.state_file("").glob("celerybeat-schedule*"))


@pytest.mark.slow
def test_gunicorn_stops_with_one_line_on_a_configuration_error(deployment):
    # A typo in a plugin's setting, from the environment as an operator would make it.
    web = deployment.start("web", NOWPAYMENTS_API_BASE="api.nowpayments.io/v1")
    code = web.wait(timeout=120)
    output = web.log(lines=200)
    assert code != 0
    assert "Traceback" not in output
    assert "Booting worker" not in output and "Listening at" not in output
    errors = [line for line in output.splitlines() if "configuration error" in line]
    assert len(errors) == 1, output
    assert "nowpayments.api_base" in errors[0]
