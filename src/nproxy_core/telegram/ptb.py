"""What the bot processes (the admin bot, the customer bot) share on python-telegram-bot: an
application builder pointed at the configured Bot API, and stopping their background tasks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from telegram.ext import ApplicationBuilder

from nproxy_core.plugins import http_url, setting


def application_builder(settings: Any, token: str) -> ApplicationBuilder:
    """A builder for the bot with ``token`` on ``telegram.api_base`` (its files too); the
    caller adds its own hooks and builds it."""
    api_base = setting(
        settings, "telegram.api_base", default="https://api.telegram.org", cast=http_url
    )
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_base}/bot")
        .base_file_url(f"{api_base}/file/bot")
    )


async def cancel_tasks(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task that was started (``None`` for one that was not) and wait for it."""
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
