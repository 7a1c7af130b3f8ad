"""What this feature offers: the Telegram Bot API for sending messages."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IBotAPI(Interface):
    """The Telegram Bot API over plain HTTP (:class:`nproxy_core.telegram.botapi.BotAPI`)."""

    configured = Attribute("bool: a bot token is set (without one nothing is sent)")

    def scrub(text):
        """``text`` with the bot token masked, for logs and errors."""

    def send_message(chat_id, text, *, reply_markup=None):
        """Send ``text`` (clipped to Telegram's limit) to a chat; returns a ``SendResult``."""

    def call(method, body):
        """Call the Bot API method ``method`` with a JSON ``body``; returns a ``SendResult``."""
