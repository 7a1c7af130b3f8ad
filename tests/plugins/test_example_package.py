"""docs/plugins.md's example, as an integrator follows it: build docs/example as a package,
pip-install it into a fresh virtual environment, enable it in the ini, and make an image
through the chat API and one through ``/v1/generate``, paid with its own payment processor;
and its own conformance tests, run as the doc says.

The fresh environment reaches nproxy (and nproxy's dependencies) the way
``python -m venv --system-site-packages`` reaches a system's packages: a path file adds the
environment this test runs in, where nproxy is installed from the checkout. The example itself
is built from its folder and installed into the fresh environment with
``pip install --no-deps --no-build-isolation`` (no network needed).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import venv
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fakes.proxies import free_port

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: How the fresh environment runs the ``nproxy`` command (its console script lives in the
#: environment nproxy was installed into; this is the same entry point).
NPROXY = ["-c", "import sys; from nproxy_core.cli import main; sys.argv[0] = 'nproxy'; main()"]


def ini_of_the_doc() -> str:
    """The plugin lines of docs/plugins.md's walk-through ini, as the doc shows them."""
    blocks = re.findall(r"```ini\n(.*?)```", (ROOT / "docs" / "plugins.md").read_text(), re.S)
    return next(b for b in blocks if "nproxy.providers = example" in b)


def run(python: Path, *args: str, stdin: str = "", cwd: Path | None = None, timeout: float = 180):
    result = subprocess.run(
        [str(python), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{url} did not answer: {log.read_text()}"
        time.sleep(0.3)


@pytest.fixture
def fresh_env(tmp_path) -> Path:
    """A new virtual environment with pip, which sees nproxy's environment, and the example
    built and installed into it; yields its python."""
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    own_site = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    # Where nproxy (and so its dependencies) is installed in the environment running this.
    nproxy_site = str(metadata.distribution("nproxy").locate_file(""))
    (own_site / "nproxy-environment.pth").write_text(
        f"import site; site.addsitedir({nproxy_site!r})\n"
    )
    # A copy, so the build leaves nothing in the checkout.
    source = tmp_path / "nproxy-example"
    shutil.copytree(ROOT / "docs" / "example", source)
    run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        str(source),
    )
    # Installed into the fresh environment, not found through the linked one.
    shown = run(python, "-m", "pip", "show", "-f", "nproxy-example").stdout
    assert f"Location: {own_site}" in shown
    return python


def test_the_example_passes_the_conformance_kit_as_the_doc_runs_it(fresh_env, tmp_path):
    # "python -m pytest tests/" in the package folder, in the fresh environment.
    result = subprocess.run(
        [str(fresh_env), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/"],
        cwd=tmp_path / "nproxy-example",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "22 passed" in result.stdout, result.stdout


def test_the_example_package_works_end_to_end(fresh_env, tmp_path):
    python = fresh_env
    # The Example API the plugins talk to, from the installed package.
    api_port, app_port = free_port(), free_port()
    api_log = tmp_path / "api.log"
    api = subprocess.Popen(
        [
            str(python),
            "-m",
            "nproxy_example.server",
            "--port",
            str(api_port),
            "--webhook-secret",
            "walkthrough-webhook-secret",
        ],
        stdout=api_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    app = None
    try:
        wait_for(f"http://127.0.0.1:{api_port}/payments/none", api, api_log)

        # The ini of docs/plugins.md: development.ini with the example enabled.
        ini = tmp_path / "example.ini"
        text = (ROOT / "development.ini").read_text()
        text = text.replace("%(here)s/templates", str(ROOT / "templates"))
        # Its plugin lines, replaced by the doc's (with this run's port for the Example API).
        for line in ("nproxy.providers = demo\n", "nproxy.payments = demo\n"):
            assert line in text
            text = text.replace(line, "")
        text = text.replace(
            "[app:main]\n", "[app:main]\n" + ini_of_the_doc().replace(":8765", f":{api_port}"), 1
        )
        ini.write_text(text)

        listed = run(python, *NPROXY, "-c", str(ini), "plugins", cwd=tmp_path).stdout
        for line in listed.splitlines():
            if line.strip().startswith("example"):
                assert "enabled" in line and "nproxy-example" in line, listed
        assert sum(line.strip().startswith("example") for line in listed.splitlines()) == 2

        run(python, *NPROXY, "-c", str(ini), "db", "upgrade", cwd=tmp_path)
        run(
            python,
            *NPROXY,
            "-c",
            str(ini),
            "keys",
            "add",
            "--provider",
            "example",
            stdin="walkthrough-image-key\n",
            cwd=tmp_path,
        )

        app_log = tmp_path / "app.log"
        app = subprocess.Popen(
            [str(python), *NPROXY, "-c", str(ini), "dev", "--port", str(app_port)],
            cwd=tmp_path,
            stdout=app_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{app_port}"
        wait_for(f"{base}/healthz", app, app_log)
        client = httpx.Client(base_url=base, trust_env=False, timeout=30)

        token = client.get("/api/v1/session").json()["csrf_token"]
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": "integrator@example.com", "password": "a good password"},
            headers={"X-CSRF-Token": token},
        )
        assert registered.status_code == 201, registered.text
        headers = {"X-CSRF-Token": registered.json()["csrf_token"]}

        # Pay with Example Pay: the checkout is Example Pay's page; paying there sends the
        # signed notification to nproxy, which activates the plan.
        checkout = client.post(
            "/api/v1/billing/checkout", json={"processor": "example"}, headers=headers
        )
        assert checkout.status_code == 201, checkout.text
        url = checkout.json()["checkout_url"]
        assert url.startswith(f"http://127.0.0.1:{api_port}/pay/chk_")
        page = httpx.get(url, trust_env=False, timeout=30)
        assert page.status_code == 200 and "Example Pay" in page.text
        paid = httpx.post(url, trust_env=False, timeout=30)
        assert paid.status_code == 303, api_log.read_text()
        assert paid.headers["location"].startswith(base), paid.headers
        me = client.get("/api/v1/me").json()
        assert me["subscription"]["status"] == "active", me

        # An image through the chat API.
        conversation = client.post("/api/v1/conversations", json={}, headers=headers).json()
        submitted = client.post(
            f"/api/v1/conversations/{conversation['id']}/generations",
            json={
                "mode": "text_to_image",
                "prompt": "a lighthouse",
                "resolution": "wide",
                "batch_size": 1,
                "provider": "example",
                "model": "example-1",
            },
            headers=headers,
        )
        assert submitted.status_code == 202, submitted.text
        done = finished(client, f"/api/v1/generations/{submitted.json()['id']}")
        assert done["status"] == "succeeded", done
        image = client.get(done["images"][0]["url"])
        assert Image.open(io.BytesIO(image.content)).size == (768, 432)

        # An image through the developer API, with an API key.
        created = client.post("/api/v1/api-keys", json={"name": "walkthrough"}, headers=headers)
        assert created.status_code == 201, created.text
        developer = httpx.Client(
            base_url=base,
            trust_env=False,
            timeout=90,
            headers={"Authorization": f"Bearer {created.json()['key']}"},
        )
        answer = developer.post("/v1/generate", json={"prompt": "a harbour", "size": "1024x1024"})
        assert answer.status_code in (200, 202), answer.text
        body = answer.json()
        if body["status"] != "succeeded":
            body = finished(developer, f"/v1/generations/{body['id']}")
        assert body["status"] == "succeeded", body
        fetched = httpx.get(body["images"][0]["url"], trust_env=False, timeout=30)
        assert Image.open(io.BytesIO(fetched.content)).size == (512, 512)
    finally:
        for process in (app, api):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


def finished(client: httpx.Client, url: str) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in ("succeeded", "partial", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"{url} did not finish: {json.dumps(body)}")
