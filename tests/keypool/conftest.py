"""Fixtures for the key pool: the app with Nano Banana pointed at the fake Gemini server, key
and proxy factories, a real HTTP proxy (PyPI ``proxy.py``) and a scripted provider plugin for
what Gemini cannot do on demand (hang forever, report a balance)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from fakes.gemini import FakeGemini, fake_gemini
from keypool_support import ACTOR, ScriptedProvider
from nproxy_core.keypool import KeyPoolRouter, services
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import KeyState
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.wiring import find_service


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def pool_settings(fake: FakeGemini) -> dict[str, Any]:
    return {
        "nproxy.providers": "demo nanobanana",
        "nanobanana.api_base": fake.base_url,
        "nanobanana.timeout_seconds": "10",
        "nanobanana.connect_timeout_seconds": "2",
    }


@pytest.fixture
def registry(make_app: Callable[..., Any], pool_settings: dict[str, Any]) -> Any:
    app = make_app(**{k.replace(".", "__"): v for k, v in pool_settings.items()})
    registry = app.app.registry
    yield registry
    for provider in find_service(registry, IPlugins).providers.values():
        provider.close()


@pytest.fixture
def router(registry: Any) -> KeyPoolRouter:
    return find_service(registry, IKeyPoolRouter)


@pytest.fixture
def add_key(db: Session, registry: Any) -> Callable[..., int]:
    """Add a key through the admin service (committed); returns its id."""

    def add(
        secret: str,
        *,
        provider: str = "nanobanana",
        billing_group: str | None = None,
        proxy_url: str | None = None,
        state: KeyState | None = None,
        label: str | None = None,
        project: str | None = None,
    ) -> int:
        key = services.add_key(
            db,
            find_service(registry, ISecretBox),
            provider=provider,
            secret=secret,
            enabled_providers=list(find_service(registry, IPlugins).providers),
            actor=ACTOR,
            label=label,
            proxy_url=proxy_url,
            billing_group=billing_group,
            project=project,
        )
        if state is not None:
            key.state = state
        db.commit()
        return key.id

    return add


# --- a scripted provider plugin --------------------------------------------------------------


@pytest.fixture
def scripted(registry: Any) -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider(deadline=0.5)
    provider.name = "scripted"
    find_service(registry, IPlugins).providers["scripted"] = provider
    yield provider
    provider.release.set()
