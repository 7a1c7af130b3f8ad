"""Admin alerts: the kinds (:class:`AlertKind`), the notifier every feature raises and
resolves them through (:class:`IAlertNotifier`), and the senders that tell the admins
(:class:`IAlertSender`; Telegram registers one with ``config.add_alert_sender``).

The rules of an alert (one row per condition, repeats counted, at most one message per dedup
window, "resolved" once) live in :mod:`.services`; how a message reaches a person is each
sender's business."""

from __future__ import annotations

from typing import Any

from nproxy_core.alerts.interfaces import AlertKind, IAlertNotifier, IAlertSender

__all__ = ["AlertKind", "IAlertNotifier", "IAlertSender", "includeme"]

#: Registry key: the names of the registered senders, in the order registered.
SENDERS = "nproxy.alert_senders"


def add_alert_sender(config: Any, sender: Any, name: str) -> None:
    """Directive: ``sender`` (an :class:`IAlertSender`) is told of every alert from now on.

    It is also registered as the service ``IAlertSender`` named ``name`` (so it is verified
    against its interface like any service); registering one name twice is a conflict."""
    config.register_service(sender, IAlertSender, name=name)

    def register() -> None:
        config.registry.setdefault(SENDERS, []).append(name)

    config.action(("nproxy.alert_sender", name), register)


def includeme(config: Any) -> None:
    from nproxy_core.alerts.services import AlertNotifier
    from nproxy_core.db import IDatabase
    from nproxy_core.plugins import positive_float, setting
    from nproxy_core.wiring import register_shared_service

    settings = config.get_settings()
    dedup = setting(settings, "nproxy.admin.alert_dedup_seconds", default=900, cast=positive_float)
    config.add_directive("add_alert_sender", add_alert_sender)
    registry = config.registry

    def build(request: Any) -> AlertNotifier:
        return AlertNotifier(
            request.find_service(IDatabase).session_factory,
            senders=[
                request.find_service(IAlertSender, name=name) for name in registry.get(SENDERS, ())
            ],
            dedup_seconds=dedup,
        )

    register_shared_service(config, build, IAlertNotifier)
