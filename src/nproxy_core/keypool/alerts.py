"""The one place the key pool raises an admin alert: through the admin notifier
(:class:`~nproxy_core.alerts.IAlertNotifier`), which records it, de-duplicates it and has
every alert sender (Telegram's) tell the admins from its queue. Raising never fails the
routing. The subjects of the pool's alerts are written here, once."""

from __future__ import annotations

from typing import Any

from nproxy_core.alerts import AlertKind, IAlertNotifier

__all__ = ["PoolAlerts", "key_subject", "project_subject", "provider_subject"]


def key_subject(provider: str, key_id: int) -> str:
    return f"{provider} key {key_id}"


def provider_subject(provider: str) -> str:
    return f"provider {provider}"


def project_subject(provider: str, project: str) -> str:
    """The subject of :attr:`AlertKind.PROJECT_DAILY_QUOTA` for a provider project."""
    return f"{provider} project {project}"


class PoolAlerts:
    """The key pool's alert callable: ``alert(kind, subject, detail)``."""

    def __init__(self, notifier: Any) -> None:
        self._notifier: IAlertNotifier = notifier

    def __call__(self, kind: AlertKind, subject: str, detail: str) -> None:
        self._notifier.raise_alert(kind, subject, detail)

    def resolve(self, kind: AlertKind, subject: str, detail: str = "") -> None:
        self._notifier.resolve(kind, subject, detail)
