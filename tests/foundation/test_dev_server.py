"""``nproxy dev`` on the embedded defaults of development.ini: SQLite, local files, the demo
plugins and an in-process worker. A person registers, pays and gets images, with nothing else
running."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cli_runner import NPROXY
from fakes.proxies import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_dev(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """``nproxy dev`` on development.ini as shipped (its var/ folder in ``tmp_path``), with
    ``env`` added to the environment; a client once it answers."""
    ini = tmp_path / "development.ini"
    text = (ROOT / "development.ini").read_text()
    ini.write_text(text.replace("%(here)s/templates", str(ROOT / "templates")))
    port = free_port()
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [*NPROXY, "-c", str(ini), "dev", "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, (tmp_path / "dev.log").read_text()
        assert time.monotonic() < deadline, "nproxy dev did not answer within 60 s"
        time.sleep(0.3)
    try:
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def dev_server(tmp_path):
    with running_dev(tmp_path) as client:
        yield client
    assert (tmp_path / "var" / "nproxy.sqlite").exists()
    # Everything it keeps is under var/: nothing is left in the folder it was started from.
    assert {p.name for p in tmp_path.iterdir()} == {"development.ini", "dev.log", "var"}


def test_the_customer_bot_answers_when_its_token_is_set(tmp_path):
    from customerbot.conftest import Chat
    from fakes.telegram import FakeTelegram

    with FakeTelegram() as telegram:
        env = {
            "TELEGRAM_CUSTOMER_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE": telegram.api_base,
        }
        with running_dev(tmp_path, env):
            answer = Chat(telegram, 5001, "ada").say("/start", contains="Welcome")
    assert "account is ready" in answer.text
    assert "customer bot is polling" in (tmp_path / "dev.log").read_text()


def wait_for_terminal(client: httpx.Client, generation_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/generations/{generation_id}").json()
        if body["status"] in ("succeeded", "partial", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"generation {generation_id} did not finish: {body}")


@pytest.mark.slow
def test_register_pay_and_generate_on_the_embedded_default(dev_server):
    client = dev_server
    assert "Make images from words" in client.get("/").text
    token = client.get("/api/v1/session").json()["csrf_token"]
    headers = {"X-CSRF-Token": token}
    res = client.post(
        "/api/v1/auth/register",
        json={"email": "dev@example.com", "password": "a good password"},
        headers=headers,
    )
    assert res.status_code == 201
    headers = {"X-CSRF-Token": res.json()["csrf_token"]}

    checkout = client.post("/api/v1/billing/checkout", json={"processor": "demo"}, headers=headers)
    assert checkout.status_code == 201
    url = checkout.json()["checkout_url"]
    assert url.startswith(str(client.base_url))
    paid = client.post(url, data={"csrf_token": headers["X-CSRF-Token"], "outcome": "paid"})
    assert paid.status_code == 303
    me = client.get("/api/v1/me").json()
    assert me["subscription"]["status"] == "active"
    assert me["quota"]["bucket"] == 100

    conversation = client.post("/api/v1/conversations", json={}, headers=headers).json()
    submitted = client.post(
        f"/api/v1/conversations/{conversation['id']}/generations",
        json={
            "mode": "text_to_image",
            "prompt": "a red fox",
            "resolution": "square",
            "batch_size": 2,
        },
        headers=headers,
    )
    assert submitted.status_code == 202
    done = wait_for_terminal(client, submitted.json()["id"])
    assert done["status"] == "succeeded" and len(done["images"]) == 2
    image = client.get(done["images"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(buffer, "PNG")
    upload = client.post(
        "/api/v1/uploads",
        files={"file": ("in.png", buffer.getvalue(), "image/png")},
        headers=headers,
    )
    assert upload.status_code == 201
    submitted = client.post(
        f"/api/v1/conversations/{conversation['id']}/generations",
        json={
            "mode": "image_to_image",
            "prompt": "make it red",
            "resolution": "square",
            "batch_size": 1,
            "strength": 0.5,
            "input_upload_ids": [upload.json()["id"]],
        },
        headers=headers,
    )
    assert submitted.status_code == 202
    assert wait_for_terminal(client, submitted.json()["id"])["status"] == "succeeded"
