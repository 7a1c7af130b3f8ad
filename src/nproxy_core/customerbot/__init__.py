"""Telegram for customers (DESIGN 4.14): the customer bot, served by ``nproxy bot`` when
``telegram.customer_bot_token`` is set, and its web side: linking an account from the account
page (a single-use deep link), unlinking, and the single-use login links ``/web`` sends.

Texts the bot sends live in :mod:`.texts`; accounts and generations go through the services
the web uses (:mod:`.services`); results are delivered from :class:`.models.TelegramDelivery`
by the bot process (:mod:`.bot`)."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    from nproxy_core.customerbot.views import telegram_status

    config.add_request_method(telegram_status, "telegram_status")
    config.add_route("account.telegram.link", "/account/telegram/link")
    config.add_route("account.telegram.unlink", "/account/telegram/unlink")
    config.add_route("telegram.login", "/telegram/login/{token}")
    config.add_route("account.telegram.credentials", "/account/telegram/credentials")
    config.scan("nproxy_core.customerbot.views")
