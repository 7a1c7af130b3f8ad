"""Fixtures for the OpenAI provider tests: the fake OpenAI Images server, a real HTTP proxy, and
the generation tests' worker processes and paying customers (for the run through the app)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakes.openai_images import FakeOpenAI, fake_openai
from generation.conftest import (  # noqa: F401 - fixtures shared with the generation tests
    add_key,
    broker_url,
    customer_factory,
    start_process,
    start_worker,
    worker_settings,
)
from nproxy_provider_openai import OpenAIProvider


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


@pytest.fixture
def make_provider(fake: FakeOpenAI) -> Iterator[Callable[..., OpenAIProvider]]:
    """Build providers pointed at the fake; extra settings by full name. All are closed after."""
    made: list[OpenAIProvider] = []

    def make(settings: dict[str, Any] | None = None) -> OpenAIProvider:
        provider = OpenAIProvider({"openai.api_base": fake.base_url, **(settings or {})})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., OpenAIProvider]) -> OpenAIProvider:
    return make_provider()
