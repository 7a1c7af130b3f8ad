"""The audit log: every admin action from any surface (web, Telegram, CLI) leaves a row."""

from typing import Any

from nproxy_core.audit.services import SYSTEM, Actor, Surface, record

__all__ = ["SYSTEM", "Actor", "Surface", "record"]


def includeme(config: Any) -> None:
    pass
