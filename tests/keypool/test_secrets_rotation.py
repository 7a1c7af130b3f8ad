"""Rotating ``NPROXY_SECRET`` (DESIGN 4.11; issue 20, item 5): keys stored under the old secret
keep generating while it is listed in ``NPROXY_SECRET_PREVIOUS``, ``nproxy secrets rotate``
re-encrypts them, and after that the old secret can go. A secret changed without the old one
kept is a configuration fault: no key is sent to review for it, nothing is silently added
twice, and rotation refuses with one line.

Keys generate through the real Nano Banana plugin against the fake Gemini server, which sees
the plaintext each call carries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import webtest
from click.testing import CliRunner

from apiclient import ApiClient
from cli_runner import write_ini
from keypool_support import ACTOR, IMAGE, attempts, fresh_key
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.cli import main
from nproxy_core.developer_api.models import ApiKey
from nproxy_core.errors import Conflict
from nproxy_core.keypool import KeyPoolRouter, PoolUnavailable, services
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import AttemptOutcome, KeyState, ProviderKey
from nproxy_core.keypool.rotation import SecretsUnreadable
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.storage import IMediaLinks, LinkCheck
from nproxy_core.wiring import find_service

OLD = "the-old-secret-" + "a" * 40
NEW = "the-new-secret-" + "b" * 40
KEYS = ("AIzaSyROTATEfirst0000000000000001", "AIzaSyROTATEsecond000000000000002")


@pytest.fixture
def configure_pool(
    make_app: Callable[..., webtest.TestApp], pool_settings: dict[str, Any]
) -> Iterator[Callable[..., webtest.TestApp]]:
    """The app as a restart with ``secret`` (and ``previous``) would configure it."""
    built: list[webtest.TestApp] = []

    def configure(secret: str, previous: str = "") -> webtest.TestApp:
        settings = {k.replace(".", "__"): v for k, v in pool_settings.items()}
        app = make_app(**settings, nproxy__secret=secret, nproxy__secret_previous=previous)
        built.append(app)
        return app

    yield configure
    for app in built:
        for provider in find_service(app.app.registry, IPlugins).providers.values():
            provider.close()


@pytest.fixture
def rotate(
    tmp_path: Path, base_settings: dict[str, Any], pool_settings: dict[str, Any]
) -> Callable[..., Any]:
    """``nproxy secrets rotate`` in this process, with the ini a restart would read."""

    def run(secret: str, previous: str = "") -> Any:
        settings = {
            **base_settings,
            **pool_settings,
            "nproxy.secret": secret,
            "nproxy.secret_previous": previous,
        }
        ini = write_ini(tmp_path, settings, name=f"rotate-{len(list(tmp_path.iterdir()))}.ini")
        return CliRunner().invoke(main, ["-c", str(ini), "secrets", "rotate"])

    return run


def add(app: webtest.TestApp, db: Any, secret: str) -> int:
    registry = app.app.registry
    key = services.add_key(
        db,
        find_service(registry, ISecretBox),
        provider="nanobanana",
        secret=secret,
        enabled_providers=list(find_service(registry, IPlugins).providers),
        actor=ACTOR,
    )
    db.commit()
    return key.id


def generates(app: webtest.TestApp, key_id: int) -> bool:
    """Whether the key makes one real image now (the router's own path: decrypt, call)."""
    test = KeyPoolRouter.from_registry(app.app.registry).test_key(key_id, generate=True)
    return test.outcome == AttemptOutcome.SUCCESS


def stored(db: Any) -> dict[int, tuple[str, str]]:
    db.expire_all()
    rows = db.execute(
        sa.select(ProviderKey.id, ProviderKey.secret_encrypted, ProviderKey.secret_fingerprint)
    )
    return {row.id: (row.secret_encrypted, row.secret_fingerprint) for row in rows}


def test_keys_sessions_and_links_survive_a_rotation_and_the_old_secret_can_then_go(
    configure_pool, rotate, db, fake, user_factory
):
    before = configure_pool(OLD)
    key_ids = [add(before, db, secret) for secret in KEYS]
    user = user_factory()
    browser = ApiClient(webtest.TestApp(before.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert browser.login(user.email).status_int == 200
    cookie = browser.app.cookies["nproxy_session"]
    api_key = browser.post("/api/v1/api-keys", {"name": "ci"}).json["key"]
    link = find_service(before.app.registry, IMediaLinks).signed_url("asset-1", 3600)

    # Restarted with a new secret, the old one kept for reading.
    during = configure_pool(NEW, previous=OLD)
    assert all(generates(during, key_id) for key_id in key_ids)
    assert [len(fake.requests_for(secret)) for secret in KEYS] == [1, 1]  # the plaintext
    with pytest.raises(Conflict, match="already in the pool"):
        add(during, db, KEYS[0])
    # A session made under the old secret is still the user's.
    returning = webtest.TestApp(during.app, extra_environ={"HTTP_HOST": "localhost"})
    returning.set_cookie("nproxy_session", cookie)
    assert returning.get("/api/v1/me").json["email"] == user.email
    # So is a signed link, and an API key (re-hashed with the new secret as it is used).
    query = dict(part.split("=") for part in link.split("?", 1)[1].split("&"))
    links = find_service(during.app.registry, IMediaLinks)
    assert links.check("asset-1", query["expires"], query["signature"]) is LinkCheck.VALID
    old_hash = db.scalar(sa.select(ApiKey.secret_hash))
    usage = returning.get("/v1/usage", headers={"Authorization": f"Bearer {api_key}"})
    assert usage.status_int == 200
    db.expire_all()
    assert db.scalar(sa.select(ApiKey.secret_hash)) != old_hash

    first = rotate(NEW, previous=OLD)
    assert first.exit_code == 0, first.output
    assert "provider keys: 2 re-encrypted with the current secret, 0 already current" in (
        first.output
    )
    rotated = stored(db)
    again = rotate(NEW, previous=OLD)  # idempotent
    assert "0 re-encrypted with the current secret, 2 already current" in again.output
    assert stored(db) == rotated

    # Restarted with the new secret alone: every key still generates, duplicates still refused.
    after = configure_pool(NEW)
    assert all(generates(after, key_id) for key_id in key_ids)
    assert [len(fake.requests_for(secret)) for secret in KEYS] == [2, 2]
    with pytest.raises(Conflict, match="already in the pool"):
        add(after, db, KEYS[1])
    assert [fresh_key(db, key_id).state for key_id in key_ids] == [KeyState.ACTIVE] * 2
    # The API key was re-hashed while the old secret was still known: it works on.
    fresh = webtest.TestApp(after.app, extra_environ={"HTTP_HOST": "localhost"})
    assert fresh.get("/v1/usage", headers={"Authorization": f"Bearer {api_key}"}).status_int == 200


def test_a_secret_changed_without_the_old_one_is_a_configuration_fault_not_the_keys(
    configure_pool, rotate, db, fake
):
    before = configure_pool(OLD)
    key_ids = [add(before, db, secret) for secret in KEYS]
    rows = stored(db)

    # The operator: NPROXY_SECRET changed, NPROXY_SECRET_PREVIOUS not set.
    wrong = configure_pool(NEW)
    with pytest.raises(PoolUnavailable):
        KeyPoolRouter.from_registry(wrong.app.registry).route_image("nanobanana", IMAGE)
    assert fake.requests == []
    for key_id in key_ids:
        key = fresh_key(db, key_id)
        assert (key.state, key.consecutive_failures) == (KeyState.ACTIVE, 0)
        assert attempts(db, key_id) == []
    alert = db.scalars(sa.select(Alert).where(Alert.kind == "key_unreadable")).one()
    assert alert.state == AlertState.OPEN
    assert alert.subject == "nproxy.secret"
    assert "nanobanana key" in alert.detail and "NPROXY_SECRET_PREVIOUS" in alert.detail
    assert OLD not in alert.detail and NEW not in alert.detail

    # Nothing can be added twice meanwhile: adding is refused, naming the unreadable keys.
    with pytest.raises(SecretsUnreadable, match=f"provider keys {key_ids[0]}, {key_ids[1]} "):
        add(wrong, db, KEYS[0])
    db.rollback()

    refused = rotate(NEW)
    assert refused.exit_code != 0
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1, refused.output
    assert "nothing was changed" in lines[0] and "NPROXY_SECRET_PREVIOUS" in lines[0]
    assert OLD not in refused.output and NEW not in refused.output
    assert stored(db) == rows

    # Put right: the old secret back as the previous one; rotation then closes the alert.
    fixed = configure_pool(NEW, previous=OLD)
    assert all(generates(fixed, key_id) for key_id in key_ids)
    assert rotate(NEW, previous=OLD).exit_code == 0
    db.expire_all()
    assert db.scalars(sa.select(Alert.state).where(Alert.kind == "key_unreadable")).one() == (
        AlertState.RESOLVED
    )


def test_rotation_refuses_a_secret_stored_twice_while_the_old_secret_was_lost(
    configure_pool, rotate, db
):
    before = configure_pool(OLD)
    first = add(before, db, KEYS[0])
    # Added again under the new secret alone, before the adding refusal existed (or by hand):
    # the fingerprints differ, so only rotation can see it.
    box = find_service(configure_pool(NEW).app.registry, ISecretBox)
    twin = ProviderKey(
        provider="nanobanana",
        secret_encrypted=box.encrypt(KEYS[0]),
        secret_fingerprint=box.fingerprint(KEYS[0]),
        secret_mask="AIza…0001",
        state=KeyState.ACTIVE,
        consecutive_failures=0,
    )
    db.add(twin)
    db.commit()

    refused = rotate(NEW, previous=OLD)
    assert refused.exit_code != 0
    assert f"provider keys {first} and {twin.id} hold the same secret" in refused.output
