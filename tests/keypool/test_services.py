"""Admin actions and secrets at rest: encryption, masking, validation, audit rows."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from keypool_support import ACTOR, IMAGE, attempts, fresh_key
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.audit.models import AuditEntry
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.keypool import KeyPoolRouter, services
from nproxy_core.keypool.crypto import SecretBox, mask_secret
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.wiring import find_service

SECRET = "AIzaSyTESTtestTESTtestTESTtest0x9Q2"


def test_the_secret_is_encrypted_at_rest_and_shown_masked(add_key, db, registry):
    key_id = add_key(SECRET)

    raw = db.execute(sa.text("SELECT * FROM provider_keys WHERE id = :id"), {"id": key_id}).one()
    assert all(SECRET not in str(value) for value in raw)
    assert all("TESTtestTEST" not in str(value) for value in raw)
    key = fresh_key(db, key_id)
    assert key.secret_mask == "AIza…x9Q2"
    assert services.key_view(key)["secret"] == "AIza…x9Q2"
    assert find_service(registry, ISecretBox).decrypt(key.secret_encrypted) == SECRET
    audit = db.scalars(sa.select(AuditEntry)).one()
    assert audit.action == "key.add" and SECRET not in json.dumps(audit.after)


def test_encryption_depends_on_the_nproxy_secret():
    one, other = SecretBox("a" * 40), SecretBox("b" * 40)
    token = one.encrypt(SECRET)
    assert one.decrypt(token) == SECRET
    assert one.encrypt(SECRET) != token  # fresh IV every time
    assert one.fingerprint(SECRET) != other.fingerprint(SECRET)
    with pytest.raises(Exception, match="cannot be decrypted"):
        other.decrypt(token)


def test_masks_never_show_much_of_a_short_secret():
    assert mask_secret("AIzaSyA-1234567890abcdefghijklmnopqrs") == "AIza…pqrs"
    assert mask_secret("0123456789ab") == "…9ab"
    assert mask_secret("01234567") == "…"


def test_a_key_no_known_secret_decrypts_is_skipped_not_sent_to_review(registry, add_key, db):
    key_id = add_key("success-aaaa1")
    healthy = add_key("success-aaaa2")
    # As if nproxy.secret had changed since the key was stored (and the old one not kept):
    # the configuration is at fault, not the key (tests/keypool/test_secrets_rotation.py).
    db.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id == key_id)
        .values(secret_encrypted=SecretBox("z" * 40).encrypt("success-aaaa1"))
    )
    db.commit()

    routed = KeyPoolRouter.from_registry(registry).route_image("nanobanana", IMAGE)

    assert routed.key_id == healthy
    assert fresh_key(db, key_id).state == KeyState.ACTIVE
    assert fresh_key(db, key_id).consecutive_failures == 0
    assert attempts(db, key_id) == []


def test_add_key_refuses_providers_not_enabled_and_duplicates(add_key, db, registry):
    add_key(SECRET)
    with pytest.raises(ValidationError, match="not enabled"):
        add_key("x" * 20, provider="other")
    with pytest.raises(Conflict, match="already in the pool"):
        add_key(SECRET)
    add_key(SECRET, provider="demo")  # the same secret under another provider is another key


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "empty"), ("short", "8 to 512"), ("has space inside", "spaces"), ("x" * 600, "512")],
)
def test_bad_secrets_are_refused(add_key, db, secret, message):
    with pytest.raises(ValidationError, match=message):
        add_key(secret)
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(ProviderKey)) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:21", "must start with"),
        ("http://h", "no port"),
        ("http://:80", "no host"),
        ("http://h:80/path", "only"),
        ("http://[::1", "malformed"),
        ("socks5://h:99999", "malformed"),
    ],
)
def test_bad_proxy_urls_are_refused(db, url, message):
    with pytest.raises(ValidationError, match=message):
        services.add_proxy(db, url, actor=ACTOR)


def test_good_proxy_urls_and_credentials_hidden(db):
    for url in ("http://h:3128", "https://h:443", "socks5://u:secretpw@h:1080"):
        services.add_proxy(db, url, actor=ACTOR)
    db.commit()
    views = [services.proxy_view(p) for p in services.list_proxies(db)]
    assert views[2]["url"] == "socks5://u:***@h:1080"
    assert "secretpw" not in json.dumps([e.after for e in db.scalars(sa.select(AuditEntry))])
    with pytest.raises(Conflict):
        services.add_proxy(db, "http://h:3128", actor=ACTOR)


def test_disable_and_restore_are_audited_and_reset_the_key(add_key, db, registry):
    key_id = add_key("success-aaaa1")
    db.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id == key_id)
        .values(state=KeyState.MANUAL_REVIEW, consecutive_failures=11, state_reason="bad")
    )
    db.commit()

    services.disable_key(db, key_id, actor=ACTOR)
    db.commit()
    assert fresh_key(db, key_id).state == KeyState.DISABLED
    alerts = find_service(registry, IAlertNotifier)
    services.restore_key(db, key_id, actor=ACTOR, alerts=alerts)
    db.commit()

    key = fresh_key(db, key_id)
    assert (key.state, key.consecutive_failures, key.cooldown_until, key.state_reason) == (
        KeyState.ACTIVE,
        0,
        None,
        None,
    )
    entries = db.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor, e.surface) for e in entries[1:]] == [
        ("key.disable", "tester@example.com", "cli"),
        ("key.restore", "tester@example.com", "cli"),
    ]
    assert entries[1].before["state"] == "manual_review"
    with pytest.raises(NotFound):
        services.restore_key(db, 999, actor=ACTOR, alerts=alerts)
