"""Fixtures for the Nano Banana provider tests: the fake Gemini server and a real HTTP proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakes.gemini import FakeGemini, fake_gemini
from nproxy_provider_nanobanana import NanoBananaProvider


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
