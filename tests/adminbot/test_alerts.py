"""Admin alerts sent from the queue by a real worker to the fake Telegram Bot API: one message
per admin per dedup window, "resolved" when the condition clears, nothing lost to an outage
or a 429."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fakes.gemini import FakeGemini, fake_gemini
from fakes.telegram import FakeTelegram
from generation_support import Process, rabbitmq_vhost
from keypool_support import IMAGE
from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.audit import Surface
from nproxy_core.billing.models import NotificationSource, Payment, PaymentState
from nproxy_core.billing.notifications import apply_event
from nproxy_core.billing.plan import Plan
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.keypool.router import PoolUnavailable
from nproxy_core.keypool.tasks import resolve_recovered_alerts
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import PaymentEvent, PaymentStatus
from nproxy_core.tasks import run_now
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin
from nproxy_core.wiring import find_service
from waiting import wait_until

ADMINS = (901, 902)
ACTOR = pool.Actor("tests", Surface.CLI)


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with rabbitmq_vhost(f"nproxy_tg_{time.monotonic_ns()}") as url:
        yield url


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def settings(
    bot_settings: dict[str, Any], broker_url: str, gemini: FakeGemini, tmp_path: Any
) -> dict[str, Any]:
    return {
        **bot_settings,
        "celery.broker_url": broker_url,
        "nproxy.providers": "demo nanobanana",
        "nanobanana.api_base": gemini.base_url,
        "nanobanana.timeout_seconds": "10",
        "nproxy.admin.alert_dedup_seconds": "600",
    }


@pytest.fixture
def registry(make_app: Callable[..., Any], settings: dict[str, Any]) -> Any:
    app = make_app(**{k.replace(".", "__"): v for k, v in settings.items()})
    return app.app.registry


@pytest.fixture
def worker(settings: dict[str, Any], tmp_path: Any, db: Session) -> Iterator[Process]:
    from generation_support import write_ini

    ini = write_ini(tmp_path, settings, name="worker.ini")
    process = Process(
        ["-c", str(ini), "worker", "--concurrency", "2"], tmp_path / "w.log", tmp_path
    )
    process.wait_for_log(" ready.")
    yield process
    process.stop()


@pytest.fixture
def admins(db: Session) -> tuple[int, ...]:
    for telegram_id in ADMINS:
        db.add(TelegramAdmin(telegram_id=telegram_id, chat_id=telegram_id, paired_by="tests"))
    db.commit()
    return ADMINS


def add_key(db: Session, registry: Any, secret: str) -> int:
    key = pool.add_key(
        db,
        find_service(registry, ISecretBox),
        provider="nanobanana",
        secret=secret,
        enabled_providers=list(find_service(registry, IPlugins).providers),
        actor=ACTOR,
    )
    db.commit()
    return key.id


def texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in telegram.sent_to(chat_id)]


def test_a_rejected_key_alerts_each_admin_once_however_often_it_repeats_then_resolves(
    registry, worker, admins, telegram, db
):
    key_id = add_key(db, registry, "invalid_key-aaaa1")
    router = find_service(registry, IKeyPoolRouter)
    notifier = find_service(registry, IAlertNotifier)
    with pytest.raises(PoolUnavailable):
        router.route_image("nanobanana", IMAGE)
    for _ in range(5):  # the same conditions, seen again by other images and processes
        with pytest.raises(PoolUnavailable):
            router.route_image("nanobanana", IMAGE)
        notifier.raise_alert(AlertKind.KEY_MANUAL_REVIEW, f"nanobanana key {key_id}", "again")

    for chat in admins:
        telegram.wait_for_message(chat, contains="Key needs review")
        telegram.wait_for_message(chat, contains="Provider unavailable")
    time.sleep(3)  # anything more would have arrived by now
    for chat in admins:
        sent = texts(telegram, chat)
        assert len(sent) == 2, sent
        assert sum(f"nanobanana key {key_id}" in t for t in sent) == 1
    alert = db.scalars(sa.select(Alert).where(Alert.kind == "key_manual_review")).one()
    assert alert.state == AlertState.OPEN and alert.count == 6

    assert db.get(ProviderKey, key_id).state == KeyState.MANUAL_REVIEW
    pool.restore_key(db, key_id, actor=ACTOR, alerts=notifier)
    db.commit()
    for chat in admins:
        message = telegram.wait_for_message(chat, after=2, contains="Resolved")
        assert f"nanobanana key {key_id}" in message.text and "restored by tests" in message.text
    db.expire_all()
    assert db.get(Alert, alert.id).state == AlertState.RESOLVED


def test_a_flagged_payment_alerts_once(registry, worker, admins, telegram, db, user_factory):
    user = user_factory()
    payment = Payment(
        user_id=user.id,
        processor="demo",
        order_id="o-77",
        amount=Decimal("9.99"),
        currency="USD",
        status=PaymentState.WAITING,
    )
    db.add(payment)
    db.commit()
    session_factory = find_service(registry, IDatabase).session_factory
    event = PaymentEvent(
        order_id="o-77", status=PaymentStatus.FINISHED, amount=Decimal(5), currency="USD"
    )
    for _ in range(3):  # the processor repeats its notification
        with session_factory() as session, session.begin():
            apply_event(
                session,
                Plan.from_settings(registry.settings),
                "demo",
                event,
                source=NotificationSource.WEBHOOK,
                alerts=find_service(registry, IAlertNotifier),
            )
    for chat in admins:
        message = telegram.wait_for_message(chat, contains="Payment flagged")
        assert f"payment {payment.id}" in message.text and "amount 5" in message.text
    time.sleep(2)
    assert all(len(telegram.sent_to(chat)) == 1 for chat in admins)


def test_alerts_raised_while_telegram_is_down_arrive_after_it_is_back(
    registry, worker, admins, telegram, db
):
    telegram.down = True
    find_service(registry, IAlertNotifier).raise_alert(
        AlertKind.QUEUE_DEPTH, "celery", "1200 tasks waiting"
    )

    def retried_three_times() -> list[AlertMessage]:
        db.expire_all()
        pending = db.scalars(sa.select(AlertMessage)).all()
        return pending if pending and max(m.attempts for m in pending) >= 3 else []

    # Retried during the outage (not given up), the token never stored with the error.
    pending = wait_until(retried_three_times, timeout=60, what="three tries during the outage")
    assert telegram.messages == []
    assert len(pending) == 2 and all(m.sent_at is None for m in pending)
    assert all(telegram.token not in (m.last_error or "") for m in pending)
    telegram.down = False
    for chat in admins:
        telegram.wait_for_message(chat, contains="1200 tasks waiting", timeout=40)


def test_a_429_is_retried_after_retry_after_and_not_dropped(registry, worker, admins, telegram):
    telegram.rate_limit(retry_after=3, times=1)
    raised = time.monotonic()
    find_service(registry, IAlertNotifier).raise_alert(
        AlertKind.WORKER_HEARTBEAT, "workers", "no heartbeat for 2 minutes"
    )
    arrived = [telegram.wait_for_message(chat, contains="no heartbeat") for chat in admins]
    assert max(m.at for m in arrived) - raised >= 3
    limited = [p for name, p in telegram.calls if name == "sendMessage"]
    assert len(limited) == 3  # the refused one, then one per admin
    assert all(len(telegram.sent_to(chat)) == 1 for chat in admins)


def _out_of_daily_quota(
    registry: Any, db: Session, project: str | None, *secrets: str
) -> list[int]:
    """Keys that answer a per-day 429, routed to once: the pool rests them until the reset."""
    ids = []
    for secret in secrets:
        key = pool.add_key(
            db,
            find_service(registry, ISecretBox),
            provider="nanobanana",
            secret=secret,
            project=project,
            enabled_providers=list(find_service(registry, IPlugins).providers),
            actor=ACTOR,
        )
        ids.append(key.id)
    db.commit()
    with pytest.raises(PoolUnavailable):
        find_service(registry, IKeyPoolRouter).route_image("nanobanana", IMAGE)
    return ids


def beat_resolves(registry: Any, db: Session, alert_id: int, admins: Any, says: str) -> None:
    """Beat's pool-alert check closes the alert, and each admin is sent its "resolved"."""
    assert run_now(registry, resolve_recovered_alerts) == 1
    db.expire_all()
    assert db.get(Alert, alert_id).state == AlertState.RESOLVED
    resolved = db.scalars(
        sa.select(AlertMessage).where(
            AlertMessage.alert_id == alert_id, AlertMessage.text.startswith("✅ Resolved")
        )
    ).all()
    assert sorted(m.chat_id for m in resolved) == sorted(admins)
    assert all(says in m.text for m in resolved)


def _the_day_turns(db: Session, ids: list[int]) -> None:
    db.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id.in_(ids))
        .values(cooldown_until=utcnow() - dt.timedelta(seconds=1))
    )
    db.commit()


def test_a_project_out_of_its_daily_quota_is_one_alert_for_the_project(registry, admins, db):
    # No worker here: what matters is the alert row and its queued messages (the outbox).
    _out_of_daily_quota(registry, db, "acme-images", "daily_quota-aaaa1", "daily_quota-aaaa2")

    db.expire_all()
    quota = db.scalars(sa.select(Alert).where(Alert.kind == "project_daily_quota")).one()
    assert quota.subject == "nanobanana project acme-images"
    # The first key's per-day 429 rests the whole project: the second key is never called.
    assert quota.count == 1 and quota.state == AlertState.OPEN
    queued = db.scalars(sa.select(AlertMessage).where(AlertMessage.alert_id == quota.id)).all()
    assert sorted(m.chat_id for m in queued) == sorted(admins)
    assert "daily quota" in queued[0].text and "aaaa1" not in queued[0].text


@pytest.mark.parametrize(
    ("project", "secrets", "subject"),
    [
        (
            "acme-images",
            ("daily_quota-aaaa1", "daily_quota-aaaa2"),
            "nanobanana project acme-images",
        ),
        (None, ("daily_quota-aaaa1",), "nanobanana key 1"),  # a key of no project is its own
    ],
)
def test_a_daily_quota_alert_resolves_once_the_providers_day_turns(
    registry, admins, db, project, secrets, subject
):
    ids = _out_of_daily_quota(registry, db, project, *secrets)
    [quota] = db.scalars(sa.select(Alert).where(Alert.kind == "project_daily_quota")).all()
    assert quota.subject == subject
    # Still resting: beat's check leaves it open.
    assert run_now(registry, resolve_recovered_alerts) == 0

    _the_day_turns(db, ids)
    beat_resolves(registry, db, quota.id, admins, "back in service")
    assert run_now(registry, resolve_recovered_alerts) == 0  # once
    assert "keypool.resolve_recovered_alerts" in registry["celery.app"].conf.beat_schedule


def test_provider_unavailable_resolves_when_another_process_makes_an_image_again(
    registry, make_app, settings, gemini, admins, db
):
    [key_id] = _out_of_daily_quota(registry, db, None, "unavailable-aaaa1")  # a 503, not a quota
    [down] = db.scalars(sa.select(Alert).where(Alert.kind == "pool_exhausted")).all()
    assert down.subject == "provider nanobanana"
    assert run_now(registry, resolve_recovered_alerts) == 0  # nothing made since

    # Another worker process (its own router) makes an image once the key is well again; the
    # router that raised the alert never hears of it.
    gemini.behave("unavailable-aaaa1", "success")
    _the_day_turns(db, [key_id])
    other = make_app(**{k.replace(".", "__"): v for k, v in settings.items()}).app.registry
    assert find_service(other, IKeyPoolRouter).route_image("nanobanana", IMAGE).key_id == key_id
    db.expire_all()
    assert db.get(Alert, down.id).state == AlertState.OPEN

    beat_resolves(registry, db, down.id, admins, "images are being made again")
