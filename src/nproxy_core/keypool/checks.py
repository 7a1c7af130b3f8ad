"""An admin's tests of a key or a proxy: what is asked of the provider, and what was found.

The router runs them (:meth:`KeyPoolRouter.test_key`, :meth:`KeyPoolRouter.test_proxy`) the way
it routes an image, so a test's calls are recorded and judged as any attempt's are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from nproxy_core.keypool.models import (
    IN_SERVICE,
    AttemptOutcome,
    AttemptPath,
    ProviderKey,
    key_name,
)
from nproxy_core.plugins import ImageRequest, KeyCheck, Mode, Provider

__all__ = [
    "KEY_ACCEPTED",
    "KEY_TEST_PROMPT",
    "KeyTest",
    "KeyTestReport",
    "KeyTestUnsupported",
    "RouteCheck",
    "report_key_test",
    "test_call",
]

#: The prompt of a key test's one real image: small, plain, and nothing a filter could mind.
KEY_TEST_PROMPT = "A plain red circle on a white background."


@dataclasses.dataclass(frozen=True)
class KeyTest:
    """What an admin's key test found: the outcome class of its last call, and its details."""

    key_id: int
    provider: str
    #: ``check`` (the free check) or ``image`` (one real minimal image).
    kind: str
    outcome: AttemptOutcome
    path: AttemptPath
    http_status: int | None
    latency_ms: int
    #: What the provider said: the check's description, the image's size, or the error.
    detail: str
    calls: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "outcome": str(self.outcome),
            "path": str(self.path),
            "http_status": self.http_status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
        }


#: What a passed free check proves, and what it does not: a key Google accepts may still fail
#: every image (no billing, no access to the image model, a project without quota).
KEY_ACCEPTED = "Key accepted; this does not prove it can generate images"


@dataclasses.dataclass(frozen=True)
class KeyTestReport:
    """A key test as the admin reads it, on every surface (web, Telegram, console)."""

    text: str
    #: ``success`` (the key made an image), ``info`` (the free check passed: the key is
    #: accepted, which is no proof it can make images) or ``error`` (the test failed).
    tone: str


def report_key_test(result: KeyTest, key: ProviderKey) -> KeyTestReport:
    """The one wording of a key test's result: what was asked, what came of it, and the key's
    state beside it (``key`` as it is after the test; a test never restores it)."""
    what = "one real image" if result.kind == "image" else "free check"
    status = f"HTTP {result.http_status}, " if result.http_status else ""
    detail = result.detail.rstrip(". ")
    call = f"{what} over {result.path} ({status}{result.latency_ms:,} ms): {detail}"
    state = str(key.state).replace("_", " ")
    if key.state not in IN_SERVICE:
        state += ", out of service until an admin restores it"
    name = key_name(key.id, key.label, start=True)
    if result.outcome is not AttemptOutcome.SUCCESS:
        said, tone = (
            f"{name} failed the {what}: {result.outcome}. {call[:1].upper()}{call[1:]}",
            "error",
        )
    elif result.kind == "image":
        said, tone = f"{name} made an image. {call[:1].upper()}{call[1:]}", "success"
    else:
        said, tone = f"{KEY_ACCEPTED}. {name}, {call}", "info"
    return KeyTestReport(f"{said}. State: {state}.", tone)


@dataclasses.dataclass(frozen=True)
class RouteCheck:
    """Whether one provider answered over a proxy (an admin's proxy test)."""

    provider: str
    ok: bool
    latency_ms: int
    detail: str


class KeyTestUnsupported(Exception):
    """The key's provider cannot test a key the way asked (no free check, no text-to-image)."""


def test_call(plugin: Provider, generate: bool) -> Callable[[str, str | None], Any]:
    """The provider call of a key test: the free check, or with ``generate`` one real image."""
    if not generate:
        if not plugin.supports_key_check:
            raise KeyTestUnsupported(
                f"provider {plugin.name!r} cannot check a key without making an image; "
                "test it with one real image instead"
            )
        return lambda secret, proxy_url: plugin.check_key(api_key=secret, proxy_url=proxy_url)
    model = next(
        (m for m in plugin.capabilities() if Mode.TEXT_TO_IMAGE in m.modes and m.resolutions),
        None,
    )
    if model is None:
        raise KeyTestUnsupported(f"provider {plugin.name!r} offers no text-to-image model")
    request = ImageRequest(
        mode=Mode.TEXT_TO_IMAGE,
        prompt=KEY_TEST_PROMPT,
        resolution=model.resolutions[0],
        model=model.model,
    )
    return lambda secret, proxy_url: plugin.generate(request, api_key=secret, proxy_url=proxy_url)


def describe_result(result: Any) -> str:
    """A successful test's detail: what the check said, or the image made."""
    if isinstance(result, KeyCheck):
        return result.detail
    image = result.image
    size = f"{image.width}x{image.height} " if image.width and image.height else ""
    return f"made a {size}{image.mime} image"
