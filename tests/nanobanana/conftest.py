"""Fixtures for the Nano Banana provider tests: the fake Gemini server and a real HTTP proxy."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The shared fakes live in tests/fakes; test folders have no __init__.py, so put tests/ on the
# path (a root conftest or ``pythonpath = ["src", "tests"]`` in pyproject would make this moot).
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from fakes.gemini import FakeGemini, fake_gemini  # noqa: E402
from nproxy_provider_nanobanana import NanoBananaProvider  # noqa: E402


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def make_provider(fake: FakeGemini) -> Iterator[Callable[..., NanoBananaProvider]]:
    """Build providers pointed at the fake; extra settings by full name. All are closed after."""
    made: list[NanoBananaProvider] = []

    def make(settings: dict[str, Any] | None = None) -> NanoBananaProvider:
        provider = NanoBananaProvider({"nanobanana.api_base": fake.base_url, **(settings or {})})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., NanoBananaProvider]) -> NanoBananaProvider:
    return make_provider()


def _free_port() -> int:
    """A port nothing listens on (bound and released; good enough on a test machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    """A closed port on 127.0.0.1: connecting to it is refused."""
    return _free_port()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.py exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"proxy.py did not listen on port {port} within {timeout} s")


@pytest.fixture
def http_proxy(tmp_path: Path) -> Iterator[str]:
    """A real forwarding HTTP proxy (PyPI ``proxy.py``) in a subprocess; yields its URL."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
