"""The chat, where a logged-in user generates images, and the library of what they made. The
pages are shells: the conversation, the composer, the polling and the library's scrolling run
in ``static/chat.js``, ``static/library.js`` and ``static/chat/`` over the JSON API."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("chat", "/chat")
    config.add_route("chat.conversation", "/chat/{conversation_id}")
    config.add_route("library", "/library")
    config.scan("nproxy_core.chat.views")
