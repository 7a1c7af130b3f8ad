"""The conformance kit fails plugins that break the contract: a 401 mapped to retryable, and
state shared between concurrent calls. Each broken plugin differs from a correct one in that
one respect, and the correct one passes the same checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fakes.gemini import make_png
from nproxy_core.plugins import (
    AttemptResult,
    ContentPolicyError,
    GeneratedImage,
    ImageRequest,
    InvalidInputError,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    OutOfFundsError,
    Provider,
    RateLimit,
    RetryableError,
    TransportError,
)
from nproxy_core.plugins.testing import Case, ProviderConformance, run_conformance

#: What the imaginary remote API answers for a key starting with each word.
STATUS_BY_KEY = {
    "unauthorized": 401,
    "forbidden": 403,
    "ratelimited": 429,
    "nofunds": 402,
    "badrequest": 400,
    "content": 451,
    "servererror": 503,
    "slow": None,
}


def remote_answer(api_key: str, request: ImageRequest) -> tuple[int, bytes]:
    """A stand-in for a remote image API: an HTTP-like status, and an image that depends on
    the prompt (so a mixed-up answer shows)."""
    word = api_key.split("-", 1)[0]
    if word == "slow":
        raise TimeoutError("read timed out")
    status = STATUS_BY_KEY.get(word)
    if status is not None:
        return status, b""
    shade = sum(request.prompt.encode()) % 256
    return 200, make_png(8, 8, (shade, request.index % 256, 50))


class GoodProvider(Provider):
    """A correct provider over :func:`remote_answer`."""

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return [
            ModelCapabilities(
                model="good-1",
                modes=(Mode.TEXT_TO_IMAGE,),
                resolutions=("square",),
                label="Good",
                sizes={"square": (8, 8)},
                aspect_ratios={"square": "1:1"},
                usd_per_image={"square": Decimal("0.01")},
            )
        ]

    def classify(self, status: int) -> Exception:
        if status in (401, 403):
            return KeyRejectedError(f"the key was refused ({status})", http_status=status)
        if status == 429:
            return RetryableError(
                "rate limited", http_status=429, retry_after=5, rate_limit=RateLimit.SHORT
            )
        if status == 402:
            return OutOfFundsError("no credit left", http_status=402)
        if status == 451:
            return ContentPolicyError("refused on content grounds", http_status=400)
        if status == 400:
            return InvalidInputError("bad request", http_status=400)
        return RetryableError(f"server error {status}", http_status=status)

    def answer(self, request: ImageRequest, api_key: str) -> AttemptResult:
        try:
            status, data = remote_answer(api_key, request)
        except TimeoutError as exc:
            raise TransportError("no answer in time") from exc
        if status != 200:
            raise self.classify(status)
        return AttemptResult(GeneratedImage(data=data, mime="image/png", width=8, height=8))

    def generate(self, request, *, api_key, proxy_url=None):
        return self.answer(request, api_key)


class RetryOn401Provider(GoodProvider):
    """Broken: a 401 is 'probably temporary', so the pool would retry a dead key forever."""

    def classify(self, status: int) -> Exception:
        if status == 401:
            return RetryableError("unauthorized, will retry", http_status=401)
        return super().classify(status)


class SharedStateProvider(GoodProvider):
    """Broken: keeps the call's request on the instance, as a 'current request', and reads it
    back after the (slow) remote call, so concurrent calls answer each other's prompts."""

    def generate(self, request, *, api_key, proxy_url=None):
        self.current = request
        time.sleep(0.01)  # the remote call
        return self.answer(self.current, api_key)


class LockedStateProvider(SharedStateProvider):
    """The same shared attribute, made safe: one call at a time holds it."""

    lock: ClassVar[threading.Lock] = threading.Lock()

    def generate(self, request, *, api_key, proxy_url=None):
        with self.lock:
            return super().generate(request, api_key=api_key, proxy_url=proxy_url)


class ExampleKit(ProviderConformance):
    """The kit set up for these providers; ``provider`` is the class under test."""

    plugin_name = "good"
    provider: ClassVar[type[Provider]] = GoodProvider
    keys: ClassVar[dict[str, str]] = {
        "unauthorized": "unauthorized",
        "forbidden": "forbidden",
        "rate_limited": "ratelimited",
        "out_of_funds": "nofunds",
        "bad_request": "badrequest",
        "content_policy": "content",
        "server_error": "servererror",
        "timeout": "slow",
    }

    def make_plugin(self, settings):
        return self.provider(settings)

    def arrange(self, outcome: str) -> Case:
        return Case(api_key=f"{self.keys[outcome]}-sk-secret-123")


def kit_for(provider: type[Provider]) -> type[ExampleKit]:
    return type(f"Kit{provider.__name__}", (ExampleKit,), {"provider": provider})


def failures(provider: type[Provider]) -> dict[str, str]:
    return {r.name: r.detail for r in run_conformance(kit_for(provider)) if r.status != "passed"}


def test_a_correct_provider_passes_every_check():
    assert failures(GoodProvider) == {}


def test_a_401_mapped_to_retryable_fails():
    found = failures(RetryOn401Provider)
    assert set(found) == {"test_outcome_unauthorized"}
    assert "raised RetryableError; expected KeyRejectedError" in found["test_outcome_unauthorized"]


def test_state_shared_between_threads_fails():
    found = failures(SharedStateProvider)
    assert set(found) == {"test_concurrent_generate"}
    assert "state shared between calls" in found["test_concurrent_generate"]
    # The same attribute behind a lock is safe, and passes.
    assert failures(LockedStateProvider) == {}


class LeakyProvider(GoodProvider):
    """Broken: quotes the key in its error message."""

    def classify(self, status: int) -> Exception:
        error = super().classify(status)
        if status == 403:
            return KeyRejectedError(f"key {self.last_key} refused", http_status=403)
        return error

    def generate(self, request, *, api_key, proxy_url=None):
        self.last_key = api_key  # (shared, but only read back in the message)
        return self.answer(request, api_key)


class RaisesOutsideTheClasses(GoodProvider):
    """Broken: lets its HTTP library's exception out on a 5xx."""

    def classify(self, status: int) -> Exception:
        if status == 503:
            return ConnectionError("HTTP 503")
        return super().classify(status)


class SpySettingsProvider(GoodProvider):
    """Broken: keeps the database URL it found in the settings handed to it."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.db = settings.get("sqlalchemy.url")


def test_a_key_in_a_message_and_an_exception_outside_the_classes_fail():
    leaky = failures(LeakyProvider)
    assert "the error message contains the key" in leaky["test_outcome_forbidden"]
    outside = failures(RaisesOutsideTheClasses)
    assert set(outside) == {"test_outcome_server_error"}
    assert "outside the error classes" in outside["test_outcome_server_error"]


def test_the_kit_builds_the_plugin_from_its_own_settings_only():
    # The spy finds no database URL to keep: the kit gave it its scoped settings.
    kit = kit_for(SpySettingsProvider)()
    kit.setup_method()
    try:
        plugin = kit.build()
        assert plugin.db is None
        assert set(plugin.settings) == {"nproxy.public_url", "nproxy.env", "nproxy.secret"}
    finally:
        kit.teardown_method()


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"max_batch": 0}, "max_batch must be at least 1"),
        ({"usd_per_image": {}}, "no usd_per_image for presets ['square']"),
        ({"modes": (Mode.IMAGE_TO_IMAGE,), "max_input_images": 0}, "max_input_images"),
        ({"sizes": {"square": (100, 10)}}, "preset 'square' is 100x10, not 1:1"),
        ({"aspect_ratios": {"huge": "1:1"}}, "aspect ratio for unknown 'huge'"),
        ({"model": "two words"}, "the id has spaces"),
        ({"aliases": ("good-1",)}, "alias 'good-1' is another model's id or alias"),
    ],
)
def test_each_malformed_capability_fails(caps, message):
    good = GoodProvider({}).capabilities()[0]
    fields = {**good.__dict__, **caps}

    class Malformed(GoodProvider):
        def capabilities(self):
            return [ModelCapabilities(**fields)]

    assert message in failures(Malformed)["test_capabilities_well_formed"]


def test_pytest_reports_the_broken_plugins_as_failures(tmp_path):
    """The kit as an integrator runs it: pytest on a test module that subclasses it."""
    module = tmp_path / "test_broken_conformance.py"
    module.write_text(
        textwrap.dedent(
            """
            from test_kit_catches_broken_plugins import (
                ExampleKit, GoodProvider, RetryOn401Provider, SharedStateProvider,
            )

            class TestGood(ExampleKit):
                provider = GoodProvider

            class TestRetryOn401(ExampleKit):
                provider = RetryOn401Provider

            class TestShared(ExampleKit):
                provider = SharedStateProvider
            """
        )
    )
    here, tests = Path(__file__).parent, Path(__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", str(module)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{tests}"},
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    failed = sorted(
        line.split("::", 1)[1].split(" ", 1)[0]
        for line in result.stdout.splitlines()
        if line.startswith("FAILED")
    )
    assert failed == [
        "TestRetryOn401::test_outcome_unauthorized",
        "TestShared::test_concurrent_generate",
    ], result.stdout
    assert "2 failed" in result.stdout, result.stdout
