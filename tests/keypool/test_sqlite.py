"""The embedded default: the same router code on a SQLite file migrated by Alembic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keypool_support import ACTOR, IMAGE, ScriptedProvider
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.keypool import services
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import AttemptOutcome, KeyAttempt, KeyState, ProviderKey
from nproxy_core.migrations import upgrade
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.wiring import find_service


def test_routing_on_sqlite(tmp_path: Path, base_settings: dict[str, Any]):
    settings = {**base_settings, "sqlalchemy.url": f"sqlite:///{tmp_path / 'nproxy.sqlite'}"}
    upgrade(settings)
    config = configure(settings)
    config.commit()
    registry = config.registry
    factory = find_service(registry, IDatabase).session_factory
    with factory.begin() as db:
        ids = [
            services.add_key(
                db,
                find_service(registry, ISecretBox),
                provider="demo",
                secret=secret,
                enabled_providers=["demo"],
                actor=ACTOR,
            ).id
            for secret in ("demo-key-000001", "reject-key-000002", "demo-key-000003")
        ]
    router = find_service(registry, IKeyPoolRouter)

    used = Counter(router.route_image("demo", IMAGE).key_id for _ in range(6))

    assert used == {ids[0]: 3, ids[2]: 3}
    with factory() as db:
        assert db.get(ProviderKey, ids[1]).state == KeyState.MANUAL_REVIEW
        outcomes = Counter(db.scalars(sa.select(KeyAttempt.outcome)))
        assert outcomes == {AttemptOutcome.SUCCESS: 6, AttemptOutcome.KEY_REJECTED: 1}
    find_service(registry, IDatabase).engine.dispose()


def test_a_rate_limit_cools_the_project_on_sqlite(tmp_path: Path, base_settings: dict[str, Any]):
    # The portable path (one statement at a time) applies the same project rule.
    settings = {**base_settings, "sqlalchemy.url": f"sqlite:///{tmp_path / 'nproxy.sqlite'}"}
    upgrade(settings)
    config = configure(settings)
    config.commit()
    registry = config.registry
    scripted = ScriptedProvider()
    scripted.name = "scripted"
    find_service(registry, IPlugins).providers["scripted"] = scripted
    factory = find_service(registry, IDatabase).session_factory
    with factory.begin() as db:
        limited, peer, elsewhere = (
            services.add_key(
                db,
                find_service(registry, ISecretBox),
                provider="scripted",
                secret=secret,
                enabled_providers=["scripted"],
                actor=ACTOR,
                project=project,
            ).id
            for secret, project in (
                ("limited-key-000001", "gcp-a"),
                ("healthy-key-000002", "gcp-a"),
                ("healthy-key-000003", "gcp-b"),
            )
        )
    router = find_service(registry, IKeyPoolRouter)

    used = Counter(router.route_image("scripted", IMAGE).key_id for _ in range(4))

    assert used == {elsewhere: 4}
    assert scripted.calls.count("limited-key-000001") == 1
    assert "healthy-key-000002" not in scripted.calls
    with factory() as db:
        keys = {k.id: k for k in db.scalars(sa.select(ProviderKey))}
        assert keys[peer].state == KeyState.COOLDOWN
        assert keys[peer].cooldown_until == keys[limited].cooldown_until
        assert (keys[limited].consecutive_failures, keys[peer].consecutive_failures) == (1, 0)
    find_service(registry, IDatabase).engine.dispose()
